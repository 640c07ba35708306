"""The daily situation report: one self-contained HTML file a planner reads in a minute.

:func:`report_data` gathers the figures from ``geo`` objects (the zones of the day as one
:class:`~geo.zones.ZoneResult`, the day's zone events, the scan's alerts, the hotspots and
the cases); :func:`render_report` turns them into the page (``templates/report.html`` and
``templates/report.css``, rendered by Jinja2 with autoescaping: every name from the data or
the rule file reaches the page as text).

The page opens offline and loads nothing: its plots and its map are PNG images drawn by
matplotlib and embedded as ``data:`` URLs, its style sheet is one inline ``<style>`` block,
and it has no script. Its Content-Security-Policy (a ``<meta>`` tag, :func:`report_csp`)
allows exactly that block (by its SHA-256 hash) and ``data:`` images, nothing else.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from riskmap.geo.crs import WGS84
from riskmap.geo.measures import case_points, population_under_levels, unit_measures
from riskmap.geo.policy import HEX_COLOR, NONE_LABEL, NONE_LEVEL, Policy
from riskmap.geo.zones import CommunityLayer, ZoneResult, to_day, to_days

TEMPLATES = Path(__file__).parent / "templates"
TREND_DAYS = 30  # the trend plots show the 30 days ending on the report's date
LIST_MAX = 30  # rows of a list of events, alerts or districts shown before "and N more"
CHANGE_KINDS = ("created", "escalated", "lifted")  # listed by name; the others only counted
EVENT_KINDS = ("created", "escalated", "stepped_down", "extended", "lifted")

__all__ = ["TREND_DAYS", "Page", "ReportData", "render_report", "report_csp", "report_data"]


@dataclass(frozen=True)
class ReportData:
    """Everything a report shows, as plain frames and dictionaries (see :func:`report_data`)."""

    policy: Policy
    at: dt.date
    data_version: int
    data_through: dt.date | None
    generated: dt.datetime
    levels: pd.DataFrame  # level, label, color, zones, communities, population, yesterday, ...
    events: pd.DataFrame  # the day's zone events with a ``name`` column
    alerts: dict[str, Any]  # the scan's signals, as GET /v1/alerts answers them
    hotspots: gpd.GeoDataFrame  # public hotspot classes (id, class, geometry)
    hot_by_district: pd.DataFrame  # district, name, hot (cells)
    districts: pd.DataFrame  # geo.measures.unit_measures by district, with ``name``
    overall: dict[str, Any]  # unit_measures of the whole area (one row)
    population: pd.DataFrame  # geo.measures.population_under_levels over the trend period
    daily_cases: pd.DataFrame  # date, cases (confirmed, by report date) over the trend period
    community_levels: pd.DataFrame  # community_id, level (the map)
    zones: gpd.GeoDataFrame  # the zones of the day (the map draws exact-geometry ones)
    layer: CommunityLayer


def _names(layer: CommunityLayer) -> dict[str, str]:
    f = layer.frame
    if "name" not in f.columns:
        return {}
    return {
        str(c): str(n)
        for c, n in zip(f["community_id"], f["name"], strict=True)
        if n is not None and n == n
    }


def _unit_names(units: pd.DataFrame | None, level: str) -> dict[str, str]:
    if units is None or len(units) == 0:
        return {}
    u = units[units["level"] == level]
    return {
        str(i): str(n)
        for i, n in zip(u["unit_id"], u["name"], strict=True)
        if n is not None and n == n
    }


def report_data(
    result: ZoneResult,
    layer: CommunityLayer,
    cases: pd.DataFrame,
    *,
    data_version: int,
    events: pd.DataFrame,
    alerts: dict[str, Any],
    hotspots: gpd.GeoDataFrame,
    units: pd.DataFrame | None = None,
    data_through: dt.date | None = None,
    trend_days: int = TREND_DAYS,
) -> ReportData:
    """The report of ``result`` (the zones as of the report's date, exact) from its
    community layer and the cases it was computed from; ``events``: the zone events of the
    report's date (:func:`geo.history.zone_events` from the day before to it); ``alerts``:
    the scan's signals as ``GET /v1/alerts`` documents them; ``hotspots``: the public Gi*
    classes (:func:`geo.hotspots.hotspots`); ``units``: the parent units (names)."""
    at = result.at
    policy = result.policy
    start = at - dt.timedelta(days=trend_days - 1)
    pop = population_under_levels(result, layer, start, at)
    today = pop[pop["date"] == at].set_index("level")
    yday = pop[pop["date"] == at - dt.timedelta(days=1)].set_index("level")
    zones = result.zones
    lv = result.levels
    rows = []
    for level in policy.levels:
        rows.append(
            {
                "level": level.id,
                "label": level.label,
                "color": level.color,
                "zones": int((zones["level"] == level.id).sum()),
                "communities": int((lv["level"] == level.id).sum()),
                "population": float(today.at[level.id, "population"]),
                "yesterday": float(yday.at[level.id, "population"]) if len(yday) else None,
                "estimated": bool(today.at[level.id, "area_weighted"]),
            }
        )
    levels = pd.DataFrame(rows)

    names = _names(layer)
    ev = events[events["date"] == at].copy() if len(events) else events.copy()
    ev["name"] = [
        names.get(str(u), "") if t == "community" else ""
        for u, t in zip(ev.get("unit_id", []), ev.get("unit_type", []), strict=True)
    ]

    district_names = _unit_names(units, "district")
    meas = unit_measures(layer, cases, at, unit="district")
    meas.insert(2, "name", [district_names.get(str(u), "") for u in meas["unit_id"]])
    overall = unit_measures(layer, cases, at, unit="all").iloc[0].to_dict()
    overall["outside"] = meas.attrs.get("outside", 0)
    overall["window"] = meas.attrs.get("window")
    overall["growth_window"] = meas.attrs.get("growth_window")

    pts = case_points(cases, layer)
    rep = to_days(pts["reported"]) if len(pts) else np.empty(0, np.int64)
    first, last = to_day(start), to_day(at)
    counts = np.bincount(rep[(rep >= first) & (rep <= last)] - first, minlength=trend_days)
    daily = pd.DataFrame(
        {
            "date": [start + dt.timedelta(days=i) for i in range(trend_days)],
            "cases": counts[:trend_days],
        }
    )

    return ReportData(
        policy=policy,
        at=at,
        data_version=data_version,
        data_through=data_through,
        generated=dt.datetime.now(dt.UTC).replace(microsecond=0),
        levels=levels,
        events=ev.reset_index(drop=True),
        alerts=alerts,
        hotspots=hotspots,
        hot_by_district=_hot_by_district(hotspots, layer, district_names),
        districts=meas,
        overall=overall,
        population=pop,
        daily_cases=daily,
        community_levels=lv[["community_id", "level"]].copy(),
        zones=zones,
        layer=layer,
    )


def _hot_by_district(
    hotspots: gpd.GeoDataFrame, layer: CommunityLayer, names: dict[str, str]
) -> pd.DataFrame:
    """Hot places per district (the district of the community holding a point of each)."""
    hot = hotspots[hotspots["class"] == "hot"]
    cols = ["district", "name", "hot"]
    if len(hot) == 0:
        return pd.DataFrame(columns=cols)
    pts = shapely.point_on_surface(hot.geometry.to_numpy())
    comm = layer.locate(shapely.get_x(pts), shapely.get_y(pts))
    codes, ids = layer.parent_codes("district")
    dist = np.where(comm >= 0, codes[np.maximum(comm, 0)], -1)
    keys = [str(ids[d]) if d >= 0 else "" for d in dist]
    out = pd.Series(keys).value_counts().rename_axis("district").reset_index(name="hot")
    out["name"] = [names.get(k, "") if k else "outside every district" for k in out["district"]]
    return out.sort_values(["hot", "district"], ascending=[False, True])[cols].reset_index(
        drop=True
    )


# ---- plots and map ---------------------------------------------------------------------------


def _mpl_text(s: str) -> str:
    """A name as matplotlib text: ``$`` would start math, a leading ``_`` hides a legend
    entry."""
    s = s.replace("$", r"\$")
    return " " + s if s.startswith("_") else s


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Any, dpi: int = 110) -> str:
    buf = io.BytesIO()
    with warnings.catch_warnings():  # glyphs a font lacks are drawn as boxes
        warnings.simplefilter("ignore")
        fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _date_axis(ax: Any) -> None:
    import matplotlib.dates as mdates

    loc = mdates.AutoDateLocator(maxticks=8)
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))
    ax.grid(True, axis="y", alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)


def population_plot(data: ReportData) -> str:
    """Residents under each level per day (PNG, base64)."""
    fig = _figure(7.5, 3.2)
    ax = fig.add_subplot()
    pop = data.population
    for level in data.policy.levels:
        s = pop[pop["level"] == level.id]
        ax.plot(
            pd.to_datetime(s["date"]),
            s["population"],
            color=level.color,
            lw=2,
            label=_mpl_text(level.label),
        )
    ax.set_ylabel("residents")
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_formatter(lambda v, _: f"{v:,.0f}")
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    _date_axis(ax)
    return _png(fig)


def cases_plot(data: ReportData) -> str:
    """New confirmed cases per report date, with their 7-day mean (PNG, base64)."""
    fig = _figure(7.5, 3.0)
    ax = fig.add_subplot()
    d = data.daily_cases
    x = pd.to_datetime(d["date"])
    ax.bar(x, d["cases"], color="#7f8c8d", width=0.8, label="cases reported that day")
    mean = d["cases"].rolling(7, min_periods=7).mean()
    ax.plot(x, mean, color="#c0392b", lw=2, label="7-day mean")
    ax.set_ylabel("confirmed cases")
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    _date_axis(ax)
    return _png(fig)


def map_image(data: ReportData) -> str:
    """Communities coloured by level, exact-geometry zones, hot places (hatched) and the
    scan's signals (dashed outlines), in the layer's metric projection (PNG, base64)."""
    layer = data.layer
    policy = data.policy
    crs = layer.metric_crs
    fig = _figure(7.5, 7.5)
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.set_aspect("equal")
    by_id = dict(
        zip(
            data.community_levels["community_id"].astype(str),
            data.community_levels["level"],
            strict=True,
        )
    )
    colors = [policy.color(by_id.get(str(c), NONE_LEVEL)) for c in layer.ids]
    comm = gpd.GeoSeries(layer.metric, crs=crs)
    if len(comm):
        comm.plot(ax=ax, color=colors, edgecolor="white", linewidth=0.2)
    exact = data.zones[data.zones["drawn"] != "community"] if len(data.zones) else data.zones
    if len(exact):
        z = gpd.GeoSeries(exact.geometry.to_numpy(), crs=WGS84).to_crs(crs)
        z.plot(
            ax=ax,
            color=[policy.color(v) for v in exact["level"]],
            alpha=0.85,
            edgecolor="#222222",
            linewidth=0.6,
        )
    hot = data.hotspots[data.hotspots["class"] == "hot"] if len(data.hotspots) else data.hotspots
    if len(hot):
        h = gpd.GeoSeries(hot.geometry.to_numpy(), crs=WGS84).to_crs(crs)
        h.plot(ax=ax, facecolor="none", edgecolor="#8e0000", hatch="////", linewidth=0.8)
    areas = [shapely.geometry.shape(a["geometry"]) for a in data.alerts.get("alerts", [])]
    if areas:
        a = gpd.GeoSeries(areas, crs=WGS84).to_crs(crs)
        a.boundary.plot(ax=ax, color="#000000", linewidth=1.6, linestyle="--")
    if len(comm):
        minx, miny, maxx, maxy = comm.total_bounds
        pad = 0.02 * max(maxx - minx, maxy - miny, 1.0)
        ax.set_xlim(minx - pad, maxx + pad)
        ax.set_ylim(miny - pad, maxy + pad)
    return _png(fig, dpi=120)


# ---- the page --------------------------------------------------------------------------------


def _css(policy: Policy) -> str:
    """The page's style sheet: the template's and one swatch class per level (ids and
    colours are checked patterns: nothing from them can end the block)."""
    base = (TEMPLATES / "report.css").read_text(encoding="utf-8")
    lines = [base.rstrip("\n")]
    for i, color in enumerate([lv.color for lv in policy.levels] + [policy.none_color]):
        if not HEX_COLOR.match(color):
            raise ValueError(f"colour {color!r}: expected #rrggbb")
        lines.append(f".swatch.c{i} {{ background: {color}; }}")
    return "\n".join(lines) + "\n"


def report_csp(css: str) -> str:
    """The report's Content-Security-Policy: nothing loads but ``data:`` images, the one
    style block (by hash) and no script at all."""
    digest = base64.b64encode(hashlib.sha256(css.encode("utf-8")).digest()).decode("ascii")
    return (
        f"default-src 'none'; img-src data:; style-src 'sha256-{digest}'; "
        "base-uri 'none'; form-action 'none'"
    )


def _num(v: Any, digits: int = 0) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
        return "–"
    return f"{float(v):,.{digits}f}"


def _pct(v: Any) -> str:
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{float(v) * 100:+.0f}%"


def _signed(v: float | None) -> str:
    if v is None or math.isnan(v):
        return "–"
    return "±0" if round(v) == 0 else f"{v:+,.0f}"


def _na(v: Any) -> Any:
    return None if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)) else v


def _context(data: ReportData) -> dict[str, Any]:
    """The template's values (strings and numbers; the template escapes them)."""
    policy = data.policy
    lv = data.levels
    levels = []
    for i, r in enumerate(lv.itertuples(index=False)):
        change = None if r.yesterday is None else r.population - r.yesterday
        levels.append(
            {
                "swatch": f"c{i}",
                "label": r.label,
                "id": r.level,
                "zones": int(r.zones),
                "communities": int(r.communities),
                "population": _num(r.population),
                "change": _signed(change),
                "estimated": bool(r.estimated),
            }
        )
    in_zone = float(lv["population"].sum()) if len(lv) else 0.0
    yday = lv["yesterday"].dropna()
    in_zone_change = in_zone - float(yday.sum()) if len(yday) == len(lv) else None

    ev = data.events
    kinds = {k: int((ev["kind"] == k).sum()) if len(ev) else 0 for k in EVENT_KINDS}
    label_of = {lv_.id: lv_.label for lv_ in policy.levels} | {NONE_LEVEL: NONE_LABEL}
    changes = []
    for k in CHANGE_KINDS:
        sel = ev[ev["kind"] == k] if len(ev) else ev
        items = [
            {
                "unit": (
                    f"{r.name} ({r.unit_id})"
                    if r.unit_type == "community" and r.name
                    else (str(r.unit_id) if r.unit_type == "community" else f"area {r.unit_id}")
                ),
                "from": label_of.get(r.level_from, r.level_from),
                "to": label_of.get(r.level_to, r.level_to),
            }
            for r in sel.head(LIST_MAX).itertuples(index=False)
        ]
        changes.append(
            {"kind": k, "count": len(sel), "entries": items, "more": max(len(sel) - LIST_MAX, 0)}
        )

    alerts = []
    for a in data.alerts.get("alerts", [])[:LIST_MAX]:
        c = a["center"]
        alerts.append(
            {
                "center": f"{c['name']} ({c['id']})" if c.get("name") else str(c["id"]),
                "communities": len(a["communities"]),
                "start": str(a["start"]),
                "end": str(a["end"]),
                "observed": a.get("observed"),
                "expected": None if a.get("expected") is None else f"{a['expected']:.1f}",
                "p_value": "–" if a.get("p_value") is None else f"{a['p_value']:.3g}",
                "recurrence": _num(a.get("recurrence_days")),
            }
        )
    hot = data.hotspots
    classes = hot["class"].value_counts().to_dict() if len(hot) else {}

    d = data.districts.copy()
    d["_r"] = d["per_100k"].astype("Float64").fillna(-1.0)
    d = d.sort_values(["_r", "unit_id"], ascending=[False, True])
    districts = [
        {
            "name": f"{r.name} ({r.unit_id})" if r.name else str(r.unit_id),
            "population": _num(_na(r.population)),
            "cases": int(r.cases),
            "per_100k": _num(_na(r.per_100k), 1),
            "last": int(r.cases_last),
            "previous": int(r.cases_previous),
            "growth": _pct(_na(r.growth)),
            "doubling": _num(_na(r.doubling_days), 1),
            "note": r.note,
        }
        for r in d.itertuples(index=False)
    ]
    o = data.overall
    legend = [{"swatch": f"c{i}", "label": lv_.label} for i, lv_ in enumerate(policy.levels)]
    legend.append({"swatch": f"c{len(policy.levels)}", "label": NONE_LABEL})
    window = o.get("window")
    gwindow = o.get("growth_window")
    return {
        "title": f"Situation report {data.at.isoformat()}",
        "policy_name": policy.name,
        "policy_id": policy.id,
        "at": data.at.isoformat(),
        "yesterday": (data.at - dt.timedelta(days=1)).isoformat(),
        "data_version": data.data_version,
        "data_through": "–" if data.data_through is None else data.data_through.isoformat(),
        "generated": data.generated.isoformat().replace("+00:00", " UTC"),
        "levels": levels,
        "in_zone": _num(in_zone),
        "in_zone_change": _signed(in_zone_change),
        "zones_total": int(lv["zones"].sum()) if len(lv) else 0,
        "any_estimated": bool(lv["estimated"].any()) if len(lv) else False,
        "kinds": kinds,
        "changes": changes,
        "alerts": alerts,
        "alerts_total": len(data.alerts.get("alerts", [])),
        "alerts_more": max(len(data.alerts.get("alerts", [])) - LIST_MAX, 0),
        "study_start": str(data.alerts.get("study_start", "")),
        "replications": data.alerts.get("replications"),
        "min_recurrence": _num(data.alerts.get("min_recurrence_days")),
        "hot": int(classes.get("hot", 0)),
        "cold": int(classes.get("cold", 0)),
        "places": len(hot),
        "hot_res": hot.attrs.get("h3_resolution"),
        "hot_window": hot.attrs.get("window"),
        "hot_by_district": [
            {
                "name": f"{r.name} ({r.district})" if r.name and r.district else (r.name or "–"),
                "hot": int(r.hot),
            }
            for r in data.hot_by_district.head(LIST_MAX).itertuples(index=False)
        ],
        "districts": districts,
        "overall": {
            "population": _num(_na(o.get("population"))),
            "cases": int(o.get("cases", 0)),
            "per_100k": _num(_na(o.get("per_100k")), 1),
            "last": int(o.get("cases_last", 0)),
            "previous": int(o.get("cases_previous", 0)),
            "growth": _pct(_na(o.get("growth"))),
            "doubling": _num(_na(o.get("doubling_days")), 1),
            "outside": int(o.get("outside", 0)),
        },
        "window": (f"{window[0].isoformat()} to {window[1].isoformat()}" if window else ""),
        "growth_window": (
            f"{gwindow[0].isoformat()} to {gwindow[1].isoformat()}" if gwindow else ""
        ),
        "trend_start": data.population["date"].min().isoformat() if len(data.population) else "",
        "legend": legend,
    }


@dataclass(frozen=True)
class Page:
    """A rendered report: the HTML page and its Content-Security-Policy (also in the page,
    as a ``<meta>`` tag)."""

    html: str
    csp: str


def render_report(data: ReportData) -> Page:
    """The report as one self-contained HTML page (see the module's docstring)."""
    import jinja2
    from markupsafe import Markup

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    css = _css(data.policy)
    if re.search(r"</style", css, re.I):  # never: the sheet is ours, its colours checked
        raise ValueError("the report's style sheet cannot hold </style")
    ctx = _context(data)
    csp = report_csp(css)
    ctx |= {
        "csp": csp,
        "css": Markup(css),
        "map_png": map_image(data),
        "population_png": population_plot(data),
        "cases_png": cases_plot(data),
    }
    return Page(env.get_template("report.html").render(ctx), csp)
