"""Missing values and ISO dates, written one way for every package (stores, layers, answers)."""

from __future__ import annotations

import datetime as dt
import sys
from typing import Any

import numpy as np


def missing(v: object) -> bool:
    """Whether ``v`` is a missing scalar: None, NaN, ``pd.NA`` or ``pd.NaT``."""
    if v is None:
        return True
    if isinstance(v, float):
        return v != v
    pd = sys.modules.get("pandas")
    if pd is None:  # no pandas value exists before pandas is imported: numpy's NaN and NaT
        if isinstance(v, np.floating | np.complexfloating):
            return bool(np.isnan(v))
        if isinstance(v, np.datetime64 | np.timedelta64):
            return bool(np.isnat(v))
        return False
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):  # lists, arrays: never "missing" as a whole
        return False


def or_none(v: Any) -> Any:
    """``v``, or None when it is missing."""
    return None if missing(v) else v


def text_or_none(v: object) -> str | None:
    """``v`` as stripped text, None when missing or blank."""
    if missing(v):
        return None
    s = str(v).strip()
    return s or None


def iso_date(d: object) -> str | None:
    """``YYYY-MM-DD`` of a date, datetime, Timestamp or date string; None when missing."""
    if missing(d):
        return None
    if isinstance(d, dt.datetime):
        return d.date().isoformat()
    if isinstance(d, dt.date):
        return d.isoformat()
    import pandas as pd

    return pd.Timestamp(d).date().isoformat()  # type: ignore[arg-type]


def int_or_none(v: object) -> int | None:
    """``v`` as an int, None when it is missing."""
    return None if missing(v) else int(v)  # type: ignore[call-overload]
