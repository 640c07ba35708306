"""Constants of the early-warning measures that the service's routes need at import time.

They live here, not in :mod:`geo.scan` and :mod:`geo.hotspots`, so that importing the service
does not import numba and scipy (about 100 MB of resident memory and a second of start-up in
every worker process); those modules are imported when a scan or hotspots are computed.
"""

from __future__ import annotations

#: A prospective cluster signals when its recurrence interval is at least this many days (the
#: threshold of New York City's daily surveillance, ../shared/docs/policies.md).
DEFAULT_SIGNAL_DAYS = 100.0

#: The finest H3 resolution of the public hotspots layer (coarser cells hide single cases).
PUBLIC_MAX_RES = 8
