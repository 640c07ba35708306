"""riskmap: geospatial risk mapping for community-based prevention and control of epidemics.

The repository keeps its folders at the top level (``geo/``, ``api/``, ``tiles/``, ``data/``);
they install under this one namespace (``riskmap.geo``, ``riskmap.api``, ...), so nothing called
``api`` or ``data`` lands on ``sys.path``. In a wheel the folders are copied under ``riskmap/``;
in an editable install (``make install``) only ``src/`` is on the path and this package finds
the folders at the repository's root.

Names of the Python surface are imported when first used, so ``import riskmap`` stays quick.
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path as _Path
from typing import Any

_here = _Path(__file__).resolve().parent
if not (_here / "geo").is_dir():  # editable install: the folders sit at the repository's root
    __path__.append(str(_here.parents[1]))  # noqa: F821 (a package's __path__)

__version__ = "0.1.0"

# name -> module that defines it
_SURFACE: dict[str, str] = {
    # a store in this process: ingest, zones, status for arrays, layers, measures, scan
    "open": "riskmap.api.workspace",
    "Workspace": "riskmap.api.workspace",
    # the pure functions underneath
    "RiskmapError": "riskmap.geo._errors",
    "Policy": "riskmap.geo.policy",
    "load_policy": "riskmap.geo.policy",
    "preset_names": "riskmap.geo.policy",
    "CommunityLayer": "riskmap.geo.zones",
    "ZoneResult": "riskmap.geo.zones",
    "compute_zones": "riskmap.geo.zones",
    "PolygonIndex": "riskmap.geo.index",
    "StatusLookup": "riskmap.geo.status",
    "zones_over": "riskmap.geo.daily",
    "incidence": "riskmap.geo.measures",
    "growth": "riskmap.geo.measures",
    "population_under_levels": "riskmap.geo.measures",
    "hotspots": "riskmap.geo.hotspots",
    "space_time_scan": "riskmap.geo.scan",
    "zones_geojson": "riskmap.tiles.geojson",
    "communities_geojson": "riskmap.tiles.geojson",
    # maps that draw offline in notebooks (Workspace.map, or any pydeck deck)
    "NotebookMap": "riskmap.tiles.notebook",
    "show_deck": "riskmap.tiles.notebook",
}

__all__ = sorted(_SURFACE)


def __getattr__(name: str) -> Any:
    module = _SURFACE.get(name)
    if module is None:
        raise AttributeError(f"module 'riskmap' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_SURFACE))
