"""The planner map: a pydeck deck whose JavaScript bundle is served by riskmap itself.

pydeck's own HTML template pulls scripts and styles from CDNs and inlines its script; riskmap
renders its own small page instead: pydeck's embedded deck.gl bundle, the page's script
(``static/map.js``) and its style sheet come from the server, the deck itself is a JSON data
block (never script), and no remote base map is drawn, so the page works offline and under a
Content-Security-Policy that allows scripts only from the server.

Values from the data (community names, zone ids...) reach the page only through the layers'
GeoJSON, fetched by deck.gl, and show only as text: the tooltip is a ``text`` template (set as
the tooltip's ``innerText``), never HTML.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import pydeck as pdk

DECK_BUNDLE = Path(pdk.__file__).parent / "nbextension" / "static" / "index.js"
STATIC = Path(__file__).parent / "static"  # the page's script and style sheet

# a text template: pydeck substitutes {name} etc. unescaped, so HTML here would let a community
# name write into the page; as text, a name shows as it is (line breaks from "\n")
TOOLTIP = {
    "text": "{name}\nlevel: {label}\nsince: {since}\nexpected lift: {expected_lift}"
    "\nzone: {zone_id}",
    "style": {"fontSize": "12px", "whiteSpace": "pre-line"},
}


def planner_deck(
    *,
    communities_url: str,
    zones_url: str,
    districts_url: str,
    center: tuple[float, float],
    zoom: float = 10,
) -> pdk.Deck:
    """Communities coloured by level (with tooltips), zone outlines and district outlines."""
    communities = pdk.Layer(
        "GeoJsonLayer",
        data=communities_url,
        id="communities",
        pickable=True,
        stroked=True,
        filled=True,
        get_fill_color="properties.fill",
        get_line_color=[255, 255, 255, 90],
        line_width_min_pixels=0.5,
        auto_highlight=True,
    )
    zones = _outlines("zones", zones_url, [40, 40, 40, 230], 1.5)
    districts = _outlines("districts", districts_url, [20, 20, 120, 255], 2.5)
    view = pdk.ViewState(longitude=center[0], latitude=center[1], zoom=zoom)
    return pdk.Deck(
        layers=[communities, zones, districts],
        initial_view_state=view,
        map_style=None,
        map_provider=None,
        tooltip=TOOLTIP,  # type: ignore[arg-type]
    )


def _outlines(layer_id: str, url: str, color: list[int], width: float) -> pdk.Layer:
    """Unfilled outlines of a GeoJSON layer."""
    return pdk.Layer(
        "GeoJsonLayer",
        data=url,
        id=layer_id,
        pickable=False,
        stroked=True,
        filled=False,
        get_line_color=color,
        line_width_min_pixels=width,
    )


def json_for_html(value: Any) -> str:
    """JSON to embed in an HTML ``<script type="application/json">`` block: ``<``, ``>`` and
    ``&`` as ``\\u`` escapes (JSON.parse reads them back), so no value can close the block
    (``</script>``) or open a comment; U+2028/2029 likewise."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    for ch in "<>&\u2028\u2029":
        text = text.replace(ch, f"\\u{ord(ch):04x}")
    return text


def planner_page(
    deck: pdk.Deck,
    *,
    title: str,
    bundle_url: str,
    legend: list[dict[str, Any]],
    subtitle: str = "",
    script_url: str = "/static/map.js",
    style_url: str = "/static/map.css",
) -> str:
    """The HTML page of the deck: no inline script or style; scripts only from ``bundle_url``
    and ``script_url``; every text escaped."""
    config = json_for_html({"deck": json.loads(deck.to_json()), "tooltip": TOOLTIP})
    e = html.escape
    items = "".join(
        f'<li><span data-color="{e(i["color"])}"></span>{e(i["label"])}</li>' for i in legend
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8"/>
<meta name="viewport" content="width=device-width, initial-scale=1"/>
<title>{e(title)}</title>
<link rel="stylesheet" href="{e(style_url)}"/>
<script src="{e(bundle_url)}"></script>
</head>
<body>
<div id="legend"><h1>{e(title)}</h1><div>{e(subtitle)}</div>
<ul>{items}</ul></div>
<div id="deck-container"></div>
<script type="application/json" id="deck-config">{config}</script>
<script src="{e(script_url)}"></script>
</body>
</html>
"""
