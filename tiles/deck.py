"""The planner map: an HTML page drawn by deck.gl, whose JavaScript bundle is pydeck's own
(``DECK_BUNDLE``: deck.gl with its geo layers, MVTLayer included), served by riskmap itself.

Two pages share one script (``static/map.js``) and style sheet (``static/map.css``):

* :func:`planner_page`, the page at ``GET /``: the layers are riskmap's vector tiles
  (``/collections/{zones,communities,districts}/tiles/...``); the script, the bundle and the
  style sheet are separate files of the server, so the page's Content-Security-Policy allows
  scripts only from the server;
* :func:`standalone_page`, the file ``riskmap export map`` writes: the bundle, the script, the
  style sheet and the data (GeoJSON and per-day levels) inside one HTML file that works
  opened from a disk with no network; its own ``<meta>`` policy allows exactly its inline
  scripts (by hash) and nothing from anywhere.

What the script needs (rules, levels and colours, dates, view, where its data is) comes in a
``<script type="application/json" id="map-config">`` block, never as script, with every
``<``, ``>`` and ``&`` escaped (:func:`json_for_html`). Values from the data (community names,
zone ids...) are only ever set as text (``textContent``, deck.gl's ``text`` tooltips).

Colours are decided here once (:func:`rule_info`): the fill of each level (and of "no zone")
as RGBA, which the script uses both to draw and to paint the legend's swatches.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pydeck as pdk

from riskmap.geo.policy import NONE_LABEL, NONE_LEVEL, Policy, hex_to_rgb

DECK_BUNDLE = Path(pdk.__file__).parent / "nbextension" / "static" / "index.js"
STATIC = Path(__file__).parent / "static"  # the page's script and style sheet

#: opacity of the fills: opaque without a base map (the legend's swatch is then exactly the
#: colour drawn), see-through over the organisation's base map
OPAQUE, OVER_BASEMAP = 255, 170
#: the map's background (no base map), as the style sheet has it
BACKGROUND = "#f4f4f0"


def check_basemap_url(url: str) -> str:
    """``url`` if it is an http(s) tile URL template with ``{z}``, ``{x}`` and ``{y}``, else a
    ValueError saying what is wrong."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{url!r} is not an http(s) URL of raster tiles")
    missing = [k for k in ("{z}", "{x}", "{y}") if k not in url]
    if missing:
        raise ValueError(
            f"{url!r} is not a tile URL template: it lacks {', '.join(missing)} "
            "(e.g. https://tiles.example.org/{z}/{x}/{y}.png)"
        )
    if re.search(r"[\s'\";]", url):
        raise ValueError(f"{url!r}: a tile URL has no spaces, quotes or semicolons")
    return url


def basemap_origin(url: str) -> str:
    """The origin (scheme://host[:port]) of a base map URL, for the page's policy."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _rgba(color: str, alpha: int) -> list[int]:
    return [*hex_to_rgb(color), alpha]


def rule_info(policy: Policy, first: str, last: str, *, basemap: bool = False) -> dict[str, Any]:
    """What the page shows of a rule: its levels (highest first) with their fill colours, the
    "no zone" entry, whether its zones are exact geometry (circles, cells: then zones are
    filled and communities only drawn in the "no zone" colour) and its date range."""
    alpha = OVER_BASEMAP if basemap else OPAQUE
    levels = [
        {
            "id": lv.id,
            "label": lv.label,
            "color": lv.color,
            "rank": policy.rank(lv.id),
            "fill": _rgba(lv.color, alpha),
        }
        for lv in policy.levels
    ]
    return {
        "id": policy.id,
        "name": policy.name,
        "levels": levels,
        "none": {
            "id": NONE_LEVEL,
            "label": NONE_LABEL,
            "color": policy.none_color,
            "rank": 0,
            "fill": _rgba(policy.none_color, alpha),
        },
        "exact": any(lv.geometric for lv in policy.levels),
        "first": first,
        "last": last,
    }


def fit_view(bounds: tuple[float, float, float, float] | None) -> dict[str, float]:
    """Longitude, latitude and zoom that fit ``bounds`` (minx, miny, maxx, maxy) in about
    700 px (deck.gl's world is 512 px wide at zoom 0)."""
    if bounds is None:
        return {"longitude": 0.0, "latitude": 0.0, "zoom": 1.0}
    minx, miny, maxx, maxy = bounds
    lon, lat = (minx + maxx) / 2, (miny + maxy) / 2
    span = max(maxx - minx, (maxy - miny) / math.cos(math.radians(lat)), 1e-4)
    zoom = max(1.0, min(16.0, math.log2(700 * 360 / (512 * span))))
    return {"longitude": lon, "latitude": lat, "zoom": zoom}


def json_for_html(value: Any) -> str:
    """JSON to embed in an HTML ``<script type="application/json">`` block: ``<``, ``>`` and
    ``&`` as ``\\u`` escapes (JSON.parse reads them back), so no value can close the block
    (``</script>``) or open a comment; U+2028/2029 likewise."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    for ch in "<>&\u2028\u2029":
        text = text.replace(ch, f"\\u{ord(ch):04x}")
    return text


_BODY = """<div id="deck-container"></div>
<aside id="legend">
<h1 id="title">{title}</h1>
<div id="subtitle">{subtitle}</div>
<label id="rule-row">Rule <select id="rule"></select></label>
<div id="date-row"><button type="button" id="play" aria-label="play">&#9654;</button>
<input type="range" id="date" min="0" max="0" value="0" aria-label="date"/>
<output id="date-label"></output></div>
<form id="search"><input id="q" type="search" autocomplete="off"
 placeholder="lat, lon or community name" aria-label="search"/>
<button type="submit">Find</button></form>
<div id="answer" role="status"></div>
<ul id="levels"></ul>
<fieldset id="layers"><legend>Layers</legend></fieldset>
<section id="population"><h2>Residents under each level</h2><table></table></section>
</aside>
<div id="loading" role="status">Loading map tiles&#8230;</div>
<div id="message" role="alert" hidden></div>
"""


def _html(config: dict[str, Any], title: str, subtitle: str, head: str, script: str) -> str:
    """The page around the map: ``head`` (what loads the style sheet and deck.gl) and
    ``script`` (what runs the map) as given, every text escaped, the configuration as JSON."""
    e = html.escape
    body = _BODY.format(title=e(title), subtitle=e(subtitle))
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8"/>
<meta name="viewport" content="width=device-width, initial-scale=1"/>
<title>{e(title)}</title>
{head}
</head>
<body>
{body}<script type="application/json" id="map-config">{json_for_html(config)}</script>
{script}
</body>
</html>
"""


def planner_page(
    config: dict[str, Any],
    *,
    title: str,
    subtitle: str = "",
    bundle_url: str = "/static/deckgl.js",
    script_url: str = "/static/map.js",
    style_url: str = "/static/map.css",
) -> str:
    """The page at ``GET /``: no inline script or style; scripts only from ``bundle_url`` and
    ``script_url``; every text escaped."""
    e = html.escape
    head = (
        f'<link rel="stylesheet" href="{e(style_url)}"/>\n<script src="{e(bundle_url)}"></script>'
    )
    return _html(config, title, subtitle, head, f'<script src="{e(script_url)}"></script>')


def _inline(code: str) -> str:
    """Script text safe inside ``<script>``: nothing can end the element early."""
    if re.search(r"</script|<!--", code, re.I):
        raise ValueError("the script holds '</script' or '<!--': it cannot be inlined")
    return code


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def standalone_page(config: dict[str, Any], *, title: str, subtitle: str = "") -> str:
    """The whole map in one HTML file (deck.gl bundle, script, style sheet and data): it works
    opened from a file with no network, and its policy (a ``<meta>`` tag) lets nothing load."""
    bundle = _inline(DECK_BUNDLE.read_text(encoding="utf-8"))
    script = _inline((STATIC / "map.js").read_text(encoding="utf-8"))
    style = (STATIC / "map.css").read_text(encoding="utf-8")
    if "</style" in style.lower():
        raise ValueError("the style sheet holds '</style'")
    csp = (
        f"default-src 'none'; script-src {_sha256(bundle)} {_sha256(script)}; "
        f"style-src {_sha256(style)}; img-src data: blob:; worker-src blob:; "
        "connect-src data: blob:; base-uri 'none'; form-action 'none'"
    )
    head = (
        f'<meta http-equiv="Content-Security-Policy" content="{html.escape(csp)}"/>\n'
        f"<style>{style}</style>\n<script>{bundle}</script>"
    )
    return _html(config, title, subtitle, head, f"<script>{script}</script>")
