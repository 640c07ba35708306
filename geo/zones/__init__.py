"""The zone engine (see docs/architecture.md for the module map).

Public interface: :class:`CommunityLayer` (communities prepared once per data version),
:func:`compute_zones` (zones and per-community levels under a rule as of a date) and its
:class:`ZoneResult`, the day helpers, and what incremental updates (:mod:`geo.incremental`),
history (:mod:`geo.history`) and new building blocks build on: the registry of extent kinds
(:func:`register`, :func:`kind_of`, :class:`ExtentKind`), the level grids
(:class:`LevelState`, :class:`Context`, :func:`evaluate_level`) and zone assembly
(:func:`group_zones`, :func:`community_zones`, :func:`sort_zones`).
"""

from riskmap.geo.zones import extents as _extents  # noqa: F401  (registers the built-in kinds)
from riskmap.geo.zones.assemble import (
    ZONE_COLUMNS,
    area_id,
    community_zones,
    group_zones,
    sort_zones,
)
from riskmap.geo.zones.conditions import CONDITIONS
from riskmap.geo.zones.days import dates_or_none, from_day, to_day, to_days
from riskmap.geo.zones.engine import compute_zones, day_axis, evaluate_level, longest_lift
from riskmap.geo.zones.features import Features
from riskmap.geo.zones.grids import Bool2D, Int1D, run_bounds, spread, spread_max
from riskmap.geo.zones.layer import CommunityLayer
from riskmap.geo.zones.registry import ExtentKind, kind_of, kinds, register, unregister
from riskmap.geo.zones.state import Activity, Context, LevelState, Patching, Units, ZoneResult

__all__ = [
    "CONDITIONS",
    "Activity",
    "ZONE_COLUMNS",
    "Bool2D",
    "CommunityLayer",
    "Context",
    "ExtentKind",
    "Features",
    "Int1D",
    "LevelState",
    "Patching",
    "Units",
    "ZoneResult",
    "area_id",
    "community_zones",
    "compute_zones",
    "dates_or_none",
    "day_axis",
    "evaluate_level",
    "from_day",
    "group_zones",
    "kind_of",
    "kinds",
    "longest_lift",
    "register",
    "run_bounds",
    "sort_zones",
    "spread",
    "spread_max",
    "to_day",
    "to_days",
    "unregister",
]
