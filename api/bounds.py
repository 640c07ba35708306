"""The dates a request may ask about: within the data, so that no request can make the server
compute zones or histories for arbitrary dates (each one a computation and a cache entry), and
no date reaches the engine's date arithmetic out of range."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from riskmap.api.errors import unprocessable
from riskmap.api.service import RiskService
from riskmap.geo.policy import Policy
from riskmap.geo.zones import longest_lift


@dataclass(frozen=True)
class DateRange:
    """Dates from ``lo`` to ``hi`` (inclusive), periods of at most ``max_days`` days."""

    lo: dt.date
    hi: dt.date
    max_days: int
    why: str
    today: dt.date | None = None  # the service's today (RISKMAP_TIMEZONE); None: the machine's

    def check(self, d: dt.date, name: str) -> dt.date:
        if not self.lo <= d <= self.hi:
            raise unprocessable(
                f"'{name}' ({d}) must lie from {self.lo} to {self.hi} ({self.why})", "query", name
            )
        return d

    def period(
        self, start: dt.date | None, end: dt.date | None, default_days: int
    ) -> tuple[dt.date, dt.date]:
        """The period asked for: ``to`` defaults to today, ``from`` to ``default_days`` days
        ending on ``to`` (not before the first allowed day)."""
        end = self.check(end or self.today or dt.date.today(), "to")
        if start is None:
            start = max(end - dt.timedelta(days=default_days - 1), self.lo)
        else:
            self.check(start, "from")
        if start > end:
            raise unprocessable(f"'from' ({start}) is after 'to' ({end})", "query", "from")
        days = (end - start).days + 1
        if days > self.max_days:
            raise unprocessable(
                f"the period from {start} to {end} spans {days} days: at most {self.max_days} "
                "(RISKMAP_MAX_HISTORY_DAYS)",
                "query",
                "from",
            )
        return start, end


def date_range(service: RiskService, policy: Policy, max_days: int) -> DateRange:
    """The dates of requests under ``policy``: from the first report date to the last report
    date plus the rule's longest lift (the last day its zones can change), or today if that is
    later."""
    lo, hi = service.date_bounds(policy)
    _, span = service.report_span()
    if span is None:
        why = "no case is reported yet: dates up to today"
    else:
        why = (
            f"from the first report date to the last report date {span[1]} plus the longest "
            f"lift of {policy.id} ({longest_lift(policy)} days), or today"
        )
    return DateRange(lo, hi, max_days, why, service.today())
