"""Mapbox Vector Tiles (MVT 2.1) of a collection for tile (z, x, y) of ``WebMercatorQuad``.

A :class:`TileLayer` holds one collection of one snapshot prepared once: its geometries in
Web Mercator with an STRtree over them (:class:`MercatorGeometries`, which layers of the same
data version may share: the communities' geometries do not change with the rule or the date),
the features' integer ids and their properties. :func:`encode_tile` then renders a tile:

0. at the zooms where a layer's features are a pixel or two each (a large city's zones over
   the whole city), from the layer with its features merged by a property (:class:`Merge`:
   one feature per level, the union of its zones, simplified by a pixel, parts under a pixel
   kept as a one-pixel square, holes under a pixel filled), built once per zoom;
1. the features whose bounding box meets the tile and its buffer (the STRtree);
2. their geometries in tile units (``extent`` per tile side, y down), clipped to the tile
   grown by ``buffer`` units on every side, so that a fill or outline crossing the tile edge
   draws no seam;
3. simplified by ``tolerance`` tile units (:func:`tile_tolerance`: a pixel below z10, half a
   pixel below z12, an eighth of a pixel from there, where clients overzoom; 16 units are
   one pixel of a 256-pixel tile) keeping each feature valid, snapped to the integer
   grid of the tile (quantized), with exterior rings of positive area as the MVT spec asks;
   a feature that vanishes (smaller than a tile unit at this zoom) is left out;
4. encoded in the MVT protobuf messages of ``mapbox-vector-tile`` (the polygons' commands for
   all features at once with numpy; the library's own encoder is slow at a whole city per
   tile); the layer's name is the collection id. A tile with no
   feature in any layer is ``None`` (HTTP 204).

Feature ids are integers derived from the public string id (:func:`feature_ids`): the same
zone or community has the same id in every tile, at every zoom and in every snapshot; the
string id is also the ``id`` property. Properties that are missing are left out of a feature.

:class:`TileCache` keeps encoded tiles (and their gzip bodies, made when first asked for) in
memory up to a bound in bytes, the least recently used first out.
"""

from __future__ import annotations

import gzip
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import geopandas as gpd
import morecantile
import numpy as np
import pandas as pd
import shapely
from mapbox_vector_tile.geom_encoder import GeometryEncoder
from mapbox_vector_tile.Mapbox import vector_tile_pb2 as _pb
from numpy.typing import NDArray
from pyproj import Transformer

from riskmap.geo._errors import NotFoundError
from riskmap.geo.crs import WGS84

TMS = morecantile.tms.get("WebMercatorQuad")
TILE_MATRIX_SET = "WebMercatorQuad"
MAX_ZOOM = 22  # tiles are served up to here (TileJSON says 14: clients overzoom beyond)
EXTENT = 4096  # tile units per tile side
BUFFER = 64  # tile units drawn beyond each edge
TOLERANCE = 2.0  # simplification from FINE_ZOOM on, tile units (1/8 of a pixel)
COARSE_TOLERANCE = 8.0  # simplification below FINE_ZOOM (half a pixel of a 256-pixel tile)
CITY_TOLERANCE = 16.0  # simplification below CITY_ZOOM (a pixel)
FINE_ZOOM = 12  # from here tiles are overzoomed by clients (TileJSON's maxzoom is 14)
CITY_ZOOM = 10  # below it a tile holds a whole city or more
MVT_MEDIA_TYPE = "application/vnd.mapbox-vector-tile"
_TO_MERCATOR = Transformer.from_crs(WGS84, "EPSG:3857", always_xy=True)
# Web Mercator is defined up to these latitudes (the tile matrix's square)
_MAX_LAT = 85.0511287798066
WORLD = (-180.0, -_MAX_LAT, 180.0, _MAX_LAT)  # (west, south, east, north) of the matrix


class TileNotFound(NotFoundError):
    """A tile outside the tile matrix set (zoom out of range, x or y outside the matrix)."""


def tile_tolerance(z: int) -> float:
    """The simplification of tiles of zoom ``z``, in tile units: a pixel below
    :data:`CITY_ZOOM` (a city seen whole: its outlines need no finer), half a pixel below
    :data:`FINE_ZOOM`, an eighth of a pixel from there (tiles that clients magnify beyond
    TileJSON's maxzoom)."""
    if z < CITY_ZOOM:
        return CITY_TOLERANCE
    return COARSE_TOLERANCE if z < FINE_ZOOM else TOLERANCE


def check_tile(z: int, x: int, y: int) -> morecantile.Tile:
    """``morecantile.Tile(x, y, z)`` when it exists in ``WebMercatorQuad``, else
    :class:`TileNotFound` naming what is out of range."""
    if not TMS.minzoom <= z <= TMS.maxzoom:
        raise TileNotFound(f"tile {z}/{x}/{y}: zoom {z} is outside {TMS.minzoom}..{TMS.maxzoom}")
    n = 1 << z
    if not (0 <= x < n and 0 <= y < n):
        raise TileNotFound(f"tile {z}/{x}/{y}: x and y must be in 0..{n - 1} at zoom {z}")
    return morecantile.Tile(x, y, z)


def feature_ids(ids: Iterable[str]) -> NDArray[np.uint64]:
    """Integer feature ids from public string ids: the first 53 bits of their BLAKE2b hash
    (exact as JavaScript numbers), so the same id gives the same number in every tile, zoom
    and snapshot. Two of 100,000 ids collide with a probability below one in a billion."""
    return np.fromiter(
        (
            int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "big") >> 11
            for s in ids
        ),
        dtype=np.uint64,
    )


def _to_mercator(geoms: NDArray[np.object_]) -> NDArray[np.object_]:
    def project(xy: NDArray[np.float64]) -> NDArray[np.float64]:
        lat = np.clip(xy[:, 1], -_MAX_LAT, _MAX_LAT)
        x, y = _TO_MERCATOR.transform(xy[:, 0], lat)
        return np.column_stack([x, y])

    return np.asarray(shapely.transform(geoms, project), dtype=object)


@dataclass(eq=False)
class MercatorGeometries:
    """Geometries in Web Mercator with an STRtree, prepared once per data version."""

    geoms: NDArray[np.object_]  # EPSG:3857
    bounds: tuple[float, float, float, float]  # (west, south, east, north) in degrees
    tree: shapely.STRtree = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.tree = shapely.STRtree(self.geoms)

    @classmethod
    def from_wgs84(cls, geoms: Iterable[shapely.Geometry]) -> MercatorGeometries:
        g = np.asarray(list(geoms), dtype=object)
        if len(g) == 0:
            return cls(g, WORLD)
        w, s, e, n = shapely.total_bounds(g)
        return cls(_to_mercator(g), (float(w), float(s), float(e), float(n)))

    def __len__(self) -> int:
        return len(self.geoms)


@dataclass(frozen=True)
class Merge:
    """How a layer of many small features is drawn at the zooms where they are a pixel or
    two each (a large city's zones at a city-wide zoom): below zoom ``below`` a tile holds one
    feature per distinct value of the ``by`` property, the union of the features that have it
    (shared outlines dissolved), simplified by a pixel of the zoom (parts under a pixel kept as
    a one-pixel square, holes under a pixel filled: :func:`_pixel_dots`). A merged feature has
    the ``by`` property, the ``keep`` properties of the first feature merged (the same in all
    of them, as a level's label and colour), ``count``: the number of features merged, and
    the id ``merged:<by value>``. Merged features keep the order of their first feature, or
    are sorted by the ``order`` property (renderers draw the last on top: a level's holes
    smaller than a pixel are filled, so the higher levels inside them must come after)."""

    below: int
    by: str
    keep: tuple[str, ...] = ()
    count: str = "count"
    order: str | None = None  # merged features sorted by this property (drawn last on top)


def _pixel_dots(g: shapely.Geometry, pixel: float) -> shapely.Geometry:
    """``g`` as a city-wide view draws it at ``pixel`` metres a pixel: a part smaller than a
    pixel becomes a one-pixel square at its centre (a lone sealed community stays visible), a
    hole smaller than a pixel is filled (the higher level inside it is drawn over it),
    overlapping squares and parts are merged."""
    parts = shapely.get_parts(g)
    small = shapely.area(parts) < pixel * pixel
    kept = [_without_small_holes(p, pixel * pixel) for p in parts[~small]]
    if not small.any():
        return shapely.multipolygons(kept)
    x, y = shapely.get_coordinates(shapely.centroid(parts[small])).T
    half = pixel / 2
    dots = shapely.box(x - half, y - half, x + half, y + half)
    return shapely.union_all(np.concatenate([np.array(kept, dtype=object), dots]))


def _without_small_holes(part: shapely.Polygon, min_area: float) -> shapely.Polygon:
    holes = [r for r in part.interiors if shapely.Polygon(r).area >= min_area]
    return part if len(holes) == len(part.interiors) else shapely.Polygon(part.exterior, holes)


def pixel_metres(z: int, extent_px: int = 256) -> float:
    """One pixel of a ``extent_px``-pixel tile of zoom ``z`` in Web Mercator metres."""
    left, _, right, _ = TMS.xy_bounds(morecantile.Tile(0, 0, z))
    return float(right - left) / extent_px


#: the planner map draws a layer of many small polygons (a large city's communities) from the
#: zoom at which its tiles over the city hold at most this many of them on average
MAX_TILE_FEATURES = 5_000


def dense_minzoom(
    count: int,
    bounds: tuple[float, float, float, float],
    per_tile: int = MAX_TILE_FEATURES,
    maxzoom: int = 14,
) -> int:
    """The lowest zoom at which ``count`` features spread over ``bounds`` come to at most
    ``per_tile`` a tile on average (0 for a small city: drawn at every zoom)."""
    w, s, e, n = bounds
    for z in range(maxzoom + 1):
        tiles = sum(1 for _ in TMS.tiles(w, s, e, n, [z]))
        if count <= per_tile * max(tiles, 1):
            return z
    return maxzoom


def _plain(v: Any) -> Any:
    """A property value as MVT writes it (str, int, float, bool), or None (left out)."""
    if v is None or v is pd.NaT:
        return None
    if isinstance(v, bool | np.bool_):
        return bool(v)
    if isinstance(v, int | np.integer):
        return int(v)
    if isinstance(v, float | np.floating):
        return None if np.isnan(v) else float(v)
    return str(v)


def _value(v: Any) -> Any:
    if isinstance(v, bool):
        return _pb.tile.value(bool_value=v)
    if isinstance(v, int):
        return _pb.tile.value(sint_value=v) if v < 0 else _pb.tile.value(uint_value=v)
    if isinstance(v, float):
        return _pb.tile.value(double_value=v)
    return _pb.tile.value(string_value=v)


class TileLayer:
    """One collection of one snapshot, prepared for tiles: the frame's rows (``id`` column,
    property columns, geometry in any CRS) as Web Mercator geometries in an STRtree, integer
    ids and the properties as MVT keys and values. ``geometry`` passes prepared geometries of
    the same rows in the same order (shared between layers of one data version). Below
    ``minzoom`` the layer has no feature in any tile (a large city's communities are a pixel
    each at z8: a map shows its zones there). ``merge``: below its zoom, features are merged
    (:class:`Merge`; :meth:`at_zoom` gives the layer a tile of a zoom is rendered from)."""

    def __init__(
        self,
        name: str,
        frame: gpd.GeoDataFrame,
        *,
        geometry: MercatorGeometries | None = None,
        minzoom: int = 0,
        merge: Merge | None = None,
    ) -> None:
        if not name:
            raise ValueError("a tile layer needs a name")
        if "id" not in frame:
            raise ValueError(f"layer {name!r}: the frame has no 'id' column")
        if merge is not None:
            wanted = (merge.by, *merge.keep, *([merge.order] if merge.order else []))
            missing = [c for c in wanted if c not in frame]
            if missing:
                raise ValueError(f"layer {name!r}: no column {missing} to merge features by")
        self.name = name
        self.minzoom = minzoom
        self.merge = merge
        self.simplified = False  # True: geometries already simplified for their zoom
        self._frame = frame if merge is not None else None  # kept only to merge from
        self._merged: dict[int, TileLayer] = {}
        self._unions: list[tuple[Any, list[int], shapely.Geometry]] | None = None
        self._merge_lock = threading.Lock()
        if geometry is None:
            wgs = frame.geometry if frame.crs is None else frame.geometry.to_crs(WGS84)
            geometry = MercatorGeometries.from_wgs84(wgs.to_numpy())
        elif len(geometry) != len(frame):
            raise ValueError(
                f"layer {name!r}: {len(geometry)} prepared geometries for {len(frame)} rows"
            )
        self.geometry = geometry
        self.id_strings = frame["id"].astype(str).to_numpy()
        self.ids = feature_ids(self.id_strings)
        # properties: keys, the distinct values (typed: True is not 1), and per feature and
        # key the number of its value (-1: missing, left out of the feature)
        self.keys = [str(c) for c in frame.columns if c != frame.geometry.name]
        index: dict[tuple[str, Any], int] = {}
        self._values: list[Any] = []  # protobuf values
        self._plain_values: list[Any] = []  # the same as Python values
        self._tags = np.full((len(frame), len(self.keys)), -1, dtype=np.int64)
        for k, col in enumerate(self.keys):
            for i, raw in enumerate(frame[col].tolist()):
                v = _plain(raw)
                if v is None:
                    continue
                key = (type(v).__name__, v)
                n = index.get(key)
                if n is None:
                    n = index[key] = len(self._values)
                    self._values.append(_value(v))
                    self._plain_values.append(v)
                self._tags[i, k] = n

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        return self.geometry.bounds

    def properties(self, row: int) -> dict[str, Any]:
        """The properties of feature ``row`` as the tile carries them."""
        return {
            self.keys[k]: self._plain_values[v] for k, v in enumerate(self._tags[row]) if v >= 0
        }

    def at_zoom(self, z: int) -> TileLayer:
        """The layer tiles of zoom ``z`` are rendered from: this one, or below the merge zoom
        its features merged for ``z`` (built once per zoom; see :class:`Merge`)."""
        m = self.merge
        if m is None or z >= m.below or not len(self):
            return self
        got = self._merged.get(z)
        if got is None:
            with self._merge_lock:
                got = self._merged.get(z)
                if got is None:
                    got = self._merged[z] = self._merged_layer(m, z)
        return got

    def _merged_layer(self, m: Merge, z: int) -> TileLayer:
        frame = self._frame
        assert frame is not None
        if self._unions is None:
            # once: each group's union at the finest merged zoom (simplified first: dissolving
            # detail no zoom below it can show costs time for nothing)
            keys = frame[m.by].to_numpy()
            first: dict[Any, list[int]] = {}
            for i, k in enumerate(keys.tolist()):
                first.setdefault(k, []).append(i)
            fine = pixel_metres(m.below - 1) / 2
            if m.order is not None:
                order = frame[m.order].to_numpy()
                first = dict(sorted(first.items(), key=lambda kv: order[kv[1][0]]))
            self._unions = [
                (
                    k,
                    rows,
                    shapely.union_all(
                        shapely.simplify(self.geometry.geoms[rows], fine, preserve_topology=True)
                    ),
                )
                for k, rows in first.items()
            ]
        # a pixel of zoom z; a part smaller than a pixel becomes a one-pixel square at its
        # centre (a lone sealed community stays visible in a city-wide view); snapped to the
        # zoom's tile grid (1/16 of a pixel: tile units start at the matrix's corner, a whole
        # number of units from 0) so that tiles need not simplify nor repair rounding
        pixel = pixel_metres(z)
        geoms = shapely.simplify(
            np.array([u for _, _, u in self._unions], dtype=object), pixel, preserve_topology=True
        )
        geoms = np.array([_pixel_dots(g, pixel) for g in geoms], dtype=object)
        geoms = shapely.set_precision(geoms, pixel * 256 / EXTENT)
        rows = [r[0] for _, r, _ in self._unions]
        columns: dict[str, list[Any]] = {
            "id": [f"merged:{k}" for k, _, _ in self._unions],
            m.by: [k for k, _, _ in self._unions],
        }
        for c in m.keep:
            columns[c] = frame[c].iloc[rows].tolist()
        columns[m.count] = [len(r) for _, r, _ in self._unions]
        merged = gpd.GeoDataFrame(columns, geometry=list(geoms))
        out = TileLayer(
            self.name,
            merged,
            geometry=MercatorGeometries(geoms, self.geometry.bounds),
            minzoom=self.minzoom,
        )
        out.simplified = True
        return out


def _top_dimension(g: shapely.Geometry) -> shapely.Geometry:
    """The parts of the highest dimension of a geometry collection, as one multi-geometry."""
    parts = shapely.get_parts(g)
    if len(parts) == 0:
        return g
    dim = shapely.get_dimensions(parts)
    top = shapely.get_parts(parts[dim == dim.max()])
    make = {2: shapely.multipolygons, 1: shapely.multilinestrings}.get(int(dim.max()))
    return make(top) if make else shapely.multipoints(top)


def tile_geometries(
    layer: TileLayer,
    tile: morecantile.Tile,
    *,
    extent: int = EXTENT,
    buffer: int = BUFFER,
    tolerance: float | None = None,
) -> tuple[NDArray[np.int64], NDArray[np.object_]]:
    """Row numbers of the layer's features in ``tile`` and their geometries in tile units
    (y down, integer, valid, clipped to the buffered tile, simplified, exteriors of positive
    area); features that vanish at this zoom are left out."""
    left, bottom, right, top = TMS.xy_bounds(tile)
    sx, sy = extent / (right - left), extent / (top - bottom)
    pad = buffer / sx
    if tile.z < layer.minzoom:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=object)
    rows = layer.geometry.tree.query(shapely.box(left - pad, bottom - pad, right + pad, top + pad))
    if len(rows) == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=object)
    rows = np.sort(rows)
    origin = np.array([left, top])
    scale = np.array([sx, -sy])
    g = shapely.transform(layer.geometry.geoms[rows], lambda xy: (xy - origin) * scale)
    g = shapely.clip_by_rect(g, -buffer, -buffer, extent + buffer, extent + buffer)
    if tolerance is None:
        tolerance = tile_tolerance(tile.z)
    if tolerance > 0 and not layer.simplified:
        g = shapely.simplify(g, tolerance, preserve_topology=False)
    # quantize: round to the integer grid; the few features rounding makes invalid (a
    # collapsed sliver, a ring touching itself) are repaired, keeping their dimension
    g = shapely.transform(g, np.rint)
    g = _valid(g)
    g = shapely.remove_repeated_points(g, 0.0)  # valid rings keep 3 distinct points at least
    mixed = shapely.get_type_id(g) == 7  # clipping may leave a line beside a polygon
    if mixed.any():
        g[mixed] = [_top_dimension(x) for x in g[mixed]]
    keep = ~(shapely.is_empty(g) | shapely.is_missing(g))
    rows, g = rows[keep], g[keep]
    g = shapely.orient_polygons(g, exterior_cw=False)  # positive area in y-down tile units
    return rows.astype(np.int64), g


_PART_BY_PART = 32  # a multipolygon of more parts is checked and repaired part by part


def _valid(g: NDArray[np.object_]) -> NDArray[np.object_]:
    """``g`` with its invalid geometries repaired, keeping their dimension. A multipolygon of
    many parts (a merged level) is checked and repaired part by part: GEOS takes tens of
    milliseconds to check it whole and a second to repair it whole for the one part that
    rounding made touch another. Its parts may then touch or overlap by a tile unit, which
    renderers draw the same (each polygon is filled alone)."""
    many = (shapely.get_type_id(g) == 6) & (shapely.get_num_geometries(g) > _PART_BY_PART)
    few = np.flatnonzero(~many)
    bad = few[~shapely.is_valid(g[few])]
    if len(bad):
        g[bad] = shapely.make_valid(g[bad], method="structure", keep_collapsed=False)
    for i in np.flatnonzero(many):
        parts = shapely.get_parts(g[i])
        wrong = ~shapely.is_valid(parts)
        if wrong.any():
            parts[wrong] = shapely.make_valid(
                parts[wrong], method="structure", keep_collapsed=False
            )
            pieces = shapely.get_parts(parts)  # a repaired part may be several
            g[i] = shapely.multipolygons(pieces[shapely.get_type_id(pieces) == 3])
    return g


def _zigzag(v: NDArray[np.int64]) -> NDArray[np.int64]:
    return (v << 1) ^ (v >> 63)


def _polygon_commands(
    geoms: NDArray[np.object_],
) -> tuple[list[int], NDArray[np.int64]]:
    """MVT geometry commands of polygonal geometries on the integer grid, all at once: the
    commands of geometry i are ``out[offsets[i]:offsets[i + 1]]``. Per ring: MoveTo(1) to its
    first vertex, LineTo(n - 1) through the others, ClosePath; the cursor runs on from ring
    to ring within a feature and starts at (0, 0) for each feature."""
    parts, part_of = shapely.get_parts(geoms, return_index=True)
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    xy, coord_ring = shapely.get_coordinates(rings, return_index=True)
    xy = xy.astype(np.int64)
    ring_of_feature = part_of[ring_part]
    # the closing vertex of each ring is ClosePath
    last = np.ones(len(xy), dtype=bool)
    last[:-1] = coord_ring[1:] != coord_ring[:-1]
    xy, coord_ring = xy[~last], coord_ring[~last]
    n = np.bincount(coord_ring, minlength=len(rings))
    first = np.concatenate([[0], np.cumsum(n)[:-1]])
    feature = ring_of_feature[coord_ring]
    d = np.diff(xy, axis=0, prepend=np.zeros((1, 2), dtype=np.int64))
    starts = np.ones(len(xy), dtype=bool)
    starts[1:] = feature[1:] != feature[:-1]
    d[starts] = xy[starts]
    zz = _zigzag(d)
    size = 2 * n + 3
    ring_start = np.concatenate([[0], np.cumsum(size)[:-1]]).astype(np.int64)
    out = np.empty(int(size.sum()), dtype=np.int64)
    out[ring_start] = (1 << 3) | 1  # MoveTo, 1
    out[ring_start + 3] = ((n - 1) << 3) | 2  # LineTo, n - 1
    out[ring_start + size - 1] = (1 << 3) | 7  # ClosePath
    k = np.arange(len(xy)) - first[coord_ring]
    pos = ring_start[coord_ring] + np.where(k == 0, 1, 2 + 2 * k)
    out[pos] = zz[:, 0]
    out[pos + 1] = zz[:, 1]
    per_feature = np.bincount(ring_of_feature, weights=size, minlength=len(geoms))
    offsets = np.concatenate([[0], np.cumsum(per_feature)]).astype(np.int64)
    return out.tolist(), offsets


def _encode_layer(
    tile: Any, layer: TileLayer, rows: NDArray[np.int64], geoms: NDArray[np.object_], extent: int
) -> None:
    out = tile.layers.add()
    out.version = 2
    out.name = layer.name
    out.extent = extent
    out.keys.extend(layer.keys)
    # values used in this tile, renumbered from 0; tags as (key, value) pairs per feature
    sub = layer._tags[rows]
    present = sub >= 0
    used, local = np.unique(sub[present], return_inverse=True)
    out.values.extend([layer._values[i] for i in used.tolist()])
    _, key_of = np.nonzero(present)
    tags = np.empty(2 * len(key_of), dtype=np.int64)
    tags[0::2], tags[1::2] = key_of, local
    tag_list = tags.tolist()
    tag_off = np.concatenate([[0], np.cumsum(2 * present.sum(axis=1))]).tolist()
    types = shapely.get_type_id(geoms)
    polygonal = (types == 3) | (types == 6)
    cmd, cmd_off = _polygon_commands(geoms[polygonal])
    cmd_off_list = cmd_off.tolist()
    ids = layer.ids[rows].tolist()
    j = 0
    for i, is_poly in enumerate(polygonal.tolist()):
        f = out.features.add()
        f.id = ids[i]
        f.tags.extend(tag_list[tag_off[i] : tag_off[i + 1]])
        if is_poly:
            f.type = _pb.tile.Polygon
            f.geometry.extend(cmd[cmd_off_list[j] : cmd_off_list[j + 1]])
            j += 1
        else:  # points and lines, rare in these layers: the library's own encoder
            g = geoms[i]
            f.type = _pb.tile.Point if types[i] in (0, 4) else _pb.tile.LineString
            f.geometry.extend(GeometryEncoder(True, extent).encode(g))


def encode_tile(
    layers: Sequence[TileLayer],
    z: int,
    x: int,
    y: int,
    *,
    extent: int = EXTENT,
    buffer: int = BUFFER,
    tolerance: float | None = None,
) -> bytes | None:
    """The MVT of ``layers`` for tile z/x/y (one MVT layer per collection, named after it),
    or None when no layer has a feature there. Raises :class:`TileNotFound` for a tile
    outside ``WebMercatorQuad``."""
    tile = check_tile(z, x, y)
    out = _pb.tile()
    for layer in layers:
        layer = layer.at_zoom(z)
        rows, geoms = tile_geometries(
            layer, tile, extent=extent, buffer=buffer, tolerance=tolerance
        )
        if len(rows):
            _encode_layer(out, layer, rows, geoms, extent)
    if not out.layers:
        return None
    return bytes(out.SerializeToString())


def tiles_over(
    bounds: tuple[float, float, float, float], minzoom: int, maxzoom: int
) -> Iterator[morecantile.Tile]:
    """The tiles of zooms ``minzoom..maxzoom`` over ``bounds`` (west, south, east, north in
    degrees), zoom by zoom."""
    w, s, e, n = bounds
    for z in range(minzoom, maxzoom + 1):
        yield from TMS.tiles(w, s, e, n, [z], truncate=True)


def prerender(
    cache: TileCache,
    prefix: tuple[Hashable, ...],
    layer: TileLayer,
    minzoom: int,
    maxzoom: int,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Render every tile of ``layer`` for zooms ``minzoom..maxzoom`` over its bounds into
    ``cache`` under ``(*prefix, layer.name, z, x, y)`` (``prefix``: data version, rule, date),
    tiles already there left as they are. Returns the number of tiles with features; the cache's
    bound still holds (the least recently used go first)."""
    if not len(layer):
        return 0
    todo = list(tiles_over(layer.bounds, max(minzoom, layer.minzoom), maxzoom))
    found = 0
    for i, t in enumerate(todo, 1):
        key = (*prefix, layer.name, t.z, t.x, t.y)
        render = partial(encode_tile, [layer], t.z, t.x, t.y)
        if cache.get_or_render(key, render) is not None:
            found += 1
        if progress is not None:
            progress(i, len(todo))
    return found


def gzip_tile(body: bytes) -> bytes:
    """A gzip body (``Content-Encoding: gzip``), the same bytes for the same tile."""
    return gzip.compress(body, compresslevel=6, mtime=0)


_EMPTY = object()
_ENTRY_OVERHEAD = 200  # bytes counted per entry besides the tile bodies (key, bookkeeping)


@dataclass
class _Entry:
    body: bytes | None
    gz: bytes | None = None

    @property
    def nbytes(self) -> int:
        return _ENTRY_OVERHEAD + len(self.body or b"") + len(self.gz or b"")


class TileCache:
    """Encoded tiles kept in memory, least recently used first out, within ``max_bytes``.

    Keys are any hashable, by convention ``(data version, rule, date, layer, z, x, y)``: a
    new data version is a new key, so a zone update never serves an old tile (the old ones age
    out). Empty tiles are kept too (as None). A tile larger than the whole bound is served and
    not kept. Safe to share between threads (tiles render outside the lock: two requests for
    the same missing tile may both render it)."""

    def __init__(self, max_bytes: int = 64 * 2**20) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = max_bytes
        self.nbytes = 0
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.nbytes = 0

    def _lookup(self, key: Hashable) -> Any:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return _EMPTY
            self._entries.move_to_end(key)
            self.hits += 1
            return entry

    def _store(self, key: Hashable, entry: _Entry) -> None:
        size = entry.nbytes
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.nbytes -= old.nbytes
            if size > self.max_bytes:
                return
            self._entries[key] = entry
            self.nbytes += size
            while self.nbytes > self.max_bytes:
                _, out = self._entries.popitem(last=False)
                self.nbytes -= out.nbytes

    def peek(self, key: Hashable, *, gzip: bool = False) -> tuple[bool, bytes | None]:
        """``(True, tile)`` when the tile under ``key`` is kept in the form asked for (its
        gzip body when ``gzip``; None for an empty tile), else ``(False, None)``: nothing is
        rendered and a miss is not counted (the caller renders through
        :meth:`get_or_render`)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or (gzip and entry.body is not None and entry.gz is None):
                return False, None
            self._entries.move_to_end(key)
            self.hits += 1
        return True, entry.gz if gzip and entry.body is not None else entry.body

    def get_or_render(
        self, key: Hashable, render: Callable[[], bytes | None], *, gzip: bool = False
    ) -> bytes | None:
        """The tile under ``key`` (its gzip body when ``gzip``), rendered by ``render`` and
        kept when missing; None for an empty tile."""
        found = self._lookup(key)
        if found is _EMPTY:
            entry = _Entry(render())
        else:
            entry = found
            if not gzip or entry.body is None or entry.gz is not None:
                return entry.gz if gzip and entry.body is not None else entry.body
        if gzip and entry.body is not None:
            entry = _Entry(entry.body, gzip_tile(entry.body))
        self._store(key, entry)
        return entry.gz if gzip and entry.body is not None else entry.body
