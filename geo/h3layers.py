"""Map layers on H3 cells, as rows deck.gl's ``H3HexagonLayer`` draws directly.

* :func:`zone_cells`: the zone level of each cell of a resolution. A cell gets the level of
  its **centre**: the highest level of the zones covering the cell's centre point (a centre
  on a zone boundary belongs to the higher zone), which is exactly what a status look-up
  (:class:`geo.status.StatusLookup`) answers at that point. Cells whose centre is in no zone
  are left out.
* :func:`cell_counts`: distinct cases with a location in each cell of a resolution over a
  period, with each cell's key for the cell-key method (:mod:`geo.counts`). A location's cell
  at a resolution is the ancestor of its cell at :data:`BASE_RES` (H3's hierarchy of
  indexes), so the count of a cell is exactly the distinct cases of its children: counts
  aggregate across resolutions. H3 children overhang their parent a little, so a location
  near a cell's edge may lie just outside the hexagon of its ancestor (within the
  children's overhang) while inside a neighbour's.

Both bound their work: :class:`TooManyCells` is raised, before the cells are listed when the
area already says so, when an answer would hold more than ``max_cells`` cells.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import h3
import numpy as np
import pandas as pd
import shapely

from riskmap.geo import cells as h3c
from riskmap.geo.counts import distinct_counts
from riskmap.geo.status import StatusLookup

__all__ = ["CellCounts", "TooManyCells", "cell_counts", "zone_cells"]

BBox = tuple[float, float, float, float]

# average area of a cell (m2) per resolution, from H3's own table (res 0 .. 15)
_CELL_AREA_M2 = np.array([h3.average_hexagon_area(r, "m^2") for r in range(16)])


#: a case location is placed in its cell of this resolution (about 1 m2), then counted in
#: that cell's ancestors
BASE_RES = 15


class TooManyCells(ValueError):
    """The answer would hold more cells than allowed (the message names the count)."""


def _estimate(lookup: StatusLookup, geoms: np.ndarray, res: int) -> float:
    """Cells of ``res`` the geometries may hold: their area (in the communities' metric
    projection) over the mean cell area, plus a ring of boundary cells."""
    if len(geoms) == 0:
        return 0.0
    to_m = lookup.layer.to_metric
    metric = shapely.transform(geoms, lambda c: np.column_stack(to_m.transform(c[:, 0], c[:, 1])))
    area = float(shapely.area(metric).sum())
    edge = float(np.sqrt(_CELL_AREA_M2[res]))
    rim = float(shapely.length(metric).sum()) / edge
    return area / _CELL_AREA_M2[res] + rim


def zone_cells(
    lookup: StatusLookup, res: int, bbox: BBox | None = None, max_cells: int = 50_000
) -> pd.DataFrame:
    """The cells of ``res`` whose centre lies in a zone of ``lookup`` (and in ``bbox``), with
    the level of that centre: columns ``cell`` (uint64), ``level``, ``rank`` (the level's
    rank in the rule, 1 the lowest), ordered by cell. Raises :class:`TooManyCells` when more
    than ``max_cells`` cells would be listed."""
    h3c.check_resolution(res)
    geoms = lookup.result.zones.geometry.to_numpy()
    if bbox is not None and len(geoms):
        box = shapely.box(*bbox)
        geoms = shapely.intersection(geoms[shapely.intersects(geoms, box)], box)
    # the polygons only (a zone touching bbox along an edge leaves a line or a point)
    geoms = shapely.get_parts(shapely.get_parts(geoms))
    geoms = geoms[(shapely.get_type_id(geoms) == 3) & ~shapely.is_empty(geoms)]
    estimate = _estimate(lookup, geoms, res)
    if estimate > 2 * max_cells:
        raise TooManyCells(
            f"about {estimate:,.0f} cells of resolution {res} meet the zones"
            f"{' in bbox' if bbox else ''}: at most {max_cells:,} per answer"
        )
    # every cell whose centre is in a zone overlaps it: list the overlapping cells, then keep
    # those whose centre the zone index places in a zone
    found = [h3c.polygon_cells(g, res, "overlap") for g in geoms]
    cells = h3c.unique(np.concatenate(found)) if found else h3c.EMPTY_CELLS
    lat, lon = h3c.cell_centres(cells)
    if bbox is not None:
        w, s, e, n = bbox
        inside = (lon >= w) & (lon <= e) & (lat >= s) & (lat <= n)
        cells, lat, lon = cells[inside], lat[inside], lon[inside]
    zone, _ = lookup.locate(lon, lat)
    hit = zone >= 0
    if int(hit.sum()) > max_cells:
        raise TooManyCells(
            f"{int(hit.sum()):,} cells of resolution {res} lie in zones"
            f"{' in bbox' if bbox else ''}: at most {max_cells:,} per answer"
        )
    level = lookup.zone_level[zone[hit]] if hit.any() else np.empty(0, dtype=object)
    policy = lookup.result.policy
    ranks = {lv: policy.rank(lv) for lv in policy.level_ids}
    return pd.DataFrame(
        {
            "cell": cells[hit],
            "level": level.astype(object),
            "rank": np.array([ranks[lv] for lv in level], dtype=np.int64),
        }
    )


@dataclass(frozen=True)
class CellCounts:
    """Distinct cases per cell of one resolution over a period: ``cells`` (uint64, sorted),
    ``counts``, and with a secret ``keys`` (the cell keys, :func:`geo.counts.distinct_counts`).
    Only cells holding a case are listed."""

    res: int
    cells: np.ndarray
    counts: np.ndarray
    keys: np.ndarray | None


def cell_counts(
    cases: pd.DataFrame,
    res: int,
    start: dt.date,
    end: dt.date,
    case_type: str | None = None,
    secret: bytes | None = None,
    bbox: BBox | None = None,
    max_cells: int = 50_000,
) -> CellCounts:
    """Distinct cases with a location in each cell of ``res`` reported from ``start`` to
    ``end`` (a case with places in two cells counts in both), every location counted, in a
    community or not; with ``bbox`` the cells whose centre lies in it. Raises
    :class:`TooManyCells` beyond ``max_cells`` cells."""
    h3c.check_resolution(res)
    day = cases["reported"].to_numpy().astype("datetime64[D]")
    sel = (day >= np.datetime64(start)) & (day <= np.datetime64(end))
    if case_type is not None:
        sel &= (cases["type"] == case_type).to_numpy()
    c = cases.loc[sel]
    finest = h3c.points_to_cells(c["lon"].to_numpy(), c["lat"].to_numpy(), BASE_RES)
    point_cells = h3c.parents(finest, res) if res < BASE_RES else finest
    cells, cell_of = np.unique(point_cells, return_inverse=True)
    if bbox is not None and len(cells):
        lat, lon = h3c.cell_centres(cells)
        w, s, e, n = bbox
        inside = (lon >= w) & (lon <= e) & (lat >= s) & (lat <= n)
        keep = np.flatnonzero(inside)
        renumber = np.full(len(cells), -1, dtype=np.int64)
        renumber[keep] = np.arange(len(keep))
        cell_of = renumber[cell_of]
        ok = cell_of >= 0
        cells, cell_of, c = cells[keep], cell_of[ok], c.loc[ok]
    if len(cells) > max_cells:
        raise TooManyCells(
            f"{len(cells):,} cells of resolution {res} hold cases"
            f"{' in bbox' if bbox else ''}: at most {max_cells:,} per answer"
        )
    counted = distinct_counts(c["case_id"].to_numpy(), cell_of, len(cells), secret)
    return CellCounts(res, cells.astype(np.uint64), counted.counts, counted.keys)
