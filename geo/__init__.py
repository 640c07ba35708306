"""riskmap's pure spatial core: H3 cells, exact polygon look-ups, rule files and the zone engine.

Nothing here imports FastAPI, settings or the store: functions take and return GeoDataFrames,
DataFrames and numpy arrays.

The names below are imported when first used (PEP 562), so that importing a light module of
the package (``geo._errors``, ``geo.policy``) does not load geopandas, shapely and the engine:
the ``riskmap`` command line starts fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from riskmap.geo._errors import (
    InputFileError,
    NotFoundError,
    PolicyError,
    Reject,
    RiskmapError,
    ScanError,
    UnknownPolicyError,
)

if TYPE_CHECKING:
    from riskmap.geo.index import PolygonIndex
    from riskmap.geo.policy import Policy, load_policy, parse_policy, preset_names
    from riskmap.geo.zones import CommunityLayer, ZoneResult, compute_zones

# public name -> the module that defines it
_LAZY = {
    "PolygonIndex": "riskmap.geo.index",
    "Policy": "riskmap.geo.policy",
    "load_policy": "riskmap.geo.policy",
    "parse_policy": "riskmap.geo.policy",
    "preset_names": "riskmap.geo.policy",
    "CommunityLayer": "riskmap.geo.zones",
    "ZoneResult": "riskmap.geo.zones",
    "compute_zones": "riskmap.geo.zones",
}

__all__ = [
    "CommunityLayer",
    "InputFileError",
    "NotFoundError",
    "Policy",
    "PolicyError",
    "PolygonIndex",
    "Reject",
    "RiskmapError",
    "ScanError",
    "UnknownPolicyError",
    "ZoneResult",
    "compute_zones",
    "load_policy",
    "parse_policy",
    "preset_names",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:  # a submodule (``from riskmap.geo import cells``) is then imported as usual
        raise AttributeError(f"module 'riskmap.geo' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
