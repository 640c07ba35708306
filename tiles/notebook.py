"""Maps in notebooks that draw offline: a pydeck deck as one self-contained HTML page.

pydeck shows a deck in Jupyter through its widget (which needs the widget's front-end
extension) or as HTML whose scripts and styles come from CDNs (even with ``offline=True`` its
template links mapbox-gl, bootstrap and font-awesome from the network): offline, the map is
blank. :func:`deck_page` writes the page itself instead: pydeck's bundled deck.gl
(``tiles.deck.DECK_BUNDLE``) inline, the deck as a JSON data block (never script: values from
the data cannot close it), a small inline script that draws it, no base map and no URL at all.
:class:`NotebookMap` shows that page in an ``<iframe srcdoc>`` (what Jupyter displays, and what
an executed notebook keeps in its outputs), so a notebook's maps draw with no network. Each
map carries the bundle (about 4 MB): keep a notebook's maps few.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import replace
from functools import cache
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pydeck as pdk
import shapely

from riskmap.geo.policy import hex_to_rgb
from riskmap.tiles.deck import DECK_BUNDLE, json_for_html

if TYPE_CHECKING:
    import geopandas as gpd

    from riskmap.geo.scan import ScanResult
    from riskmap.geo.zones import CommunityLayer, ZoneResult

__all__ = ["NotebookMap", "deck_page", "map_of", "show_deck"]

_STYLE = """html, body { margin: 0; height: 100%; font-family: system-ui, sans-serif;
  background: #f4f4f0; }
#deck-container { position: absolute; inset: 0; }
#legend { position: absolute; top: 8px; left: 8px; z-index: 2; background: #fffe;
  padding: 6px 10px; border-radius: 6px; box-shadow: 0 1px 4px #0003; font-size: 12px; }
#legend h1 { font-size: 13px; margin: 0 0 4px; }
#legend ul { list-style: none; padding: 0; margin: 0; }
#legend span { display: inline-block; width: 11px; height: 11px; margin-right: 6px;
  vertical-align: middle; border: 1px solid #0004; }"""

# draws the deck of the page's JSON block; the legend's swatches are coloured through the CSSOM
_DRAW = """(function () {
  "use strict";
  const config = JSON.parse(document.getElementById("deck-config").textContent);
  for (const s of document.querySelectorAll("#legend [data-color]")) {
    s.style.background = s.dataset.color;
  }
  window.riskmapDeck = createDeck({
    container: document.getElementById("deck-container"),
    jsonInput: config.deck,
    tooltip: config.tooltip,
    customLibraries: null,
    configuration: null,
  });
})();"""

#: the communities' tooltip in notebook maps (a pydeck text template)
TOOLTIP = {
    "text": "{name}\nlevel: {label}\nsince: {since}\nexpected lift: {expected_lift}"
    "\nzone: {zone_id}",
    "style": {"fontSize": "12px", "whiteSpace": "pre-line"},
}


@cache
def _bundle() -> str:
    """pydeck's deck.gl bundle, checked to be safe inside a ``<script>`` element."""
    text = Path(DECK_BUNDLE).read_text(encoding="utf-8")
    low = text.lower()
    if "</script" in low or "<!--" in low:  # would end or confuse the inline script element
        raise RuntimeError(f"{DECK_BUNDLE} cannot be inlined in a <script> element")
    return text


def deck_page(
    deck: pdk.Deck,
    *,
    title: str = "",
    legend: list[tuple[str, str]] | None = None,
    tooltip: dict[str, Any] | bool = True,
) -> str:
    """The deck as one HTML page that needs no network: deck.gl inline, the deck (layers with
    their data inline, view) as JSON, no base map. ``legend``: (label, ``#rrggbb``) pairs
    shown under ``title``; ``tooltip``: a pydeck tooltip (a ``text`` template is shown as
    text), ``True`` for deck.gl's default one."""
    spec = _spec(deck)
    for layer in spec.get("layers", []):
        if isinstance(layer.get("data"), str):  # a URL: the browser would fetch it
            raise ValueError(
                f"layer {layer.get('id')!r}: data {layer['data'][:80]!r} is a URL; give the "
                "data inline (a GeoJSON dict, a list of records, a frame) for an offline map"
            )
    spec.pop("mapStyle", None)  # no base map: it would be fetched
    spec["mapProvider"] = None
    config = json_for_html({"deck": spec, "tooltip": tooltip})
    e = html.escape
    head = f"<h1>{e(title)}</h1>" if title else ""
    items = "".join(
        f'<li><span data-color="{e(color)}"></span>{e(label)}</li>' for label, color in legend or []
    )
    box = f'<div id="legend">{head}<ul>{items}</ul></div>' if head or items else ""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8"/>
<title>{e(title or "riskmap map")}</title>
<style>{_STYLE}</style>
<script>{_bundle()}</script>
</head>
<body>
{box}
<div id="deck-container"></div>
<script type="application/json" id="deck-config">{config}</script>
<script>{_DRAW}</script>
</body>
</html>
"""


def _spec(deck: pdk.Deck) -> dict[str, Any]:
    """The deck's JSON spec. pydeck's serializer is slow on large inline data (pure-Python,
    indented JSON): the layers' plain data (dicts and lists of JSON values) is left out of it
    and put back as it is."""
    plain = {
        i: layer.data for i, layer in enumerate(deck.layers) if isinstance(layer.data, dict | list)
    }
    try:
        for i in plain:
            deck.layers[i]._data = []
        spec: dict[str, Any] = json.loads(deck.to_json())
    finally:
        for i, data in plain.items():
            deck.layers[i]._data = data
    for i, data in plain.items():
        spec["layers"][i]["data"] = data
    try:
        json.dumps(spec)
    except (TypeError, ValueError):  # values only pydeck's serializer knows (numpy...)
        spec = json.loads(deck.to_json())
    return spec


class NotebookMap:
    """A map shown in a notebook as an ``<iframe srcdoc>`` of :func:`deck_page` (offline).

    ``deck``: the pydeck deck; ``html``: the page (``save`` writes it to a file that opens
    offline in a browser)."""

    def __init__(
        self,
        deck: pdk.Deck,
        *,
        title: str = "",
        legend: list[tuple[str, str]] | None = None,
        tooltip: dict[str, Any] | bool = True,
        height: int = 480,
    ) -> None:
        self.deck = deck
        self.height = int(height)
        self.html = deck_page(deck, title=title, legend=legend, tooltip=tooltip)

    def _repr_html_(self) -> str:
        return (
            f'<iframe srcdoc="{html.escape(self.html, quote=True)}" title="map" '
            f'style="width: 100%; height: {self.height}px; border: 0"></iframe>'
        )

    def save(self, path: str | Path) -> Path:
        """Write the page to ``path`` (one file; opens offline)."""
        p = Path(path)
        p.write_text(self.html, encoding="utf-8")
        return p

    def __repr__(self) -> str:
        return f"NotebookMap({len(self.deck.layers)} layers, {len(self.html):,} characters)"


def show_deck(
    deck: pdk.Deck,
    *,
    title: str = "",
    legend: list[tuple[str, str]] | None = None,
    tooltip: dict[str, Any] | bool = True,
    height: int = 480,
) -> NotebookMap:
    """Any pydeck deck as a map that draws offline in a notebook (see :class:`NotebookMap`);
    give layers their data inline (GeoJSON dicts, frames), not as URLs."""
    return NotebookMap(deck, title=title, legend=legend, tooltip=tooltip, height=height)


HOT, COLD, CLUSTER = "#d7301f", "#2c7fb8", "#6a3d9a"
#: simplification of the map's polygons, in degrees (about 5 m)
DISPLAY_TOLERANCE = 5e-5


def _view(bounds: tuple[float, float, float, float], width_px: int = 420) -> pdk.ViewState:
    """A view that frames ``bounds`` (lon/lat) in about ``width_px`` pixels."""
    x0, y0, x1, y1 = bounds
    span = max(x1 - x0, (y1 - y0) / max(math.cos(math.radians((y0 + y1) / 2)), 0.1), 1e-4)
    # deck.gl's world is 512 pixels wide at zoom 0
    zoom = min(max(math.log2(360 * width_px / (512 * span)), 2.0), 16.0)
    return pdk.ViewState(longitude=(x0 + x1) / 2, latitude=(y0 + y1) / 2, zoom=round(zoom, 2))


def _display(geoms: Any) -> Any:
    """Geometries made light for a page: simplified to ``DISPLAY_TOLERANCE`` degrees and
    rounded to 6 decimals (about 0.1 m). For display only: the exact geometry is what
    ``status`` tests and the GeoJSON layers publish."""
    simple = shapely.simplify(np.asarray(geoms), DISPLAY_TOLERANCE, preserve_topology=True)
    return shapely.transform(simple, lambda xy: np.round(xy, 6))


def _drop(fc: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """The feature collection without the bulky properties ``keys`` (lists of ids, cells)."""
    for f in fc["features"]:
        for k in keys:
            f["properties"].pop(k, None)
    return fc


def map_of(
    layer: CommunityLayer,
    result: ZoneResult,
    *,
    hotspots: gpd.GeoDataFrame | None = None,
    scan: ScanResult | None = None,
    scan_max_p: float = 0.05,
    title: str = "",
    height: int = 480,
) -> NotebookMap:
    """Communities coloured by their level in ``result`` (tooltips), its zones' outlines, and
    optionally hot and cold places of ``hotspots`` and the circles of ``scan``'s clusters whose
    p-value is at most ``scan_max_p`` (all of them without replications), centred on a point
    inside each centre community, as a :class:`NotebookMap`."""
    from riskmap.tiles.geojson import communities_geojson, zones_geojson

    policy = result.policy
    # the same layer and result with light geometry (communities_geojson reads only the
    # layer's frame and ids)
    frame = layer.frame.copy()
    frame["geometry"] = _display(frame.geometry.to_numpy())
    light = cast("CommunityLayer", SimpleNamespace(frame=frame, ids=layer.ids))
    zones = result.zones.copy()
    if len(zones):
        zones["geometry"] = _display(zones.geometry.to_numpy())
    light_result = replace(result, zones=zones)
    layers = [
        pdk.Layer(
            "GeoJsonLayer",
            data=communities_geojson(light, result),
            id="communities",
            pickable=True,
            stroked=True,
            filled=True,
            get_fill_color="properties.fill",
            get_line_color=[255, 255, 255, 90],
            line_width_min_pixels=0.5,
        ),
        pdk.Layer(
            "GeoJsonLayer",
            data=_drop(zones_geojson(light_result), ("cells", "community_ids")),
            id="zones",
            stroked=True,
            filled=False,
            get_line_color=[40, 40, 40, 230],
            line_width_min_pixels=1.5,
        ),
    ]
    legend = [(lv.label, lv.color) for lv in policy.levels]
    if hotspots is not None:
        shown = hotspots[hotspots["class"].isin(["hot", "cold"])]
        shown = shown[["id", "class", "geometry"]].set_geometry(_display(shown.geometry.to_numpy()))
        fc = json.loads(shown.to_json(drop_id=True))
        for f in fc["features"]:
            color = HOT if f["properties"]["class"] == "hot" else COLD
            f["properties"]["rgba"] = [*hex_to_rgb(color), 90]
        layers.append(
            pdk.Layer(
                "GeoJsonLayer",
                data=fc,
                id="hotspots",
                stroked=True,
                filled=True,
                get_fill_color="properties.rgba",
                get_line_color="properties.rgba",
                line_width_min_pixels=1,
            )
        )
        legend += [("hotspot (Gi*, hot)", HOT), ("hotspot (Gi*, cold)", COLD)]
    clusters = (
        []
        if scan is None
        else [c for c in scan.clusters if c.p_value is None or c.p_value <= scan_max_p]
    )
    if clusters:
        ids = layer.frame["community_id"].to_numpy()
        inner = layer.frame.geometry.representative_point()
        where = {cid: (float(p.x), float(p.y)) for cid, p in zip(ids, inner, strict=True)}
        circles = [
            {
                "position": list(where[c.center]),
                "radius": max(c.radius_km * 1000.0, 250.0),
                "rank": i + 1,
                "p": c.p_value,
            }
            for i, c in enumerate(clusters)
            if c.center in where
        ]
        layers.append(
            pdk.Layer(
                "ScatterplotLayer",
                data=circles,
                id="scan",
                get_position="position",
                get_radius="radius",  # metres (deck.gl's default radius unit)
                stroked=True,
                filled=False,
                get_line_color=[*hex_to_rgb(CLUSTER), 255],
                line_width_min_pixels=2.5,
            )
        )
        legend.append((f"space-time scan cluster (p <= {scan_max_p:g})", CLUSTER))
    bounds = tuple(float(v) for v in np.asarray(layer.frame.total_bounds))
    deck = pdk.Deck(
        layers=layers,
        initial_view_state=_view(bounds),  # type: ignore[arg-type]
        map_style=None,
        map_provider=None,
    )
    return NotebookMap(deck, title=title, legend=legend, tooltip=TOOLTIP, height=height)
