"""The planner map page, its script and style sheet, and pydeck's embedded deck.gl bundle
(everything the page loads comes from here: see api/security.py for its headers)."""

from __future__ import annotations

import math

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse

from riskmap.api.access import AccessDep, AtDep
from riskmap.api.deps import ServiceDep
from riskmap.geo.policy import preset_names
from riskmap.tiles.deck import DECK_BUNDLE, STATIC, planner_deck, planner_page

router = APIRouter(tags=["map"])


@router.get("/", operation_id="planner_map", response_class=HTMLResponse)
def planner_map(service: ServiceDep, access: AccessDep, at: AtDep) -> HTMLResponse:
    """The planner map; its layers are fetched by the browser without a key, so they are
    the public ones."""
    policy = access.policy
    _, layer, _ = service.data()
    if len(layer):
        minx, miny, maxx, maxy = layer.frame.total_bounds
        center = ((minx + maxx) / 2, (miny + maxy) / 2)
        # fit the data in about 700 px (deck.gl's world is 512 px wide at zoom 0)
        span = max(maxx - minx, (maxy - miny) / math.cos(math.radians(center[1])), 1e-4)
        zoom = max(1.0, min(16.0, math.log2(700 * 360 / (512 * span))))
    else:
        center, zoom = (0.0, 0.0), 1.0
    q = (
        f"?at={at.isoformat()}&policy={policy.id}"
        if policy.id in preset_names()
        else (f"?at={at.isoformat()}")
    )
    deck = planner_deck(
        communities_url=f"/v1/communities{q}",
        zones_url=f"/v1/zones{q}",
        districts_url="/v1/districts",
        center=center,
        zoom=zoom,
    )
    legend = [{"color": lv.color, "label": lv.label} for lv in policy.levels]
    legend.append({"color": policy.none_color, "label": "No risk zone"})
    page = planner_page(
        deck,
        title=f"riskmap: {policy.name}",
        subtitle=f"as of {at.isoformat()}",
        bundle_url="/static/deckgl.js",
        script_url="/static/map.js",
        style_url="/static/map.css",
        legend=legend,
    )
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})


@router.get("/static/deckgl.js", operation_id="deckgl_bundle", include_in_schema=False)
def deckgl_bundle() -> FileResponse:
    return FileResponse(
        DECK_BUNDLE,
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=86400"},
    )


@router.get("/static/map.js", operation_id="map_script", include_in_schema=False)
def map_script() -> FileResponse:
    return FileResponse(
        STATIC / "map.js", media_type="text/javascript", headers={"Cache-Control": "no-cache"}
    )


@router.get("/static/map.css", operation_id="map_style", include_in_schema=False)
def map_style() -> FileResponse:
    return FileResponse(
        STATIC / "map.css", media_type="text/css", headers={"Cache-Control": "no-cache"}
    )
