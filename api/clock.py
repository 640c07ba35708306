"""The service's "today": the date in ``RISKMAP_TIMEZONE`` (default the machine's local zone).

The served status snapshots (:mod:`api.snapshots`) are those of today in that zone and roll
over at its midnight; a :class:`Clock` can be replaced (tests inject one) so that nothing waits
for a real midnight.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["Clock", "SystemClock", "timezone_of"]


def timezone_of(name: str) -> dt.tzinfo | None:
    """The zone of ``RISKMAP_TIMEZONE``: an IANA name (``Asia/Shanghai``), ``UTC``, or empty
    for the machine's local zone (None). Raises ``ValueError`` naming the setting."""
    name = name.strip()
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ValueError(
            f"RISKMAP_TIMEZONE: {name!r} is not a time zone (an IANA name such as "
            f"'Asia/Shanghai' or 'UTC', or empty for the machine's local zone): {e}"
        ) from None


class Clock:
    """The current time in a zone (``tz`` None: the machine's local zone, its offset read at
    each call so that daylight saving time is followed)."""

    def __init__(self, tz: dt.tzinfo | None = None) -> None:
        self.tz = tz

    def now(self) -> dt.datetime:
        """The current time, aware, in the clock's zone."""
        if self.tz is None:
            return dt.datetime.now().astimezone()
        return dt.datetime.now(self.tz)

    def today(self) -> dt.date:
        return self.now().date()

    def next_midnight(self, now: dt.datetime | None = None) -> dt.datetime:
        """The start of the day after ``now`` (default: now) in the clock's zone, aware."""
        now = now or self.now()
        day = now.date() + dt.timedelta(days=1)
        if self.tz is None:
            return dt.datetime.combine(day, dt.time()).astimezone()
        return dt.datetime.combine(day, dt.time(), tzinfo=self.tz)


#: the clock of a service built without one (the machine's local zone)
SystemClock = Clock
