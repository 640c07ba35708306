"""riskmap's pure spatial core: H3 cells, exact polygon look-ups, rule files and the zone engine.

Nothing here imports FastAPI, settings or the store: functions take and return GeoDataFrames,
DataFrames and numpy arrays.
"""

from riskmap.geo._errors import (
    InputFileError,
    NotFoundError,
    PolicyError,
    Reject,
    RiskmapError,
    UnknownPolicyError,
)
from riskmap.geo.index import PolygonIndex
from riskmap.geo.policy import Policy, load_policy, parse_policy, preset_names
from riskmap.geo.zones import CommunityLayer, ZoneResult, compute_zones

__all__ = [
    "CommunityLayer",
    "InputFileError",
    "NotFoundError",
    "Policy",
    "PolicyError",
    "PolygonIndex",
    "Reject",
    "RiskmapError",
    "UnknownPolicyError",
    "ZoneResult",
    "compute_zones",
    "load_policy",
    "parse_policy",
    "preset_names",
]
