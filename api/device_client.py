"""Reference client of ``GET /v1/zones/cells``: a device decides its own zone status from the
answer, without sending its position. Only the standard library and the ``h3`` package, so
that app developers can read it next to README's "Status on the device" and port it.

    answer = httpx.get(f"{server}/v1/zones/cells").json()   # keep it with its ETag
    level = status(answer, lat, lon)                         # a level id, or None

The algorithm (exact: the same answer as ``GET /v1/status`` for every point):

1. ``cell = h3.latlng_to_cell(lat, lon, answer["resolution"])``.
2. For each level, highest ``rank`` first:
   a. if ``cell`` or one of its parents (``h3.cell_to_parent(cell, r)`` for each resolution
      ``r`` of the level's ``cells``) is in the level's ``cells``: the point is in the level;
   b. else if ``cell`` is a key of the level's ``boundary``: the point is in the level when
      one of the polygons it lists (positions in the level's ``polygons``) covers the point,
      a point on an edge or a vertex included (:func:`covers`);
   c. else the point is not in the level.
3. No level: ``None`` (the answer "none" of ``GET /v1/status``).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import h3

__all__ = ["DeviceZones", "covers", "orientation", "status"]

Ring = list[list[float]]  # [[lon, lat], ...], closed (the first point repeated last)


def orientation(ax: float, ay: float, bx: float, by: float, px: float, py: float) -> int:
    """Side of point p from the line a -> b: 1 left (counter-clockwise), -1 right, 0 on the
    line; exact (a floating-point estimate when it is clearly away from 0, else exact
    rational arithmetic on the doubles, as GEOS's robust orientation)."""
    left = (bx - ax) * (py - ay)
    right = (by - ay) * (px - ax)
    det = left - right
    bound = 1e-15 * (abs(left) + abs(right))
    if det > bound:
        return 1
    if det < -bound:
        return -1
    fa, fb = Fraction(ax), Fraction(ay)
    exact = (Fraction(bx) - fa) * (Fraction(py) - fb) - (Fraction(by) - fb) * (Fraction(px) - fa)
    return (exact > 0) - (exact < 0)


def covers(rings: list[Ring], x: float, y: float) -> bool:
    """Whether the polygon ``rings`` (exterior first, then holes) covers the point (x = lon,
    y = lat): inside, or on an edge or vertex of any ring. A ray from the point towards +x
    counts the edges it crosses over every ring (odd: inside), as GEOS's ray-crossing
    counter does; a point on an edge or vertex is covered at once."""
    crossings = 0
    for ring in rings:
        for i in range(len(ring) - 1):
            x1, y1 = ring[i][0], ring[i][1]
            x2, y2 = ring[i + 1][0], ring[i + 1][1]
            if x1 < x and x2 < x:  # wholly left of the point
                continue
            if x == x2 and y == y2:  # a vertex
                return True
            if y1 == y and y2 == y:  # a horizontal edge on the ray's line
                if min(x1, x2) <= x <= max(x1, x2):
                    return True
                continue
            # an upward edge holds its start, not its end; a downward edge its end
            if (y1 > y and y2 <= y) or (y2 > y and y1 <= y):
                side = orientation(x1, y1, x2, y2, x, y)
                if side == 0:
                    return True
                if y2 < y1:
                    side = -side
                if side > 0:
                    crossings += 1
    return crossings % 2 == 1


class _Level:
    def __init__(self, doc: dict[str, Any]) -> None:
        self.id: str = doc["id"]
        self.rank: int = int(doc["rank"])
        self.cells = frozenset(doc["cells"])
        self.resolutions = sorted({h3.get_resolution(c) for c in self.cells})
        self.boundary: dict[str, list[int]] = doc["boundary"]
        self.polygons: list[list[Ring]] = doc["polygons"]

    def holds(self, cell: str, lat: float, lon: float) -> bool:
        for r in self.resolutions:
            if h3.cell_to_parent(cell, r) in self.cells:
                return True
        return any(covers(self.polygons[p], lon, lat) for p in self.boundary.get(cell, ()))


class DeviceZones:
    """An answer of ``GET /v1/zones/cells`` prepared for many look-ups."""

    def __init__(self, answer: dict[str, Any]) -> None:
        self.answer = answer
        self.resolution = int(answer["resolution"])
        self.levels = sorted((_Level(d) for d in answer["levels"]), key=lambda lv: -lv.rank)

    def status(self, lat: float, lon: float) -> str | None:
        """The level id of the place, or None (outside every zone)."""
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):  # false for NaN too
            raise ValueError(f"latitude {lat!r}, longitude {lon!r}: not a position")
        cell = h3.latlng_to_cell(lat, lon, self.resolution)
        for level in self.levels:
            if level.holds(cell, lat, lon):
                return level.id
        return None


_last: DeviceZones | None = None


def status(cells_answer: dict[str, Any], lat: float, lon: float) -> str | None:
    """The level id of the place (lat, lon) under the answer of ``GET /v1/zones/cells``, or
    None when it is in no zone (the answer is prepared once and kept for the next call)."""
    global _last
    prepared = _last
    if prepared is None or prepared.answer is not cells_answer:
        prepared = _last = DeviceZones(cells_answer)
    return prepared.status(lat, lon)
