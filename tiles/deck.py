"""The planner map: a pydeck deck whose JavaScript bundle is served by riskmap itself.

pydeck's own HTML template pulls scripts and styles from CDNs; riskmap renders its own small
page instead, loads pydeck's embedded deck.gl bundle from the server and draws no remote base
map, so the page works offline.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import pydeck as pdk

DECK_BUNDLE = Path(pdk.__file__).parent / "nbextension" / "static" / "index.js"

TOOLTIP = {
    "html": "<b>{name}</b><br/>level: {label}<br/>since: {since}"
    "<br/>expected lift: {expected_lift}<br/>zone: {zone_id}",
    "style": {"fontSize": "12px"},
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


def planner_page(
    deck: pdk.Deck, *, title: str, bundle_url: str, legend: list[dict[str, Any]], subtitle: str = ""
) -> str:
    """A self-contained HTML page for the deck; scripts only from ``bundle_url``."""
    deck_json = deck.to_json()
    items = "".join(
        f'<li><span style="background:{html.escape(i["color"])}"></span>'
        f"{html.escape(i['label'])}</li>"
        for i in legend
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8"/>
<meta name="viewport" content="width=device-width, initial-scale=1"/>
<title>{html.escape(title)}</title>
<style>
  html, body {{ margin: 0; height: 100%; font-family: system-ui, sans-serif; background: #f4f4f0; }}
  #deck-container {{ position: absolute; inset: 0; }}
  #legend {{ position: absolute; top: 12px; left: 12px; z-index: 2; background: #fffe;
    padding: 10px 14px; border-radius: 6px; box-shadow: 0 1px 4px #0003; font-size: 13px; }}
  #legend h1 {{ font-size: 15px; margin: 0 0 4px; }}
  #legend ul {{ list-style: none; padding: 0; margin: 6px 0 0; }}
  #legend span {{ display: inline-block; width: 12px; height: 12px; margin-right: 6px;
    vertical-align: middle; border: 1px solid #0004; }}
</style>
<script src="{html.escape(bundle_url)}"></script>
</head>
<body>
<div id="legend"><h1>{html.escape(title)}</h1><div>{html.escape(subtitle)}</div>
<ul>{items}</ul></div>
<div id="deck-container"></div>
<script>
  const jsonInput = {deck_json};
  const tooltip = {json.dumps(TOOLTIP)};
  createDeck({{
    container: document.getElementById('deck-container'),
    jsonInput, tooltip, customLibraries: null, configuration: null
  }});
</script>
</body>
</html>
"""
