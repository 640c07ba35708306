"""The PMTiles export, read back with the ``pmtiles`` package's reader."""

from __future__ import annotations

import gzip
from pathlib import Path

import mapbox_vector_tile
import pytest
from pmtiles.reader import MmapSource, Reader, all_tiles
from pmtiles.tile import Compression, TileType

from riskmap.tiles.export import export_pmtiles
from riskmap.tiles.mvt import TMS, TileLayer, encode_tile
from tests.tiles.helpers import City


def test_pmtiles_round_trip(city: City, tmp_path: Path) -> None:
    layers = [city.tiles["zones"], city.tiles["communities"]]
    seen: list[tuple[int, int]] = []
    out = tmp_path / "maps" / "zones.pmtiles"
    summary = export_pmtiles(
        out,
        layers,
        minzoom=9,
        maxzoom=12,
        metadata={"policy": "cn-three-zone", "at": "2024-03-31"},
        progress=lambda done, total: seen.append((done, total)),
    )
    total = seen[-1][1]
    assert seen[-1] == (total, total) and len(seen) == total == summary.tiles + summary.empty
    assert summary.bytes == out.stat().st_size
    assert [p.name for p in out.parent.iterdir()] == ["zones.pmtiles"]  # no part file left
    with out.open("rb") as f:
        reader = Reader(MmapSource(f))
        h = reader.header()
        assert h["tile_type"] == TileType.MVT and h["tile_compression"] == Compression.GZIP
        assert (h["min_zoom"], h["max_zoom"]) == (9, 12) and h["clustered"]
        w, s, e, n = city.communities.total_bounds
        assert h["min_lon_e7"] == round(w * 1e7) and h["max_lat_e7"] == round(n * 1e7)
        meta = reader.metadata()
        assert [v["id"] for v in meta["vector_layers"]] == ["zones", "communities"]
        assert meta["policy"] == "cn-three-zone"
        stored = {}
        for (z, x, y), data in all_tiles(reader.get_bytes):
            stored[(z, x, y)] = data
        assert len(stored) == summary.tiles
        # every tile of the range with a feature is there, as the service serves it
        for z in range(9, 13):
            for t in TMS.tiles(w, s, e, n, [z]):
                body = encode_tile(layers, t.z, t.x, t.y)
                data = reader.get(t.z, t.x, t.y)
                if body is None:
                    assert data is None
                    continue
                assert gzip.decompress(data) == body
                tile = mapbox_vector_tile.decode(gzip.decompress(data))
                assert "communities" in tile and tile["communities"]["features"]


def test_export_refuses_nothing_and_bad_zooms(city: City, tmp_path: Path) -> None:
    empty = TileLayer("zones", city.zones.iloc[:0])
    with pytest.raises(ValueError, match="nothing to export"):
        export_pmtiles(tmp_path / "x.pmtiles", [empty])
    with pytest.raises(ValueError, match="minzoom <= maxzoom"):
        export_pmtiles(tmp_path / "x.pmtiles", [city.tiles["zones"]], minzoom=12, maxzoom=3)
    assert not list(tmp_path.iterdir())
