"""Days as integers (days since 1970-01-01): the engine's grids have one column per day."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from numpy.typing import NDArray

Int1D = NDArray[np.int64]
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()


def to_day(d: dt.date | str) -> int:
    """Days since 1970-01-01 (of a date or an ISO date text)."""
    if isinstance(d, str):
        d = dt.date.fromisoformat(d)
    return d.toordinal() - _EPOCH_ORDINAL


def from_day(n: int) -> dt.date:
    return dt.date.fromordinal(int(n) + _EPOCH_ORDINAL)


def to_days(values: pd.Series | NDArray[np.object_]) -> Int1D:
    """Days since 1970-01-01 of many dates (datetime64 or ``datetime.date`` values)."""
    arr = np.asarray(values)
    if arr.dtype.kind != "M":
        arr = arr.astype("datetime64[D]")
    return arr.astype("datetime64[D]").astype(np.int64)


def dates_or_none(day0: int, idx: Int1D, mask: NDArray[np.bool_]) -> list[dt.date | None]:
    """The date of grid column ``idx`` (grid starting on day ``day0``) where ``mask``, else None."""
    return [
        from_day(day0 + int(i)) if ok else None
        for i, ok in zip(idx.tolist(), mask.tolist(), strict=True)
    ]
