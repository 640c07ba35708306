"""The planner map page, its script and style sheet, and pydeck's embedded deck.gl bundle
(everything the page loads comes from here, and from RISKMAP_BASEMAP_URL when set: see
api/security.py for its headers)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse

from riskmap.api.access import AccessDep, AtDep, public_rules
from riskmap.api.deps import ServiceDep, SettingsDep
from riskmap.api.security import page_csp
from riskmap.tiles.deck import DECK_BUNDLE, STATIC, fit_view, planner_page, rule_info
from riskmap.tiles.mvt import TILE_MATRIX_SET, dense_minzoom

router = APIRouter(tags=["map"])

TILE_PATH = "/collections/{layer}/tiles/" + TILE_MATRIX_SET + "/{{z}}/{{x}}/{{y}}"


@router.get("/", operation_id="planner_map", response_class=HTMLResponse)
def planner_map(
    service: ServiceDep, settings: SettingsDep, access: AccessDep, at: AtDep
) -> HTMLResponse:
    """The planner map (vector tiles of zones, communities and districts; date slider and
    replay, rule picker, search, residents under each level). Its requests carry no key, so
    it shows the public view of the rules anonymous callers may name."""
    _, layer, _ = service.data()
    bounds = tuple(float(v) for v in layer.frame.total_bounds) if len(layer) else None
    basemap = settings.basemap_url or None
    rules = []
    for p in public_rules(settings):
        first, last = service.date_bounds(p)
        rules.append(rule_info(p, first.isoformat(), last.isoformat(), basemap=bool(basemap)))
    if all(r["id"] != access.policy.id for r in rules):  # a keyed caller's preset
        first, last = service.date_bounds(access.policy)
        rules.append(rule_info(access.policy, first.isoformat(), last.isoformat()))
    config = {
        "source": "tiles",
        "rule": access.policy.id,
        "at": at.isoformat(),
        "rules": rules,
        "view": fit_view(bounds),  # type: ignore[arg-type]
        "basemap": basemap,
        "tiles": {n: TILE_PATH.format(layer=n) for n in ("zones", "communities", "districts")},
        # a large city's communities are drawn from a zoom where a tile holds a few thousand
        # of them; below it the zones are filled (tiles/static/map.js)
        "minzoom": {
            "communities": (
                dense_minzoom(len(layer), bounds, settings.map_tile_features) if bounds else 0  # type: ignore[arg-type]
            )
        },
        "api": {
            "status": "/v1/status",
            "search": "/v1/communities/search",
            "population": "/v1/aggregates/population",
            "districts": "/v1/districts",
            "hotspots": "/v1/hotspots",
            "alerts": "/v1/alerts",
        },
    }
    page = planner_page(
        config, title=f"riskmap: {access.policy.name}", subtitle=f"as of {at.isoformat()}"
    )
    return HTMLResponse(page, headers={"Content-Security-Policy": page_csp(basemap)})


@router.get("/static/deckgl.js", operation_id="deckgl_bundle", include_in_schema=False)
def deckgl_bundle() -> FileResponse:
    return FileResponse(DECK_BUNDLE, media_type="text/javascript")


@router.get("/static/map.js", operation_id="map_script", include_in_schema=False)
def map_script() -> FileResponse:
    return FileResponse(STATIC / "map.js", media_type="text/javascript")


@router.get("/static/map.css", operation_id="map_style", include_in_schema=False)
def map_style() -> FileResponse:
    return FileResponse(STATIC / "map.css", media_type="text/css")
