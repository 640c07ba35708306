"""One error hierarchy for the whole spatial core (the API maps these to HTTP codes)."""

from __future__ import annotations

from dataclasses import dataclass


class RiskmapError(Exception):
    """Base class of every error riskmap raises on purpose."""


class InputFileError(RiskmapError):
    """A whole input file cannot be read: missing, empty, truncated, unknown format, no CRS..."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class PolicyError(RiskmapError):
    """A rule file is invalid: names the key, the value and what was expected."""


class UnknownPolicyError(PolicyError):
    """No preset of that name and no such rule file."""


class StoreError(RiskmapError):
    """The store cannot be opened or used (for example a schema newer than this riskmap)."""


class ScanError(RiskmapError):
    """A space-time scan cannot run on its input or options (names the field and the value)."""


class NotFoundError(RiskmapError):
    """A requested object (zone, batch, ...) does not exist."""


@dataclass(frozen=True)
class Reject:
    """One rejected input record: where it is and why it was refused.

    ``row`` is the line number for CSV files (the header is line 1) and the 1-based feature
    number for every other format.
    """

    file: str
    row: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: row {self.row}: {self.field}: {self.reason}"


class CoordinateError(RiskmapError, ValueError):
    """A point's coordinates are not a valid longitude/latitude (names the point and why)."""
