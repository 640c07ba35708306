"""``geo._values.missing``: one answer for None, NaN, NaT and pandas' NA, whether pandas is
imported or not (the CLI's status answer never imports it)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from riskmap.geo._values import iso_date, missing

MISSING = [None, float("nan"), np.float32("nan"), np.float64("nan"), np.datetime64("NaT")]
PRESENT = [0, 0.0, "", "x", np.float64(1.5), np.int64(3), np.datetime64("2024-01-02"), [1]]


@pytest.mark.parametrize("v", MISSING + [pd.NA, pd.NaT])
def test_missing_values(v: object) -> None:
    assert missing(v)


@pytest.mark.parametrize("v", PRESENT)
def test_present_values(v: object) -> None:
    assert not missing(v)


def test_the_same_answers_before_pandas_is_imported() -> None:
    code = (
        "import sys, numpy as np\n"
        "from riskmap.geo._values import missing\n"
        "m = [None, float('nan'), np.float32('nan'), np.float64('nan'), np.datetime64('NaT')]\n"
        "p = [0, 0.0, '', 'x', np.float64(1.5), np.int64(3), np.datetime64('2024-01-02'), [1]]\n"
        "assert all(missing(v) for v in m) and not any(missing(v) for v in p)\n"
        "assert 'pandas' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_iso_dates() -> None:
    assert iso_date("2024-03-01T10:00") == "2024-03-01"
    assert iso_date(pd.Timestamp("2024-03-01 23:00")) == "2024-03-01"
    assert iso_date(pd.NaT) is None and iso_date(None) is None
