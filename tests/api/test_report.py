"""The daily situation report: ``riskmap report`` and ``GET /v1/report``. Its figures are
those of the underlying functions on a small sample city; bad dates and rules are clear
errors; anonymous callers and keys of other roles get no report; names from the data and
the rule file show as text."""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from riskmap.api.cli import app
from riskmap.api.ingest import ingest_cases, ingest_communities
from riskmap.api.report import situation_report
from riskmap.api.service import RiskService
from riskmap.api.settings import Settings
from riskmap.api.store import Store
from riskmap.data.generator import generate_city, write_city
from riskmap.geo.history import zone_events
from riskmap.geo.hotspots import hotspots
from riskmap.geo.measures import population_under_levels, unit_measures
from riskmap.geo.policy import load_policy
from riskmap.geo.scan import DEFAULT_SIGNAL_DAYS, community_counts, space_time_scan
from tests.api.helpers import served
from tests.api.report_page import ReportPage
from tests.browser import CHROMIUM
from tests.browser import playwright as playwright_or_skip
from tests.helpers import REPO, squares

runner = CliRunner()
ARTIFACTS = REPO / "var" / "test-artifacts"
END = dt.date(2024, 3, 31)
REPLICATIONS = 19  # the scan's p-values need not be fine here
SECTIONS = ("zones", "map", "changes", "early-warning", "districts", "trends")

# names that run script or break out of the page if they reach it as HTML
IMG_NAME = '<img src=x onerror="window.__xss=1">'
SCRIPT_NAME = "</script><script>window.__xss=2</script>"
STYLE_NAME = "</style><style>body{display:none}</style>"
HOSTILE_ID = "'\"><svg onload=window.__xss=3>"
DISTRICT_ID = "D<b>1</b>"
RULE_NAME = "</title><script>window.__xss=4</script><!--"
LEVEL_LABEL = "<img src=y onerror=window.__xss=5> Sealed $x^2$ _hidden"


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    r = runner.invoke(app, list(args), env=env)
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception
    return r.exit_code, r.stdout, r.stderr


ENV = {"RISKMAP_SCAN_REPLICATIONS": str(REPLICATIONS), "RISKMAP_MIN_PUBLIC_COUNT": "5"}


@pytest.fixture(scope="module")
def city_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small sample city (300 communities, 3 districts) in a SQLite store."""
    out = tmp_path_factory.mktemp("report-city")
    write_city(
        generate_city(seed=3, communities=300, cases=600, days=40, end=END, districts=3), out
    )
    db = out / "riskmap.db"
    store = Store.open(db)
    ingest_communities(store, out / "communities.geojson")
    assert ingest_cases(store, out / "cases.csv", today=END).counts.rejected == 0
    store.close()
    return db


@pytest.fixture(scope="module")
def cli_report(city_db: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("report-out") / "sub" / "report.html"
    code, _, err = run(
        "--db", str(city_db), "report", "--at", END.isoformat(), "--out", str(out), env=ENV
    )
    assert code == 0, err
    assert f"written to {out}" in err
    return out.read_text(encoding="utf-8")


def _int(s: str) -> int:
    return int(s.replace(",", "").rstrip("*"))


def check_figures(page: str, db: Path) -> None:
    """Every section of the report holds the figures of the underlying functions."""
    doc = ReportPage(page)
    for sid in SECTIONS:
        assert sid in doc.text, f"section {sid} missing"
    policy = load_policy(Settings().policy)
    svc = RiskService(Store.open(db))
    try:
        version, layer, cases = svc.data()
        result = svc.snapshot(policy, END).result
    finally:
        svc.shutdown()

    # zones by level with the residents affected (today and the change since yesterday)
    pop = population_under_levels(result, layer, END - dt.timedelta(days=1), END)
    rows = {r[0]: r for r in doc.tables["zones"][1:-1]}
    assert len(rows) == len(policy.levels)
    total = 0.0
    for lv in policy.levels:
        row = rows[lv.label]
        now = float(pop[(pop["date"] == END) & (pop["level"] == lv.id)]["population"].iloc[0])
        before = float(
            pop[(pop["date"] == END - dt.timedelta(days=1)) & (pop["level"] == lv.id)][
                "population"
            ].iloc[0]
        )
        total += now
        assert _int(row[1]) == int((result.zones["level"] == lv.id).sum())
        assert _int(row[2]) == int((result.levels["level"] == lv.id).sum())
        assert _int(row[3]) == round(now)
        change = row[4].replace("±", "+")
        assert int(change.replace(",", "")) == round(now - before), (row, now, before)
    assert _int(doc.text["fig-in-zone"]) == round(total)
    assert _int(doc.text["fig-zones"]) == len(result.zones)
    assert sum(int((result.zones["level"] == lv.id).sum()) for lv in policy.levels) > 0

    # changes since yesterday: the zone events of the day
    ev = zone_events(result, layer, END, END)
    for kind in ("created", "escalated", "lifted"):
        n = int((ev["kind"] == kind).sum())
        assert doc.text[f"changes-{kind}"] == f"{kind.capitalize()}: {n}"
    line = doc.text["changes"]
    for kind in ("created", "escalated", "stepped down", "lifted"):
        n = int((ev["kind"] == kind.replace(" ", "_")).sum())
        assert f"{n} {kind}" in line

    # scan alerts: the signals of the scan GET /v1/alerts runs
    counts, coords = community_counts(layer, cases)
    scan = space_time_scan(
        counts,
        coords,
        end=END,
        start=END - dt.timedelta(days=364),
        prospective=True,
        max_share=0.5,
        min_days=2,
        max_days=30,
        seed=0,
        replications=REPLICATIONS,
    )
    signals = scan.signals(DEFAULT_SIGNAL_DAYS)
    assert _int(doc.text["fig-signals"]) == len(signals)
    if signals:
        assert len(doc.tables["alerts"]) - 1 == len(signals)
        first = doc.tables["alerts"][1]
        assert first[3] == str(signals[0].observed)
        assert first[1] == str(len(signals[0].locations))
    else:
        assert doc.text["alerts"] == "No signal."

    # hotspots: the public classes of GET /v1/hotspots
    hot = hotspots(layer, cases, END, res=8, on="cells", days=14, public=True, min_count=5)
    n_hot = int((hot["class"] == "hot").sum())
    n_cold = int((hot["class"] == "cold").sum())
    assert _int(doc.text["fig-hot"]) == n_hot
    assert doc.text["hotspots"].startswith(f"{n_hot} hot and {n_cold} cold of {len(hot)} places")
    if n_hot:
        assert sum(_int(r[1]) for r in doc.tables["hot-districts"][1:]) == n_hot

    # incidence and growth by district
    meas = unit_measures(layer, cases, END, unit="district")
    table = doc.tables["district-table"]
    by_id = {r[0].rsplit("(", 1)[-1].rstrip(")"): r for r in table[1:-1]}
    assert set(by_id) == set(meas["unit_id"])
    for m in meas.itertuples(index=False):
        row = by_id[m.unit_id]
        assert _int(row[1]) == m.population
        assert _int(row[2]) == m.cases
        assert row[3] == f"{m.per_100k:,.1f}"
        assert (_int(row[4]), _int(row[5])) == (m.cases_last, m.cases_previous)
    whole = unit_measures(layer, cases, END, unit="all").iloc[0]
    assert _int(table[-1][2]) == whole["cases"]
    assert _int(doc.text["fig-cases"]) == whole["cases_last"]
    assert meas["cases"].sum() > 0

    # plots and map: PNG images inside the page, nothing else loaded
    images = doc.images()
    assert set(images) == {"map-image", "plot-population", "plot-cases"}
    for png in images.values():
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5_000
    assert not [t for t, _ in doc.tags if t in ("script", "link", "iframe", "object", "embed")]
    assert not [a for _, a in doc.tags if "href" in a or "srcset" in a]
    # the page's policy allows exactly its style block and data: images
    csp = doc.csp()
    assert f"style-src '{doc.style_hash()}'" in csp
    assert "default-src 'none'" in csp and "img-src data:" in csp
    assert "script-src" not in csp  # default-src 'none': no script at all
    assert f"data version {version}" in doc.text["meta"]


def test_cli_report_holds_the_figures_of_the_underlying_functions(
    cli_report: str, city_db: Path
) -> None:
    check_figures(cli_report, city_db)
    doc = ReportPage(cli_report)
    assert doc.text["title"] == f"Situation report {END.isoformat()}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--at", "2024-02-30"], "--at: '2024-02-30' is not a date (expected YYYY-MM-DD)"),
        (["--at", "yesterday"], "--at: 'yesterday' is not a date"),
        (["--at", "1999-01-01"], "--at: 1999-01-01 must lie from 2024-"),
        (["--policy", "no-such-rule"], "no-such-rule"),
    ],
)
def test_cli_bad_date_or_rule_is_one_clear_line(
    city_db: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "r.html"
    code, _, err = run("--db", str(city_db), "report", "--out", str(out), *args, env=ENV)
    assert code == 1
    assert message in " ".join(err.split()), err
    assert "Traceback" not in err
    assert not out.exists()


def test_cli_out_must_be_a_file(city_db: Path, tmp_path: Path) -> None:
    code, _, err = run(
        "--db", str(city_db), "report", "--at", END.isoformat(), "--out", str(tmp_path), env=ENV
    )
    assert code == 1 and "--out" in err and "is a folder" in err


@pytest.fixture(scope="module")
def keys(city_db: Path) -> dict[str, str]:
    store = Store.open(city_db)
    try:
        return {r: store.create_key(r, f"report {r}")[1] for r in ("analyst", "officer", "admin")}
    finally:
        store.close()


def _settings(db: Path) -> Settings:
    return Settings(
        database_url=f"sqlite:///{db}",
        rate_limit_per_minute=0,
        scan_replications=REPLICATIONS,
        min_public_count=5,
    )


def test_route_report_for_analysts(city_db: Path, keys: dict[str, str], cli_report: str) -> None:
    with served(_settings(city_db)) as c:
        auth = {"Authorization": f"Bearer {keys['analyst']}"}
        r = c.get(f"/v1/report?at={END}", headers=auth)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/html")
        check_figures(r.text, city_db)
        # the page's own policy as a header too (no framing), never the map page's
        csp = r.headers["content-security-policy"]
        assert csp == ReportPage(r.text).csp() + "; frame-ancestors 'none'"
        assert r.headers["cache-control"] == "no-store"
        assert "Authorization" in r.headers["vary"]
        # computed once per (data version, rule, date): the same page again
        again = c.get(f"/v1/report?at={END}", headers=auth)
        assert again.text == r.text
        # the same figures as the command line's report (only the time it was made differs)
        strip = ReportPage(r.text).text
        cli = ReportPage(cli_report).text
        for key in ("zones", "changes", "early-warning", "districts"):
            assert strip[key] == cli[key], key
        # an admin reads it too
        admin = c.get(f"/v1/report?at={END}", headers={"Authorization": f"Bearer {keys['admin']}"})
        assert admin.status_code == 200


def test_route_needs_an_analyst_key(city_db: Path, keys: dict[str, str]) -> None:
    with served(_settings(city_db)) as c:
        anon = c.get(f"/v1/report?at={END}")
        assert anon.status_code == 401
        assert anon.headers["www-authenticate"] == "Bearer"
        assert "<html" not in anon.text and "Situation report" not in anon.text
        officer = c.get(
            f"/v1/report?at={END}", headers={"Authorization": f"Bearer {keys['officer']}"}
        )
        assert officer.status_code == 403
        assert "analyst" in officer.json()["detail"] and "<html" not in officer.text
        bad = c.get(f"/v1/report?at={END}", headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401


@pytest.mark.parametrize(
    ("query", "status", "names"),
    [
        ("at=2024-02-30", 422, "at"),
        ("at=soon", 422, "at"),
        ("at=1999-01-01", 422, "'at' (1999-01-01) must lie from"),
        ("at=2024-03-31&policy=no-such-rule", 404, "no-such-rule"),
    ],
)
def test_route_bad_date_or_rule(
    city_db: Path, keys: dict[str, str], query: str, status: int, names: str
) -> None:
    with served(_settings(city_db)) as c:
        r = c.get(f"/v1/report?{query}", headers={"Authorization": f"Bearer {keys['analyst']}"})
        assert r.status_code == status, r.text
        assert names in r.text


# ------------------------------------------------------------------------- hostile names


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """A store whose communities and district have hostile names and ids, two sealed by
    cases, and a rule file whose name and level label are hostile too."""
    tmp = tmp_path_factory.mktemp("report-hostile")
    gdf = squares([("A", 0, 0, 800, "D1"), ("B", 800, 0, 800, "D1"), ("C", 0, 800, 800, "D2")])
    gdf["community_id"] = [HOSTILE_ID, "B", "C"]
    gdf["name"] = [IMG_NAME, SCRIPT_NAME, STYLE_NAME]
    gdf["district_id"] = [DISTRICT_ID, DISTRICT_ID, "D2"]
    gdf.to_file(tmp / "c.geojson", driver="GeoJSON")
    db = tmp / "r.db"
    store = Store.open(db)
    ingest_communities(store, tmp / "c.geojson")
    a = gdf.geometry.iloc[0].representative_point()
    b = gdf.geometry.iloc[1].representative_point()
    (tmp / "cases.csv").write_text(
        "case_id,reported,type,role,lat,lon\n"
        f"k1,2024-03-09,confirmed,residence,{a.y:.6f},{a.x:.6f}\n"
        f"k2,2024-03-10,confirmed,residence,{b.y:.6f},{b.x:.6f}\n"
    )
    assert ingest_cases(store, tmp / "cases.csv", today=END).counts.accepted == 2
    store.close()
    rule = yaml.safe_load((REPO / "data" / "policies" / "cn-three-zone.yaml").read_text())
    rule["id"], rule["name"] = "hostile-rule", RULE_NAME
    rule["levels"][0]["label"] = LEVEL_LABEL
    (tmp / "rule.yaml").write_text(yaml.safe_dump(rule))
    yield db, tmp / "rule.yaml"


def test_hostile_names_show_as_text(hostile: tuple[Path, Path], tmp_path: Path) -> None:
    db, rule = hostile
    out = tmp_path / "report.html"
    args = ["--db", str(db), "report", "--at", "2024-03-10", "--policy", str(rule)]
    code, _, err = run(*args, "--out", str(out), env=ENV)
    assert code == 0, err
    page = out.read_text(encoding="utf-8")
    hostile_names = (IMG_NAME, SCRIPT_NAME, STYLE_NAME, HOSTILE_ID, DISTRICT_ID, RULE_NAME)
    for name in (*hostile_names, LEVEL_LABEL):
        assert name not in page, name
    doc = ReportPage(page)
    # only the page's own elements: no element or attribute from a name
    tags = {t for t, _ in doc.tags}
    assert "script" not in tags and "svg" not in tags and "b" not in tags
    assert [t for t, _ in doc.tags if t == "img"] == ["img"] * 3
    assert [t for t, _ in doc.tags if t == "style"] == ["style"]
    assert not [a for _, a in doc.tags if any(k.startswith("on") for k in a)]
    # the names read as they are, as text
    assert html.escape(RULE_NAME, quote=False) in page
    assert doc.text["policy-name"] == RULE_NAME
    assert LEVEL_LABEL in doc.text["zones"] and LEVEL_LABEL in doc.text["legend"]
    changes = doc.text["changes"]
    assert f"{SCRIPT_NAME} (B)" in changes, changes  # sealed by the case of the day
    assert DISTRICT_ID in doc.text["districts"]
    # the style block is the page's own, and its hash is in the policy
    assert f"'{doc.style_hash()}'" in doc.csp()


def test_report_is_computed_once_per_key(hostile: tuple[Path, Path]) -> None:
    db, rule = hostile
    svc = RiskService(Store.open(db))
    try:
        policy = load_policy(str(rule))
        at = dt.date(2024, 3, 10)
        v1, a = situation_report(svc, policy, at, replications=REPLICATIONS)
        v2, b = situation_report(svc, policy, at, replications=REPLICATIONS)
        assert v1 == v2 and a is b  # the cached page, not a second computation
        _, other = situation_report(svc, policy, at - dt.timedelta(days=1), replications=9)
        assert other is not a and "Situation report 2024-03-09" in other.html
        assert ReportPage(a.html).csp() == a.csp
    finally:
        svc.shutdown()


# ------------------------------------------------------------------------- in the browser


def test_report_renders_offline_in_the_browser(cli_report: str, tmp_path: Path) -> None:
    """The report file opened from file:// in headless Chromium with the network cut and
    every request intercepted: its headings show, its map and plots are drawn images with
    coloured pixels, nothing is refused by its policy, no request leaves the file, and a
    script it did not hold is refused."""
    import io

    import matplotlib.image as mpimg
    import numpy as np

    sync_playwright = playwright_or_skip()
    path = tmp_path / "report.html"
    path.write_text(cli_report, encoding="utf-8")
    url = path.as_uri()
    requests: list[str] = []
    intercepted: list[str] = []
    console: list[str] = []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM))
        try:
            context = browser.new_context(viewport={"width": 1000, "height": 900})
            context.set_offline(True)

            def gate(route: Any) -> None:  # every request: the file itself passes, others cut
                if route.request.url == url or route.request.url.startswith("data:"):
                    route.continue_()
                else:
                    intercepted.append(route.request.url)
                    route.abort()

            context.route("**/*", gate)
            page = context.new_page()
            page.on("request", lambda r: requests.append(r.url))
            page.on("console", lambda m: console.append(m.text))
            page.goto(url, wait_until="load")

            # it renders: the title and every section's heading are visible
            assert page.locator("h1").inner_text() == f"Situation report {END.isoformat()}"
            for sid in SECTIONS:
                assert page.locator(f"#{sid} h2").is_visible(), sid
            assert page.title().startswith(f"riskmap: Situation report {END.isoformat()}")

            # its map and plots are loaded images that draw coloured pixels
            for img in ("map-image", "plot-population", "plot-cases"):
                loaded = page.evaluate(
                    "id => { const i = document.getElementById(id);"
                    " return i.complete && i.naturalWidth > 100 && i.naturalHeight > 100; }",
                    img,
                )
                assert loaded, img
            shot = page.locator("#map-image").screenshot()
            rgb = mpimg.imread(io.BytesIO(shot), format="png")[..., :3]
            coloured = (rgb.max(axis=2) - rgb.min(axis=2)) > 0.15  # not white, grey or black
            assert coloured.mean() > 0.2, coloured.mean()  # communities filled by level
            assert len(np.unique(rgb.reshape(-1, 3).round(2), axis=0)) > 5
            page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)

            # its policy refuses nothing it needs, and a script it did not hold does not run
            assert [m for m in console if "Content Security Policy" in m] == []
            page.evaluate(
                "() => { const s = document.createElement('script');"
                " s.textContent = 'window.__xss = 1'; document.body.appendChild(s); }"
            )
            assert page.evaluate("() => typeof window.__xss") == "undefined"
            assert any("Content Security Policy" in m for m in console)
        finally:
            browser.close()
    # nothing left the file: only the file itself (and its own data: images) were requested
    assert intercepted == []
    assert [u for u in requests if u != url and not u.startswith("data:")] == [], requests
    assert url in requests
