"""The ``riskmap`` command line."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from riskmap.geo._errors import RiskmapError

if TYPE_CHECKING:
    from rich.progress import Progress

    from riskmap.api.clock import Clock
    from riskmap.api.settings import Settings

# Heavy modules (pandas, geopandas, shapely, the engine, FastAPI, pydantic-settings) are
# imported inside the commands that need them: `riskmap --help` stays fast, and a test checks
# that importing this module loads none of them (tests/api/test_cli_habits.py).


class _OneLineErrors(TyperGroup):
    """Every command: riskmap's errors (a damaged store too) print one line, exit 1."""

    def invoke(self, ctx: Any) -> Any:
        import sqlite3

        from riskmap.api.store import damage

        try:
            return super().invoke(ctx)
        except (RiskmapError, sqlite3.DatabaseError) as e:
            found = damage(e) if isinstance(e, sqlite3.DatabaseError) else e
            if found is None:
                raise
            err.print(f"[bold red]error:[/] {found}", highlight=False)
            raise typer.Exit(1) from None


app = typer.Typer(
    help="riskmap: risk zones for community-based epidemic prevention and control.",
    no_args_is_help=True,
    add_completion=False,
    cls=_OneLineErrors,
    # plain help and usage errors: typer's rich help loads markdown-it and pygments (0.4 s)
    rich_markup_mode=None,
)
ingest_app = typer.Typer(help="Load communities or cases into the store.", no_args_is_help=True)
app.add_typer(ingest_app, name="ingest")
keys_app = typer.Typer(help="API keys for the write and analyst routes.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
export_app = typer.Typer(
    help="Write map layers to files that any static host serves without riskmap.",
    no_args_is_help=True,
)
app.add_typer(export_app, name="export")


class _Console:
    """A rich ``Console`` made when first used (importing rich.console takes a tenth of a
    second that ``riskmap --help`` does not need)."""

    def __init__(self, stderr: bool) -> None:
        self._stderr = stderr
        self._console: Any = None

    def get(self) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=self._stderr, soft_wrap=True)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.get(), name)


out = _Console(stderr=False)
err = _Console(stderr=True)


class _State:
    db: Path | None = None


state = _State()


def _settings() -> Settings:
    from riskmap.api.settings import Settings

    return Settings()


def _db() -> str:
    """The database URL: ``--db``, else ``RISKMAP_DATABASE_URL``."""
    return state.db if state.db is not None else _settings().database_url


def _fail(msg: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {msg}", highlight=False)
    return typer.Exit(code)


def _progress() -> Progress:
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err.get(),
        transient=False,
    )


@app.callback()
def main_options(
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            help="store: a SQLite file, sqlite:///path or postgresql://user@host/db "
            "(default RISKMAP_DATABASE_URL, else var/riskmap.db)",
        ),
    ] = None,
) -> None:
    state.db = db


def _clock() -> Clock:
    """The clock of the configured time zone (RISKMAP_TIMEZONE), as the server keeps it."""
    from riskmap.api.clock import Clock, timezone_of

    return Clock(timezone_of(_settings().timezone))


def _today() -> dt.date:
    return _clock().today()


def _parse_date(s: str | None, what: str = "--at") -> dt.date:
    if s is None:
        return _today()
    try:
        return dt.date.fromisoformat(s)
    except ValueError:
        raise _fail(f"{what}: {s!r} is not a date (expected YYYY-MM-DD)") from None


@app.command()
def sample(
    out_dir: Annotated[Path, typer.Option("--out", help="output folder")],
    seed: Annotated[int, typer.Option(help="random seed (same seed, same bytes)")] = 0,
    communities: Annotated[int, typer.Option(min=3, help="number of communities")] = 2000,
    cases: Annotated[int, typer.Option(min=1, help="about this many cases")] = 5000,
    days: Annotated[int, typer.Option(min=1, help="length of the outbreak in days")] = 60,
    end: Annotated[
        str | None, typer.Option(help="last day of the outbreak, YYYY-MM-DD (default today)")
    ] = None,
    subdistricts: Annotated[
        int | None, typer.Option(min=1, help="default: communities / 50")
    ] = None,
    districts: Annotated[int | None, typer.Option(min=1, help="default: communities / 333")] = None,
) -> None:
    """Generate a deterministic sample city (communities, parents and an outbreak)."""
    from riskmap.data.generator import generate_city, write_city

    end_d = _parse_date(end, "--end")
    with _progress() as prog:
        task = prog.add_task("generating", total=None)

        def step(msg: str) -> None:
            prog.update(task, description=msg)

        city = generate_city(
            seed=seed,
            communities=communities,
            cases=cases,
            days=days,
            end=end_d,
            subdistricts=subdistricts,
            districts=districts,
            progress=step,
        )
        paths = write_city(city, out_dir, progress=step)
        prog.update(task, description="done")
    n_cases = city.cases["case_id"].nunique()
    out.print(
        f"sample city: {len(city.communities)} communities, {len(city.subdistricts)} subdistricts,"
        f" {len(city.districts)} districts, {n_cases} cases ({len(city.cases)} locations),"
        f" {days} days ending {city.end.isoformat()}"
    )
    for p in paths:
        out.print(f"  {p}")


def _column_map(spec: str | None) -> dict[str, str] | None:
    from riskmap.geo.io import parse_column_map

    if not spec:
        return None
    try:
        return parse_column_map(spec)
    except ValueError as e:
        raise _fail(f"--columns: {e}") from None


SHOWN = 20  # rejected rows and warnings printed; --rejects / --report write them all


def _report(rep: Any, rejects_out: Path | None, report_out: Path | None) -> None:
    from rich.table import Table

    c = rep.counts
    t = Table(title=f"{rep.kind} from {rep.source} (batch {rep.batch_id})", show_header=False)
    t.add_row("rows read", str(c.rows_read))
    t.add_row("accepted", str(c.accepted))
    t.add_row("  new", str(c.inserted))
    if rep.kind == "cases":
        t.add_row("  already stored", str(c.unchanged))
        t.add_row("  cases updated (new version)", str(c.updated))
    else:
        t.add_row("  updated", str(c.updated))
        t.add_row("  unchanged", str(c.unchanged))
    t.add_row("rejected", str(c.rejected))
    for reason, k in rep.by_reason:
        t.add_row(f"  {reason}", str(k))
    out.print(t)
    for w in rep.warnings[:SHOWN]:
        err.print(f"[yellow]warning:[/] {w}", highlight=False)
    if len(rep.warnings) > SHOWN:
        err.print(
            f"[yellow]… {len(rep.warnings) - SHOWN} more warnings[/] (--report FILE writes all)"
        )
    for r in rep.rejects[:SHOWN]:
        err.print(f"[red]rejected:[/] {r}", highlight=False)
    if len(rep.rejects) > SHOWN:
        err.print(
            f"… {len(rep.rejects) - SHOWN} more rejected rows (--report FILE or --rejects FILE "
            "writes all)"
        )
    if rejects_out is not None:
        _write_csv(
            rejects_out,
            ["file", "row", "field", "reason"],
            [[r.file, r.row, r.field, r.reason] for r in rep.rejects],
        )
        if rep.rejects:
            out.print(f"{len(rep.rejects)} rejected rows written to {rejects_out}")
    if report_out is not None:
        _write_csv(report_out, ["kind", "file", "row", "field", "message"], rep.rows())
        out.print(
            f"{len(rep.rejects)} rejected rows and {len(rep.warnings)} warnings written to "
            f"{report_out}"
        )


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def _limits() -> Any:
    from riskmap.api.ingest import input_limits

    return input_limits(_settings())


def _open_store(must_exist: bool = False, check: bool = True) -> Any:
    """The store of ``--db``. A command that only reads (``must_exist``) refuses a SQLite file
    that does not exist rather than creating an empty store; ``check``: see ``Store.open``."""
    from riskmap.api.store import Store, sqlite_path

    url = _db()
    path = sqlite_path(url)
    if must_exist and path is not None and not path.exists():
        raise _fail(
            f"no store at {path}: ingest data first (riskmap ingest ...), or name the store "
            "with --db or RISKMAP_DATABASE_URL"
        )
    try:
        return Store.open(url, check=check)
    except RiskmapError as e:
        raise _fail(str(e)) from None


ColumnsOpt = Annotated[
    str | None,
    typer.Option(
        "--columns",
        help="map our field names to the file's columns, e.g. "
        "lat=latitude,lon=longitude,case_id=patient_id,reported=date",
    ),
]
RejectsOpt = Annotated[
    Path | None, typer.Option("--rejects", help="write every rejected row to this CSV file")
]
ReportOpt = Annotated[
    Path | None,
    typer.Option(
        "--report",
        help="write every rejected row and every warning to this CSV file "
        "(kind,file,row,field,message)",
    ),
]
DateFormatOpt = Annotated[
    str | None,
    typer.Option(
        "--date-format",
        help="how the dates are written, a strftime pattern such as %d/%m/%Y or %m/%d/%Y "
        "(YYYY-MM-DD is always read)",
    ),
]


@ingest_app.command("communities")
def ingest_communities_cmd(
    file: Annotated[
        Path, typer.Argument(help="GeoJSON, GeoPackage, Shapefile (.shp or .zip), GeoParquet")
    ],
    columns: ColumnsOpt = None,
    encoding: Annotated[
        str | None, typer.Option(help="text encoding of a shapefile's .dbf, e.g. cp949")
    ] = None,
    rejects: RejectsOpt = None,
    report: ReportOpt = None,
) -> None:
    """Load community polygons (any CRS; reprojected to WGS84)."""
    from riskmap.api.ingest import ingest_communities

    _run_ingest(
        "communities",
        "community",
        file,
        rejects,
        report,
        lambda store: ingest_communities(
            store,
            file,
            columns=_column_map(columns),
            encoding=encoding,
            h3_res=_settings().h3_resolution,
            limits=_limits(),
        ),
    )


@ingest_app.command("cases")
def ingest_cases_cmd(
    file: Annotated[Path, typer.Argument(help="CSV, GeoJSON or GeoParquet, one row per location")],
    columns: ColumnsOpt = None,
    role: Annotated[
        str | None,
        typer.Option(help="role of rows with no role column or an empty role, e.g. residence"),
    ] = None,
    date_format: DateFormatOpt = None,
    rejects: RejectsOpt = None,
    report: ReportOpt = None,
) -> None:
    """Load case locations (case_id, reported, type, role, lat, lon)."""
    from riskmap.api.ingest import ingest_cases

    _run_ingest(
        "case locations",
        "case location",
        file,
        rejects,
        report,
        lambda store: ingest_cases(
            store,
            file,
            columns=_column_map(columns),
            default_role=role,
            h3_res=_settings().h3_resolution,
            date_format=date_format,
            limits=_limits(),
        ),
    )


@ingest_app.command("metrics")
def ingest_metrics_cmd(
    file: Annotated[Path, typer.Argument(help="CSV: unit_id,date,admissions_per_100k,beds_pct")],
    columns: ColumnsOpt = None,
    date_format: DateFormatOpt = None,
    rejects: RejectsOpt = None,
    report: ReportOpt = None,
) -> None:
    """Load hospital figures per district (used by cdc-community)."""
    from riskmap.api.ingest import ingest_metrics

    _run_ingest(
        "hospital figures",
        "figure",
        file,
        rejects,
        report,
        lambda store: ingest_metrics(
            store,
            file,
            columns=_column_map(columns),
            date_format=date_format,
            limits=_limits(),
        ),
    )


@ingest_app.command("units")
def ingest_units_cmd(
    file: Annotated[
        Path,
        typer.Argument(
            help="subdistricts or districts: GeoJSON, GeoPackage, Shapefile, GeoParquet, CSV"
        ),
    ],
    level: Annotated[
        str | None,
        typer.Option(
            help="subdistrict or district (default: from the id column, subdistrict_id or "
            "district_id)"
        ),
    ] = None,
    columns: ColumnsOpt = None,
    encoding: Annotated[
        str | None, typer.Option(help="text encoding of a shapefile's .dbf, e.g. cp949")
    ] = None,
    rejects: RejectsOpt = None,
    report: ReportOpt = None,
) -> None:
    """Load the names and populations of parent units (subdistricts, districts)."""
    from riskmap.api.ingest import ingest_units

    _run_ingest(
        "parent units",
        "unit",
        file,
        rejects,
        report,
        lambda store: ingest_units(
            store,
            file,
            level=level,
            columns=_column_map(columns),
            encoding=encoding,
            limits=_limits(),
        ),
    )


def _run_ingest(
    what: str, one: str, file: Path, rejects: Path | None, report: Path | None, run: Any
) -> None:
    """One ingest command: progress, clear errors, the report; exit 1 if nothing was read."""
    store = _open_store()
    try:
        with _progress() as prog:
            prog.add_task(f"ingesting {what} from {file}", total=None)
            rep = run(store)
    except (RiskmapError, ValueError) as e:
        raise _fail(str(e)) from None
    _report(rep, rejects, report)
    if rep.nothing_read:
        raise _fail(f"no {one} could be read from the file")


def _service() -> Any:
    from riskmap.api.service import RiskService

    s = _settings()
    return RiskService(_open_store(must_exist=True), s.h3_resolution, s.cache_size, clock=_clock())


def _policy(name: str | None) -> Any:
    from riskmap.geo.policy import load_policy

    try:
        return load_policy(name or _settings().policy)
    except RiskmapError as e:
        raise _fail(str(e)) from None


PolicyOpt = Annotated[
    str | None,
    typer.Option("--policy", help="preset name or rule file (default RISKMAP_POLICY)"),
]


def _json_default(o: Any) -> Any:
    if isinstance(o, dt.date):
        return o.isoformat()
    raise TypeError(type(o).__name__)


@app.command()
def zones(
    at: Annotated[str | None, typer.Option(help="as-of date YYYY-MM-DD (default today)")] = None,
    policy: PolicyOpt = None,
    level: Annotated[str | None, typer.Option(help="only zones of this level")] = None,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="write GeoJSON here (default: standard output)")
    ] = None,
    start: Annotated[
        str | None,
        typer.Option("--from", help="first date of a range YYYY-MM-DD (with --to, --out-dir)"),
    ] = None,
    end: Annotated[str | None, typer.Option("--to", help="last date of a range YYYY-MM-DD")] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out-dir",
            help="a range: one zones-YYYY-MM-DD.geojson per date and areas.geojson here",
        ),
    ] = None,
) -> None:
    """Compute the zones as of a date and write them as GeoJSON; with --from, --to and
    --out-dir, the zones of every date of the range from one computation."""
    from riskmap.tiles.geojson import zones_geojson

    ranged = start is not None or end is not None or out_dir is not None
    if ranged:
        if at is not None or out_file is not None:
            raise _fail("--at and --out are for one date; a range takes --from, --to, --out-dir")
        if start is None or end is None or out_dir is None:
            raise _fail("a range needs --from DATE, --to DATE and --out-dir DIR")
    at_d = _parse_date(at)
    pol = _policy(policy)
    if level is not None and level not in pol.level_ids:
        raise _fail(f"--level: {level!r} is not a level of {pol.id} ({pol.level_ids})")
    if ranged:
        assert out_dir is not None
        start_d, end_d = _parse_date(start, "--from"), _parse_date(end, "--to")
        if start_d > end_d:
            raise _fail(f"--from {start_d} is after --to {end_d}")
        _zones_range(pol, start_d, end_d, level, out_dir)
        return
    svc = _service()  # a store that cannot be opened: one line, before any progress line
    with _progress() as prog:
        prog.add_task(f"computing zones under {pol.id} as of {at_d}", total=None)
        snap = svc.snapshot(pol, at_d)
        fc = zones_geojson(snap.result, level, cells=True)
    text = json.dumps(fc, ensure_ascii=False)
    if out_file is None:
        sys.stdout.write(text + "\n")
    else:
        out_file.parent.mkdir(parents=True, exist_ok=True)
        out_file.write_text(text, encoding="utf-8")
        counts: dict[str, int] = {}
        for f in fc["features"]:
            counts[f["properties"]["level"]] = counts.get(f["properties"]["level"], 0) + 1
        summary = ", ".join(f"{v} {k}" for k, v in counts.items()) or "no zones"
        err.print(f"{summary} written to {out_file}")


def _zones_range(pol: Any, start: dt.date, end: dt.date, level: str | None, out_dir: Path) -> None:
    """``riskmap zones --from --to --out-dir``: one computation, a file per date and the
    exact-geometry areas of the range."""
    from riskmap.geo import cells as h3c
    from riskmap.geo.daily import area_history
    from riskmap.tiles.geojson import zones_geojson

    svc = _service()
    with _progress() as prog:
        prog.add_task(f"computing zones under {pol.id}, {start} .. {end}", total=None)
        daily = svc.zones_over(pol, start, end)
        areas = area_history(daily.result, svc.data()[1], start, end)
    out_dir.mkdir(parents=True, exist_ok=True)
    total = 0
    for d, result in daily:
        fc = zones_geojson(result, level, cells=True)
        total += len(fc["features"])
        path = out_dir / f"zones-{d.isoformat()}.geojson"
        path.write_text(json.dumps(fc, ensure_ascii=False), encoding="utf-8")
    if level is not None:
        areas = areas[areas["level"] == level]
    features = []
    for row in areas.itertuples(index=False):
        import shapely.geometry

        features.append(
            {
                "type": "Feature",
                "id": row.unit_id,
                "geometry": shapely.geometry.mapping(row.geometry),
                "properties": {
                    "unit_id": row.unit_id,
                    "level": row.level,
                    "label": row.label,
                    "first_day": row.first_day.isoformat(),
                    "last_day": row.last_day.isoformat(),
                    "days_active": int(row.days_active),
                    "h3_resolution": int(row.h3_resolution),
                    "cells": h3c.cells_to_hex(row.cells),
                },
            }
        )
    (out_dir / "areas.geojson").write_text(
        json.dumps({"type": "FeatureCollection", "features": features}, ensure_ascii=False),
        encoding="utf-8",
    )
    err.print(
        f"{len(daily)} dates ({total} zones) written to {out_dir}/zones-*.geojson, "
        f"{len(features)} exact-geometry areas to {out_dir / 'areas.geojson'}"
    )


@app.command()
def hotspots(
    at: Annotated[
        str | None, typer.Option(help="last day of the window YYYY-MM-DD (default today)")
    ] = None,
    res: Annotated[
        int, typer.Option(min=0, max=15, help="H3 resolution of the cells (public: 8 or coarser)")
    ] = 8,
    on: Annotated[str, typer.Option(help="cells or communities")] = "cells",
    days: Annotated[int, typer.Option(min=1, help="window: cases reported in these days")] = 14,
    alpha: Annotated[float, typer.Option(help="false discovery rate")] = 0.05,
    analyst: Annotated[
        bool,
        typer.Option(
            "--analyst",
            help="every column (cases, z, p, p_fdr) at any resolution: NOT for publication",
        ),
    ] = False,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="write GeoJSON here (default: standard output)")
    ] = None,
) -> None:
    """Getis-Ord Gi* hotspots of recent cases (public classes: hot, cold, not significant)."""
    if on not in ("cells", "communities"):
        raise _fail(f"--on: {on!r} is not cells or communities")
    at_d = _parse_date(at)
    svc = _service()
    try:
        with _progress() as prog:
            prog.add_task(f"hotspots as of {at_d}", total=None)
            _, frame = svc.hotspots(
                at_d,
                res=res,
                on=on,
                days=days,
                alpha=alpha,
                public=not analyst,
                min_count=_settings().min_public_count,
            )
    except ValueError as e:  # after the progress line: the error is the last line
        raise _fail(_hotspot_option(str(e))) from None
    fc = _frame_geojson(frame)
    text = json.dumps(fc, ensure_ascii=False)
    counts = frame["class"].value_counts().to_dict()
    summary = (
        f"{counts.get('hot', 0)} hot, {counts.get('cold', 0)} cold of {len(frame)} "
        f"{'cells' if on == 'cells' else 'communities'}"
    )
    if analyst:
        err.print("[yellow]analyst view: case counts and statistics, not for publication[/]")
    if out_file is None:
        sys.stdout.write(text + "\n")
        err.print(summary)
    else:
        out_file.parent.mkdir(parents=True, exist_ok=True)
        out_file.write_text(text, encoding="utf-8")
        err.print(f"{summary} written to {out_file}")


def _hotspot_option(msg: str) -> str:
    """geo.hotspots' keyword names as command-line options."""
    msg = msg.replace("(analysts: public=False)", "(--analyst: not for publication)")
    for name in ("res", "days", "alpha", "on"):
        if msg.startswith(f"{name}:"):
            return "--" + msg
    return msg


def _frame_geojson(frame: Any) -> dict[str, Any]:
    """A GeoDataFrame (lon/lat, an ``id`` column) as an RFC 7946 feature collection."""
    fc = json.loads(frame.to_json(drop_id=True, na="null"))
    for f in fc["features"]:
        f["id"] = str(f["properties"]["id"])
    fc.pop("bbox", None)
    return fc


def _scan_bar() -> Progress:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err.get(),
        transient=False,
    )


def _scan_options(
    max_share: float, max_radius_km: float | None, min_days: int, max_days: int
) -> None:
    """Options the scan cannot take, named as on the command line (exit 1)."""
    if not 0 < max_share <= 100:
        raise _fail(f"--max-share: {max_share:g} is not a percentage in 0 < PCT <= 100")
    if max_radius_km is not None and not max_radius_km >= 0:
        raise _fail(f"--max-radius-km: {max_radius_km:g} is not a distance >= 0")
    if min_days > max_days:
        raise _fail(f"--min-days {min_days} is more than --max-days {max_days}")


#: the study period of a scan on the store (../shared/docs/policies.md: 365 days)
STUDY_DAYS = 365


@app.command()
def scan(
    cases_file: Annotated[
        Path | None,
        typer.Option(
            "--cases",
            help="case file: SaTScan's '<location> <count> <date>' or CSV location,date[,count]",
        ),
    ] = None,
    geo_file: Annotated[
        Path | None,
        typer.Option(
            "--geo",
            help="coordinates file: SaTScan's '<location> <lat> <lon>' or CSV location,lat,lon",
        ),
    ] = None,
    at: Annotated[
        str | None,
        typer.Option(help="scan the store's communities, analysis date YYYY-MM-DD"),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(
            help="first day of the study period (files: the first date with a case; store: "
            f"{STUDY_DAYS} days up to --at)"
        ),
    ] = None,
    end: Annotated[
        str | None, typer.Option(help="analysis date, last day of the study period (files)")
    ] = None,
    prospective: Annotated[
        bool,
        typer.Option(
            "--prospective/--retrospective",
            help="windows ending on the analysis date (default), or anywhere in the period",
        ),
    ] = True,
    max_radius_km: Annotated[
        float | None, typer.Option("--max-radius-km", help="largest circle radius, km")
    ] = None,
    max_share: Annotated[
        float, typer.Option("--max-share", help="largest share of all cases in a circle, %")
    ] = 50.0,
    min_days: Annotated[int, typer.Option("--min-days", min=1, help="shortest window")] = 2,
    max_days: Annotated[int, typer.Option("--max-days", min=1, help="longest window")] = 30,
    replications: Annotated[
        int, typer.Option(min=0, help="Monte Carlo replications (0: no p-values)")
    ] = 999,
    seed: Annotated[
        int | None, typer.Option(min=0, help="random seed (same seed, same p-values)")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help='print {"clusters": [...]}, most likely first')
    ] = False,
) -> None:
    """Space-time permutation scan (Kulldorff 2005, as SaTScan): on files (--cases, --geo,
    --end) or on the store's communities (--at)."""
    from riskmap.geo.scan import DEFAULT_SIGNAL_DAYS, community_counts, space_time_scan
    from riskmap.geo.scan_io import read_scan_cases, read_scan_coords

    files = cases_file is not None or geo_file is not None
    if files and at is not None:
        raise _fail("--at scans the store; with --cases and --geo give the analysis date as --end")
    if not files and at is None:
        raise _fail(
            "nothing to scan: give --cases FILE --geo FILE --end DATE (files) or --at DATE "
            "(the store's communities)"
        )
    if files and (cases_file is None or geo_file is None):
        raise _fail("--cases and --geo go together (a case file and a coordinates file)")
    if files and end is None:
        raise _fail("--end: the analysis date is required with --cases (YYYY-MM-DD)")
    if not files and end is not None:
        raise _fail("--end is for files; on the store the analysis date is --at")
    _scan_options(max_share, max_radius_km, min_days, max_days)
    end_d = _parse_date(end if files else at, "--end" if files else "--at")
    start_d = None if start is None else _parse_date(start, "--start")
    if start_d is not None and start_d > end_d:
        raise _fail(f"--start {start_d} is after {'--end' if files else '--at'} {end_d}")

    names: dict[Any, str] = {}
    if files:
        assert cases_file is not None and geo_file is not None
        counts = read_scan_cases(cases_file)
        coords = read_scan_coords(geo_file)
    else:
        svc = _service()
        _, layer, cases = svc.data()
        counts, coords = community_counts(layer, cases)
        frame = layer.frame
        if "name" in frame.columns:
            names = dict(zip(frame["community_id"], frame["name"], strict=True))
        if start_d is None:
            start_d = end_d - dt.timedelta(days=STUDY_DAYS - 1)

    # the bar starts with the first replication: bad input is one line, with no bar before it
    bar = _scan_bar()
    task = bar.add_task("replications", total=replications or None)

    def step(done: int, total: int) -> None:
        bar.start()
        bar.update(task, completed=done, total=total)

    try:
        result = space_time_scan(
            counts,
            coords,
            end=end_d,
            start=start_d,
            prospective=prospective,
            max_radius_km=max_radius_km,
            max_share=max_share / 100.0,
            min_days=min_days,
            max_days=max_days,
            replications=replications,
            seed=seed,
            progress=step,
        )
    finally:
        bar.stop()  # a bar never started is not drawn
    if as_json:
        sys.stdout.write(json.dumps(result.to_json(), ensure_ascii=False) + "\n")
        return
    _scan_table(result, names, DEFAULT_SIGNAL_DAYS)


def _scan_table(result: Any, names: dict[Any, str], signal_days: float) -> None:
    """The clusters as a table, then each cluster's locations."""
    from rich.table import Table

    kind = "prospective" if result.prospective else "retrospective"
    out.print(
        f"space-time permutation scan, {kind}, {result.start} .. {result.end}: "
        f"{result.total_cases} cases at {result.locations} locations, "
        f"{result.replications} replications",
        highlight=False,
    )
    from rich import box

    t = Table(box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False)
    # prospective windows all end on the analysis date; retrospective ones have no RI
    cols = ["#", "center", "n", "km", "start", "end", "obs", "exp", "LLR", "p", "RI days"]
    cols.remove("end" if result.prospective else "RI days")
    for col in cols:
        t.add_column(col, no_wrap=col in ("center", "start", "end"))
    for i, c in enumerate(result.clusters, start=1):
        d = c.to_dict()
        signal = c.recurrence_days is not None and c.recurrence_days >= signal_days
        row = [
            f"{i}{'*' if signal else ''}",
            str(d["center"]),
            str(len(c.locations)),
            f"{c.radius_km:.2f}",
            d["start"],
            *([] if result.prospective else [d["end"]]),
            str(c.observed),
            f"{c.expected:.1f}",
            f"{c.llr:.2f}",
            "" if c.p_value is None else f"{c.p_value:.3g}",
        ]
        if result.prospective:
            row.append("" if d["recurrence_days"] is None else f"{d['recurrence_days']:g}")
        t.add_row(*row)
    out.print(t)
    for i, c in enumerate(result.clusters, start=1):
        places = [f"{x} ({names[x]})" if x in names else str(x) for x in c.locations]
        out.print(f"{i}: {', '.join(places)}", highlight=False)
    notes = [f"{len(result.clusters)} cluster(s)"]
    if result.prospective:
        n = len(result.signals(signal_days))
        notes.append(f"{n} signal(s) (*: recurrence interval, RI, >= {signal_days:g} days)")
    if result.cases_outside:
        notes.append(f"{result.cases_outside} case(s) dated outside the study period left out")
    out.print(", ".join(notes), highlight=False)


@app.command()
def report(
    out_file: Annotated[
        Path, typer.Option("--out", help="the HTML file to write, e.g. report.html")
    ],
    at: Annotated[str | None, typer.Option(help="report date YYYY-MM-DD (default today)")] = None,
    policy: PolicyOpt = None,
) -> None:
    """The daily situation report as one HTML file that opens offline: zones by level with
    the residents affected, changes since the day before, scan alerts and hotspots,
    incidence and growth by district, trend plots and a map (exact figures: for analysts)."""
    from riskmap.api.report import situation_report

    at_d = _parse_date(at)
    pol = _policy(policy)
    if out_file.is_dir():
        raise _fail(f"--out: {out_file} is a folder; give the file to write, e.g. report.html")
    svc = _service()
    lo, hi = svc.date_bounds(pol)
    if not lo <= at_d <= hi:
        raise _fail(
            f"--at: {at_d} must lie from {lo} to {hi} (the first report date to the last "
            f"plus the longest lift of {pol.id}, or today)"
        )
    s = _settings()
    with _progress() as prog:
        prog.add_task(f"situation report under {pol.id} as of {at_d}", total=None)
        _, page = situation_report(
            svc, pol, at_d, replications=s.scan_replications, min_count=s.min_public_count
        )
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(page.html, encoding="utf-8")
    err.print(f"report of {at_d} under {pol.id} written to {out_file}", highlight=False)


@export_app.command("tiles")
def export_tiles(
    out_file: Annotated[
        Path, typer.Option("--out", help="the PMTiles archive to write, e.g. zones.pmtiles")
    ],
    at: Annotated[str | None, typer.Option(help="as-of date YYYY-MM-DD (default today)")] = None,
    policy: PolicyOpt = None,
    min_zoom: Annotated[int, typer.Option("--min-zoom", min=0, max=22, help="first zoom")] = 8,
    max_zoom: Annotated[int, typer.Option("--max-zoom", min=0, max=22, help="last zoom")] = 14,
    exact: Annotated[
        bool,
        typer.Option(
            "--exact",
            help="the exact zones, as API keys see them (default: the public view, as "
            "anonymous callers see it)",
        ),
    ] = False,
) -> None:
    """Write the vector tiles of the zones, communities and districts (as GET
    /collections/{layer}/tiles serves them) into one PMTiles archive."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from riskmap.tiles.export import export_pmtiles

    if min_zoom > max_zoom:
        raise _fail(f"--min-zoom {min_zoom} is above --max-zoom {max_zoom}")
    at_d = _parse_date(at)
    pol = _policy(policy)
    svc = _service()
    view = "exact" if exact else "public"
    with _progress() as prog:
        prog.add_task(f"computing zones under {pol.id} as of {at_d}", total=None)
        if exact:
            snap = svc.snapshot(pol, at_d)
        else:
            snap = svc.public_snapshot(pol, at_d, _settings().min_public_count)
        layers = [svc.map_layer(n, snap).tiles for n in ("zones", "communities")]
        layers.append(svc.map_layer("districts").tiles)
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err.get(),
    )
    with bar:
        task = bar.add_task(f"tiles z{min_zoom}-z{max_zoom}", total=None)
        try:
            summary = export_pmtiles(
                out_file,
                layers,
                minzoom=min_zoom,
                maxzoom=max_zoom,
                name=f"riskmap: {pol.name}",
                description=f"zones under {pol.id} as of {at_d} ({view} view)",
                metadata={"policy": pol.id, "at": at_d.isoformat(), "view": view},
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        except (ValueError, OSError) as e:
            raise _fail(str(e)) from None
    err.print(
        f"{summary.tiles} tiles ({summary.bytes / 2**20:.1f} MB, {view} view of {pol.id} as "
        f"of {at_d}) written to {out_file}; {summary.empty} empty tiles left out",
        highlight=False,
    )


@export_app.command("map")
def export_map(
    out_file: Annotated[Path, typer.Option("--out", help="the HTML file to write, e.g. map.html")],
    policy: PolicyOpt = None,
    start: Annotated[
        str | None,
        typer.Option("--from", help="first day YYYY-MM-DD (default: 29 days before --to)"),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option("--to", help="last day YYYY-MM-DD (default: the last report date)"),
    ] = None,
    exact: Annotated[
        bool,
        typer.Option(
            "--exact",
            help="the exact zones, as API keys see them (default: the public view, as "
            "anonymous callers see it)",
        ),
    ] = False,
) -> None:
    """Write the planner map of a period as one HTML file (deck.gl, the communities, districts
    and each day's zones and levels inside it) that works opened from a disk, with no
    network: legend, date slider and replay, tooltips."""
    import datetime as dt

    from riskmap.geo.precision import public_result
    from riskmap.tiles.collections import districts_frame
    from riskmap.tiles.deck import fit_view, rule_info, standalone_page
    from riskmap.tiles.planner_data import (
        MAX_EXPORT_DAYS,
        MAX_EXPORT_MB,
        population_by_level,
        standalone_map,
    )

    pol = _policy(policy)
    svc = _service()
    _, span = svc.report_span()
    to_d = _parse_date(end, "--to") if end else (span[1] if span else _today())
    from_d = _parse_date(start, "--from") if start else to_d - dt.timedelta(days=29)
    if from_d > to_d:
        raise _fail(f"--from {from_d} is after --to {to_d}")
    if (to_d - from_d).days + 1 > MAX_EXPORT_DAYS:
        raise _fail(
            f"--from {from_d} --to {to_d} is {(to_d - from_d).days + 1} days: an exported map "
            f"holds at most {MAX_EXPORT_DAYS}"
        )
    min_count = _settings().min_public_count
    view = "exact" if exact else "public"
    with _progress() as prog:
        prog.add_task(f"computing zones under {pol.id}, {from_d} .. {to_d}", total=None)
        _, layer, cases = svc.data()
        daily = svc.zones_over(pol, from_d, to_d)
        days = {d: r if exact else public_result(r, layer, cases, min_count) for d, r in daily}
        per_community = not exact and bool(pol.fine_levels)
        population = population_by_level(
            daily.result, layer, from_d, to_d, per_community=per_community
        )
        bounds = tuple(float(v) for v in layer.frame.total_bounds) if len(layer) else None
        config = standalone_map(
            layer,
            districts_frame(layer, svc.units()),
            days,
            population,
            rule=rule_info(pol, from_d.isoformat(), to_d.isoformat()),
            view=fit_view(bounds),  # type: ignore[arg-type]
        )
        page = standalone_page(
            config, title=f"riskmap: {pol.name}", subtitle=f"{from_d} .. {to_d} ({view} view)"
        )
    size_mb = len(page.encode()) / 2**20
    if size_mb > MAX_EXPORT_MB:
        raise _fail(
            f"the map would be {size_mb:.0f} MB (at most {MAX_EXPORT_MB:.0f}): export fewer "
            "days (--from, --to)"
        )
    try:
        out_file.write_text(page, encoding="utf-8")
    except OSError as e:
        raise _fail(f"{out_file}: {e.strerror or e}") from None
    err.print(
        f"map of {pol.id}, {from_d} .. {to_d} ({len(days)} days, {view} view, "
        f"{len(layer)} communities): {size_mb:.1f} MB written to {out_file}",
        highlight=False,
    )


# "-33.9" is a number, not an unknown option
@app.command(context_settings={"ignore_unknown_options": True})
def status(
    lat: Annotated[
        float | None, typer.Argument(help="latitude (WGS84)", min=-90, max=90, show_default=False)
    ] = None,
    lon: Annotated[
        float | None,
        typer.Argument(help="longitude (WGS84)", min=-180, max=180, show_default=False),
    ] = None,
    at: Annotated[str | None, typer.Option(help="as-of date YYYY-MM-DD (default today)")] = None,
    policy: PolicyOpt = None,
    points_file: Annotated[
        Path | None,
        typer.Option("--file", help="a CSV of points (lat, lon and optional id columns), any size"),
    ] = None,
    out_file: Annotated[
        Path | None,
        typer.Option("--out", help="with --file: the CSV to write (default: standard output)"),
    ] = None,
) -> None:
    """Print the zone status of a place as JSON, or of every point of a CSV file (--file) as
    CSV, in order, streamed with a progress bar."""
    at_d = _parse_date(at)
    pol = _policy(policy)
    if points_file is not None:
        if lat is not None or lon is not None:
            raise _fail("give either LAT LON or --file, not both")
        _status_file(points_file, out_file, pol, at_d)
        return
    if lat is None or lon is None:
        raise _fail("give LAT LON (e.g. riskmap status 30.59 114.30) or --file points.csv")
    if out_file is not None:
        raise _fail("--out goes with --file")
    stored = _stored_status(lon, lat, pol, at_d if at is not None else None)
    if stored is not None:
        sys.stdout.write(stored.decode() + "\n")
        return
    res = _service().status(lon, lat, pol, at_d)
    sys.stdout.write(json.dumps(res, default=_json_default, ensure_ascii=False) + "\n")


def _stored_status(lon: float, lat: float, pol: Any, at_d: dt.date | None) -> bytes | None:
    """The answer from the status snapshot a server stored for this rule and date (``None``:
    today in RISKMAP_TIMEZONE), when it is of the store's current data version: no zone
    computation, no community layer (None when there is none: the zones are computed)."""
    import hashlib

    from riskmap.api.snapshots import SnapshotFiles, snapshot_dir
    from riskmap.geo.policy import policy_key

    s = _settings()
    root = snapshot_dir(_db(), s.snapshot_dir)
    if root is None or not root.is_dir():
        return None
    day = at_d or _today()
    store = _open_store(must_exist=True, check=False)  # two rows of metadata read
    try:
        version = store.data_version
        store_id = hashlib.sha256(store.meta_secret("snapshot_store_id").encode()).hexdigest()
        files = SnapshotFiles(root, store_id[:16])
        key = policy_key(pol)
        if files.stored_version(key, day) != version:
            return None
        served = files.load(pol, key, day, s.min_public_count, version)
    finally:
        store.close()
    if served is None or served.data_version != version:
        return None
    return served.answer(lon, lat, public=False)


#: rows of a --file read and answered at a time
STATUS_CHUNK = 50_000


def _status_file(src: Path, out: Path | None, pol: Any, at_d: dt.date) -> None:
    """``riskmap status --file``: the points of a CSV in chunks, each answered from the
    snapshot's look-up (array look-ups), written as they come; a row whose coordinates are
    not numbers in range is written with its ``error`` and no answer."""
    import numpy as np
    import pandas as pd
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    if not src.is_file():
        raise _fail(f"{src}: no such file")
    svc = _service()
    with _progress() as prog:
        prog.add_task(f"zones under {pol.id} as of {at_d}", total=None)
        snap, _ = svc.status_snapshot(pol, at_d)
        lookup = snap.lookup
    sink = out.open("w", encoding="utf-8", newline="") if out else sys.stdout
    total = bad = 0
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=err.get(),
        transient=out is None,
    )
    try:
        with src.open("rb") as fh, bar:
            task = bar.add_task(f"status of {src.name}", total=src.stat().st_size)
            try:
                reader = pd.read_csv(fh, dtype=str, keep_default_na=False, chunksize=STATUS_CHUNK)
                for i, chunk in enumerate(reader):
                    chunk.columns = [str(c).strip().lower() for c in chunk.columns]
                    missing = [c for c in ("lat", "lon") if c not in chunk.columns]
                    if missing:
                        raise _fail(f"{src}: missing column(s) {', '.join(missing)}")
                    y = pd.to_numeric(chunk["lat"], errors="coerce").to_numpy(np.float64)
                    x = pd.to_numeric(chunk["lon"], errors="coerce").to_numpy(np.float64)
                    bad_y = ~np.isfinite(y) | (np.abs(y) > 90)
                    bad_x = ~np.isfinite(x) | (np.abs(x) > 180)
                    ok = ~(bad_y | bad_x)
                    table = lookup.table(np.where(ok, x, 0.0), np.where(ok, y, 0.0))
                    table.insert(1, "label", table["level"].map(lookup.label))
                    keep = np.repeat(ok[:, None], table.shape[1], axis=1)
                    table = table.astype(object).where(keep, None)
                    error = np.where(
                        bad_y,
                        "lat: " + chunk["lat"].map(repr) + " is not a number from -90 to 90",
                        np.where(
                            bad_x,
                            "lon: " + chunk["lon"].map(repr) + " is not a number from -180 to 180",
                            "",
                        ),
                    )
                    front = ["id"] if "id" in chunk.columns else []
                    rows = pd.concat(
                        [chunk[front + ["lat", "lon"]].reset_index(drop=True), table], axis=1
                    )
                    rows["error"] = error
                    rows.to_csv(sink, index=False, header=i == 0)
                    total += len(rows)
                    bad += int((~ok).sum())
                    bar.update(task, completed=fh.tell())
            except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as e:
                raise _fail(f"{src}: not a CSV table after {total:,} rows ({e})") from None
    finally:
        if out is not None:
            sink.close()
    where = f" written to {out}" if out else ""
    note = f"; {bad:,} with bad coordinates (see their error column)" if bad else ""
    err.print(f"{total:,} points under {pol.id} as of {at_d}{where}{note}", highlight=False)


@app.command()
def timeline(
    start: Annotated[
        str | None,
        typer.Option("--from", help="first day YYYY-MM-DD (default: 29 days before --to)"),
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="last day YYYY-MM-DD (default today)")
    ] = None,
    policy: PolicyOpt = None,
    kind: Annotated[
        list[str] | None,
        typer.Option(
            help="only events of this kind (repeatable): created, escalated, "
            "stepped_down, extended, lifted"
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
) -> None:
    """Print the zone events (created, escalated, stepped down, extended, lifted) of a period."""
    from rich.table import Table

    from riskmap.geo.history import EVENT_KINDS

    for k in kind or []:
        if k not in EVENT_KINDS:
            raise _fail(f"--kind: {k!r} is not one of {', '.join(EVENT_KINDS)}")
    end_d = _parse_date(end, "--to")
    start_d = _parse_date(start, "--from") if start else end_d - dt.timedelta(days=29)
    if start_d > end_d:
        raise _fail(f"--from {start_d} is after --to {end_d}")
    pol = _policy(policy)
    svc = _service()
    with _progress() as prog:
        prog.add_task(f"zone history under {pol.id}", total=None)
        ev = svc.zone_history(pol, start_d, end_d)
    if kind:
        ev = ev[ev["kind"].isin(kind)]
    if as_json:
        sys.stdout.write(
            json.dumps(ev.to_dict(orient="records"), default=_json_default, ensure_ascii=False)
            + "\n"
        )
        return
    t = Table(title=f"zone events under {pol.id}, {start_d} .. {end_d}")
    for col in ("date", "event", "unit", "from", "to"):
        t.add_column(col)
    for r in ev.itertuples(index=False):
        t.add_row(
            r.date.isoformat(),
            r.kind.replace("_", " "),
            f"{r.unit_type} {r.unit_id}",
            r.level_from,
            r.level_to,
        )
    out.print(t)
    counts = ev["kind"].value_counts().to_dict() if len(ev) else {}
    out.print(", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items()) or "no events")


@app.command()
def policies(
    name: Annotated[
        str | None, typer.Argument(help="a preset or a rule file to show (and validate)")
    ] = None,
) -> None:
    """List the zone rule presets, or show one preset or rule file in full (every effective
    value, defaults included)."""
    from rich.table import Table

    from riskmap.geo.policy import load_policy, preset_names

    if name is None:
        t = Table(title="zone rule presets (data/policies/*.yaml)")
        for col in ("id", "name", "levels (highest first)"):
            t.add_column(col)
        for n in preset_names():
            p = load_policy(n)
            t.add_row(p.id, p.name, ", ".join(lv.id for lv in p.levels))
        out.print(t)
        return
    p = _policy(name)
    out.print(f"[bold]{p.id}[/]: {p.name}", highlight=False)
    out.print(f"source: {p.source}", highlight=False)
    for note in p.notes:
        out.print(f"  - {note}", highlight=False)
    fine = p.fine_levels
    if p.public_precision is not None:
        pp = p.public_precision
        out.print(f"public precision: {pp.geometry}, as published by: {pp.source}", highlight=False)
    if fine:
        out.print(
            "finer than a community: "
            + "; ".join(f"{lv} ({why})" for lv, why in fine.items())
            + ". The public sees such a zone exactly only when each of its units holds at "
            "least RISKMAP_MIN_PUBLIC_COUNT cases, else its communities, without dates.",
            highlight=False,
        )
    out.print(f"colour of places in no zone: {p.none_color}", highlight=False)
    out.print("levels, highest first, with every value in effect (defaults included):")
    for lv in p.levels:
        lift = f"lifts after {lv.lift_after_days} d" if lv.trigger else "follows its sources"
        if lv.step_down:
            lift += f", then {lv.step_down.to} for {lv.step_down.after_days} d"
        out.print(f"[bold]{lv.id}[/] ({lv.label}): {lift}", highlight=False)
        out.print(_effective(lv), highlight=False, markup=False)


def _effective(model: Any) -> str:
    """A rule's part as YAML, every field with its value in effect (defaults included)."""
    import yaml

    text = yaml.safe_dump(
        model.model_dump(mode="json"),
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=None,
        width=1000,
    )
    return "\n".join("    " + line for line in text.rstrip().splitlines())


def _operator() -> str:
    """The audit log's actor for what the command line does: ``cli:<os user>``."""
    import getpass
    import os

    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no user name (a container's bare uid)
        return f"cli:uid{os.getuid()}"


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="officer, analyst or admin")],
    name: Annotated[str, typer.Option(help="who or what uses the key")] = "",
) -> None:
    """Create a key and print it (it is shown only once; only its hash is stored)."""
    from riskmap.api.auth import ROLES

    if role not in ROLES:
        raise _fail(f"--role: {role!r} is not one of {', '.join(ROLES)}")
    key_id, key = _open_store().create_key(role, name, by=_operator())
    err.print(f"key {key_id} ({role}) created; keep it now, it is not shown again:")
    sys.stdout.write(key + "\n")


@keys_app.command("list")
def keys_list() -> None:
    """List keys (ids, roles, names; never the keys themselves)."""
    from rich.table import Table

    t = Table(title="API keys")
    for col in ("key_id", "role", "name", "created", "revoked"):
        t.add_column(col)
    for k in _open_store(must_exist=True).api_keys():
        t.add_row(*(str(k[c] or "") for c in ("key_id", "role", "name", "created", "revoked")))
    out.print(t)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="the key's id")]) -> None:
    """Revoke a key."""
    if not _open_store(must_exist=True).revoke_key(key_id, by=_operator()):
        raise _fail(f"no active key {key_id}")
    out.print(f"key {key_id} revoked")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    workers: Annotated[
        int,
        typer.Option(
            min=1, max=64, help="worker processes (each holds its own caches; 1: one process)"
        ),
    ] = 1,
) -> None:
    """Serve the API and the planner map."""
    import os

    import uvicorn

    if state.db is not None:
        os.environ["RISKMAP_DATABASE_URL"] = str(state.db)
    os.environ["RISKMAP_WORKERS"] = str(workers)
    if workers > 1 and not os.environ.get("RISKMAP_RATE_LIMIT_STORAGE"):
        # the workers count the rate limit in one file (a private directory, removed at exit)
        import atexit
        import shutil
        import tempfile

        private = tempfile.mkdtemp(prefix="riskmap-limits-")
        atexit.register(shutil.rmtree, private, ignore_errors=True)
        os.environ["RISKMAP_RATE_LIMIT_STORAGE"] = f"riskmap+sqlite://{private}/limits.db"
    from riskmap.api.service import shutdown_all
    from riskmap.api.settings import get_settings
    from riskmap.api.store import redact

    get_settings.cache_clear()  # RISKMAP_WORKERS was just set
    out.print(
        f"riskmap serving {redact(_db())} on http://{host}:{port} (API docs at /docs)"
        + (f" with {workers} workers" if workers > 1 else "")
    )
    if workers > 1:  # uvicorn's supervisor: each worker runs the app and its lifespan
        uvicorn.run(
            "riskmap.api.main:app",
            host=host,
            port=port,
            workers=workers,
            log_level="info",
            timeout_graceful_shutdown=get_settings().shutdown_timeout_s,
            # the supervisor restarts a worker that misses its health ping: a worker busy
            # computing zones (long C calls hold the GIL) on a loaded machine can take more
            # than uvicorn's default 5 s to answer, and a restart loses its snapshots
            timeout_worker_healthcheck=60,
        )
        return

    class Server(uvicorn.Server):
        """On SIGTERM or Ctrl-C, running computations stop at once (their requests answer
        503), so that the server exits within a few seconds."""

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            super().handle_exit(sig, frame)
            shutdown_all()

    config = uvicorn.Config(
        "riskmap.api.main:app",
        host=host,
        port=port,
        log_level="info",
        timeout_graceful_shutdown=get_settings().shutdown_timeout_s,
    )
    Server(config).run()


def main() -> None:
    try:
        app()
    except RiskmapError as e:  # anything not handled closer to its command
        err.print(f"[bold red]error:[/] {e}", highlight=False)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
