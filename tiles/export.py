"""Static export: the vector tiles of a snapshot as one PMTiles (v3) archive.

A PMTiles file is served by any static host or CDN (HTTP range requests) and read by MapLibre's
``pmtiles`` protocol, QGIS, or the ``pmtiles`` Python package, with no riskmap behind it. The
tiles are the ones the service serves (:func:`tiles.mvt.encode_tile`), gzip-compressed, for
every tile of ``minzoom..maxzoom`` over the layers' bounds that holds a feature, written in
tile-id order (a clustered archive); the metadata carries the TileJSON-style
``vector_layers`` so that a viewer knows the layers and their fields.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pmtiles.tile import Compression, TileType, zxy_to_tileid
from pmtiles.writer import Writer

from riskmap.tiles.collections import COLLECTIONS
from riskmap.tiles.mvt import TMS, TileLayer, encode_tile, gzip_tile, tiles_over
from riskmap.tiles.tilejson import fit_zoom

EXPORT_MINZOOM = 8
EXPORT_MAXZOOM = 14


@dataclass(frozen=True)
class ExportSummary:
    path: Path
    tiles: int  # tiles written (with at least one feature)
    empty: int  # tiles of the range left out (no feature)
    bytes: int  # size of the archive
    minzoom: int
    maxzoom: int


def _tile_id(t: Any) -> int:
    return int(zxy_to_tileid(t.z, t.x, t.y))


def _e7(v: float) -> int:
    return int(round(v * 1e7))


def export_pmtiles(
    out: Path,
    layers: Sequence[TileLayer],
    *,
    minzoom: int = EXPORT_MINZOOM,
    maxzoom: int = EXPORT_MAXZOOM,
    name: str = "riskmap",
    description: str = "",
    attribution: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ExportSummary:
    """Write the tiles of ``layers`` (one MVT layer each, as served) for zooms
    ``minzoom..maxzoom`` to the PMTiles archive ``out``. ``progress(done, total)`` is called
    after each tile of the range. ``metadata`` adds keys to the archive's JSON metadata (for
    example the rule and the date of the snapshot). Raises ValueError when the zooms are out
    of range or no layer has a feature."""
    if not 0 <= minzoom <= maxzoom <= TMS.maxzoom:
        raise ValueError(
            f"zooms must satisfy 0 <= minzoom <= maxzoom <= {TMS.maxzoom}: {minzoom}, {maxzoom}"
        )
    full = [lyr for lyr in layers if len(lyr)]
    if not full:
        raise ValueError("nothing to export: the layers have no feature")
    w = min(lyr.bounds[0] for lyr in full)
    s = min(lyr.bounds[1] for lyr in full)
    e = max(lyr.bounds[2] for lyr in full)
    n = max(lyr.bounds[3] for lyr in full)
    per_zoom = [
        sorted(tiles_over((w, s, e, n), z, z), key=_tile_id) for z in range(minzoom, maxzoom + 1)
    ]
    total = sum(len(ts) for ts in per_zoom)
    done = written = 0
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    try:
        with tmp.open("wb") as f:
            writer = Writer(f)
            for tiles in per_zoom:  # tile ids grow with the zoom, and within it in this order
                for t in tiles:
                    body = encode_tile(full, t.z, t.x, t.y)
                    if body is not None:
                        writer.write_tile(zxy_to_tileid(t.z, t.x, t.y), gzip_tile(body))
                        written += 1
                    done += 1
                    if progress is not None:
                        progress(done, total)
            if written == 0:
                raise ValueError(f"nothing to export: no feature in zooms {minzoom}..{maxzoom}")
            cz = fit_zoom((w, s, e, n), minzoom, maxzoom)
            header = {
                "tile_compression": Compression.GZIP,
                "tile_type": TileType.MVT,
                "min_zoom": minzoom,
                "max_zoom": maxzoom,
                "min_lon_e7": _e7(w),
                "min_lat_e7": _e7(s),
                "max_lon_e7": _e7(e),
                "max_lat_e7": _e7(n),
                "center_zoom": cz,
                "center_lon_e7": _e7((w + e) / 2),
                "center_lat_e7": _e7((s + n) / 2),
            }
            meta: dict[str, Any] = {
                "name": name,
                "description": description,
                "format": "pbf",
                "type": "overlay",
                "vector_layers": [
                    {
                        "id": lyr.name,
                        "fields": dict(COLLECTIONS[lyr.name].fields)
                        if lyr.name in COLLECTIONS
                        else {k: "String" for k in lyr.keys},
                        "minzoom": max(minzoom, lyr.minzoom),
                        "maxzoom": maxzoom,
                    }
                    for lyr in full
                ],
            }
            if attribution:
                meta["attribution"] = attribution
            meta.update(metadata or {})
            writer.finalize(header, meta)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return ExportSummary(out, written, total - written, out.stat().st_size, minzoom, maxzoom)
