"""The built-in extent kinds, registered on import (see :mod:`geo.zones.registry`)."""

from riskmap.geo.zones.extents.areas import AllKind, CommunityKind, ParentKind, ParentRemainderKind
from riskmap.geo.zones.extents.buffer import BufferKind
from riskmap.geo.zones.extents.locations import CellKind, GridDiskKind, LocationKind, RadiusKind
from riskmap.geo.zones.registry import register

BUILT_IN = (
    CommunityKind(),
    ParentKind(),
    AllKind(),
    ParentRemainderKind(),
    BufferKind(),
    RadiusKind(),
    CellKind(),
    GridDiskKind(),
)
for _kind in BUILT_IN:
    register(_kind)

__all__ = [
    "BUILT_IN",
    "AllKind",
    "BufferKind",
    "CellKind",
    "CommunityKind",
    "GridDiskKind",
    "LocationKind",
    "ParentKind",
    "ParentRemainderKind",
    "RadiusKind",
]
