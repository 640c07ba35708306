"""Status over HTTP (issue 10): riskmap's ``GET /v1/status`` side by side with a minimal FastAPI +
psycopg pool + PostGIS endpoint doing the same look-up (``bench/reference_api.py``), each served
by uvicorn with the same number of worker processes, on 127.0.0.1.

    python -m bench.http                         # the sample city (2,000 communities), 2 workers
    python -m bench.http --scale                 # the scale city (100,000 communities, 1 M cases)
    python -m bench.http --workers 4 --duration 30
    python -m bench.http --communities 20000     # a city of that size
    python -m bench.http --write-readme          # and put the table into bench/README.md

Measured, in one run, riskmap and the reference one after the other on the same machine:

- agreement: the level both answer at random points (the reference holds riskmap's public
  zones and communities of the same rule and date, read from riskmap's ``/v1/zones`` and
  ``/v1/communities``);
- closed loop: ``wrk -t2 -c32`` for ``--duration`` seconds, random points in the city's
  bounding box (a Lua script): requests/s, p50, p99;
- open loop: ``--rate`` requests/s offered (default 1,000; ``bench/openloop.py``: requests
  leave at fixed times, latency from the scheduled time): achieved rate, p50, p99;
- memory: RSS of each worker process after the load (psutil);
- batch: ``POST /v1/status/batch`` with 100,000 points (JSON), end to end: points/s;
- freshness (riskmap only): 1,000 new cases posted to ``POST /v1/cases`` while open-loop
  readers run: seconds until a read answers the new ``X-Data-Version``, until every read
  does, and the readers' p99 meanwhile;
- start-up: the server killed (SIGKILL) and started again: seconds until the first ``200``
  status answer.

Results go to ``var/bench/http.json``; the table is printed as markdown. Nothing here is a test.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench import openloop
from bench.serving import (
    REPO,
    VAR,
    City,
    Proc,
    build_city,
    city_spec,
    pg_dsn,
    reference_server,
    riskmap_cli,
    riskmap_server,
    run_wrk,
    say,
    status_lua,
    work_store,
)

README = REPO / "bench" / "README.md"
START_TIMEOUT = 900.0  # the scale city's first computation on a slow machine


def random_points(bbox: tuple[float, float, float, float], n: int, seed: int) -> np.ndarray:
    w, s, e, n_ = bbox
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.uniform(w, e, n), rng.uniform(s, n_, n)])


def status_target(path: str, pts: np.ndarray):  # type: ignore[no-untyped-def]
    def target(i: int) -> str:
        lon, lat = pts[i % len(pts)]
        return f"{path}?lat={lat:.6f}&lon={lon:.6f}"

    return target


# -- phases --------------------------------------------------------------------------------


def agreement(rm: Proc, ref: Proc, bbox: tuple[float, float, float, float], n: int) -> dict:
    pts = random_points(bbox, n, seed=7)
    same = 0
    diffs: list[dict[str, Any]] = []
    with httpx.Client(timeout=60) as c:
        for lon, lat in pts:
            q = {"lat": f"{lat:.6f}", "lon": f"{lon:.6f}"}
            a = c.get(f"{rm.url}/v1/status", params=q).json()
            b = c.get(f"{ref.url}/status", params=q).json()
            if a["level"] == b["level"]:
                same += 1
            elif len(diffs) < 5:
                diffs.append({"lon": lon, "lat": lat, "riskmap": a["level"], "ref": b["level"]})
    return {"points": n, "same_level": same, "share": same / n, "differences": diffs}


def open_loop(url: str, path: str, bbox: tuple, rate: float, duration: float) -> dict[str, Any]:
    pts = random_points(bbox, 100_000, seed=11)
    res = openloop.run(url, status_target(path, pts), rate, duration)
    return res.summary()


def batch(url: str, path: str, bbox: tuple, points: int, runs: int) -> dict[str, Any]:
    pts = random_points(bbox, points, seed=13)
    body = json.dumps(
        {"points": [{"lat": round(float(y), 6), "lon": round(float(x), 6)} for x, y in pts]}
    ).encode()
    secs: list[float] = []
    with httpx.Client(timeout=600) as c:
        for _ in range(runs):
            t = time.perf_counter()
            r = c.post(url + path, content=body, headers={"Content-Type": "application/json"})
            got = r.json() if r.status_code == 200 else None
            secs.append(time.perf_counter() - t)
            if got is None:
                return {"error": f"{r.status_code}: {r.text[:200]}"}
            if len(got["results"]) != points:
                return {"error": f"{len(got['results'])} results for {points} points"}
    med = statistics.median(secs)
    return {
        "points": points,
        "runs": runs,
        "seconds": [round(s, 3) for s in secs],
        "points_per_s": round(points / med),
        "body_mb": round(len(body) / 2**20, 2),
    }


def new_cases(city: City, n: int, run_id: str) -> bytes:
    """``n`` confirmed cases reported today at random places inside communities (CSV)."""
    import geopandas as gpd
    import shapely

    geoms = gpd.read_parquet(city.folder / "communities.parquet").geometry.to_numpy()
    tree = shapely.STRtree(geoms)
    got: list[tuple[float, float]] = []
    seed = 17
    while len(got) < n:
        pts = random_points(city.bbox, 4 * n, seed)
        seed += 1
        inside, _ = tree.query(shapely.points(pts), predicate="within")
        got += [tuple(pts[i]) for i in np.unique(inside)]
    today = dt.date.today().isoformat()
    out = io.StringIO()
    out.write("case_id,reported,type,role,lat,lon\n")
    for i, (lon, lat) in enumerate(got[:n]):
        out.write(f"bench-{run_id}-{i:05d},{today},confirmed,residence,{lat:.6f},{lon:.6f}\n")
    return out.getvalue().encode()


def freshness(
    rm: Proc,
    city: City,
    key: str,
    rate: float,
    cases: int,
    lead: float = 2.0,
    settle: float = 3.0,
    max_wait: float = 120.0,
) -> dict[str, Any]:
    """Open-loop readers at ``rate``; after ``lead`` s, ``cases`` new cases are posted; the
    readers go on until an answer carries the new data version (a poller on a connection of
    its own watches for it, at most ``max_wait`` s after the POST started) and ``settle`` s
    more, so that workers catching up later show in the readers' answers."""
    with httpx.Client(timeout=60) as c:
        r = c.get(f"{rm.url}/v1/status", params={"lat": city.bbox[1], "lon": city.bbox[0]})
        v0 = int(r.headers["x-data-version"])
    body = new_cases(city, cases, f"{int(time.time())}")
    pts = random_points(city.bbox, 100_000, seed=19)
    box: dict[str, Any] = {}
    done = threading.Event()

    def readers() -> None:
        box["res"] = openloop.run(
            rm.url,
            status_target("/v1/status", pts),
            rate,
            lead + max_wait + settle,
            header="x-data-version",
            stop=done.is_set,
        )

    th = threading.Thread(target=readers)
    th.start()
    try:
        time.sleep(lead)
        t0 = time.perf_counter()
        with httpx.Client(timeout=600) as c:
            r = c.post(
                f"{rm.url}/v1/cases",
                content=body,
                headers={"Content-Type": "text/csv", "Authorization": f"Bearer {key}"},
            )
            t1 = time.perf_counter()
            seen = None
            q = {"lat": f"{city.bbox[1]:.6f}", "lon": f"{city.bbox[0]:.6f}"}
            while r.status_code == 200 and time.perf_counter() - t0 < max_wait:
                try:
                    got = c.get(f"{rm.url}/v1/status", params=q, timeout=10)
                    if int(got.headers.get("x-data-version") or -1) > v0:
                        seen = time.perf_counter() - t0
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.02)
        time.sleep(settle)
    finally:
        done.set()
        th.join()
    if r.status_code != 200:
        return {"error": f"POST /v1/cases answered {r.status_code}: {r.text[:300]}"}
    out: dict[str, Any] = {
        "cases": cases,
        "post_s": round(t1 - t0, 3),
        "poller_new_s": None if seen is None else round(seen, 3),
    }
    return out | fresh_figures(box["res"], v0, t0, settle, max_wait)


def fresh_figures(
    res: openloop.OpenLoopResult, v0: int, t0: float, settle: float, max_wait: float
) -> dict[str, Any]:
    """The freshness figures of readers' answers (``res``, header ``X-Data-Version``) around a
    write started at ``t0`` (``perf_counter`` seconds) when the data version was ``v0``."""
    ok = np.isfinite(res.latency) & (res.status == 200)
    answered = res.scheduled + res.latency
    ver = np.array([int(v) if v else -1 for v in res.header])
    new = ok & (ver > v0)
    old = ok & (ver == v0) & (answered > t0)
    out: dict[str, Any] = {
        "readers_per_s": res.rate,
        "readers_sent": res.sent,
        "readers_failed": res.failed,
        "version_before": v0,
    }
    if not new.any():
        out["first_new_s"] = out["all_new_s"] = None
        out["note"] = f"no reader saw a new data version within {max_wait:.0f} s"
        window = res.scheduled >= t0
    else:
        first_new = float(answered[new].min()) - t0
        last_answer = float(answered[ok].max())
        late_old = old & (answered > last_answer - 0.5)
        out["first_new_s"] = round(first_new, 3)
        out["version_after"] = int(ver[new].max())
        if late_old.any():  # some worker still answered the old version at the end
            out["all_new_s"] = None
            out["note"] = f"a worker still answered the old version {settle:g} s after"
            all_new = float(answered[old].max()) - t0
        else:
            # every answer new from then on: after the last old one, and not before the first
            # new one (reads may have gone unanswered in between)
            all_new = max(float(answered[old].max()) - t0, 0.0) if old.any() else 0.0
            all_new = max(all_new, first_new)
            out["all_new_s"] = round(all_new, 3)
        end = t0 + max(all_new, first_new, 1.0)
        window = (res.scheduled >= t0) & (res.scheduled <= end)
    out["readers_p99_ms"] = round(res.percentile_ms(99, window), 2)
    out["readers_p99_whole_run_ms"] = round(res.percentile_ms(99), 2)
    out["window_requests"] = int(window.sum())
    return out


#: how long the load phases wait for the server's background work to end
IDLE_TIMEOUT = 900.0


def warm_up(proc: Proc, path: str, bbox: tuple, workers: int, timeout: float) -> float:
    """Seconds until every worker answers: bursts of ``8 x workers`` concurrent requests, each
    on a connection of its own (the kernel hands new connections to the workers), until three
    bursts in a row answer only 200 within 5 s (a worker still computing its first zones
    holds its requests far longer)."""
    from concurrent.futures import ThreadPoolExecutor

    pts = random_points(bbox, 1000, seed=23)
    n = 8 * workers
    t0 = time.perf_counter()
    good = 0

    def one(i: int) -> int:
        lon, lat = pts[i % len(pts)]
        try:
            q = {"lat": f"{lat:.6f}", "lon": f"{lon:.6f}"}
            return httpx.get(proc.url + path, params=q, timeout=timeout).status_code
        except httpx.HTTPError:
            return 0

    with ThreadPoolExecutor(n) as ex:
        k = 0
        while good < 3:
            if time.perf_counter() - t0 > timeout:
                raise RuntimeError(f"{proc.name}: workers not answering after {timeout:.0f} s")
            t = time.perf_counter()
            codes = list(ex.map(one, range(k, k + n)))
            k += n
            good = good + 1 if all(c == 200 for c in codes) and time.perf_counter() - t < 5 else 0
    return time.perf_counter() - t0


def restart(proc: Proc, path: str, timeout: float) -> dict[str, Any]:
    proc.kill()
    proc.start()
    health = None
    try:
        health = proc.wait_for("/healthz", timeout)
        first = proc.wait_for(path, timeout)
    except RuntimeError as e:
        return {"error": str(e)[:300]}
    return {"first_200_s": round(first, 3), "healthz_s": round(health, 3)}


# -- the run -------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    spec = city_spec(args.scale, args.communities, args.cases)
    city = build_city(spec)
    run_dir = VAR / "http" / spec.name
    db = work_store(city, run_dir)
    key = riskmap_cli(db, "keys", "create", "--role", "officer", "--name", "bench", capture=True)
    key = key.strip().splitlines()[-1]
    dsn = pg_dsn()
    out: dict[str, Any] = {
        "city": spec.name,
        "communities": spec.communities,
        "cases": spec.cases,
        "workers": args.workers,
        "duration_s": args.duration,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    try:
        import os

        out["load_average"] = [round(v, 1) for v in os.getloadavg()]
    except OSError:
        pass
    sample_q = f"/v1/status?lat={city.bbox[1]:.6f}&lon={city.bbox[0]:.6f}"
    rm = riskmap_server(db, args.workers, run_dir / "riskmap.log")
    ref = reference_server(dsn, args.workers, run_dir / "reference.log", args.pool)
    try:
        say(f"starting riskmap serve --workers {args.workers} on {spec.name}")
        rm.start()
        rm.wait_for("/healthz", START_TIMEOUT)
        out["riskmap_first_start_s"] = round(rm.wait_for(sample_q, START_TIMEOUT), 3)
        say("loading the reference's tables from riskmap's zones and communities")
        import psycopg

        t = time.perf_counter()
        with psycopg.connect(dsn, autocommit=True) as conn:
            from bench.reference_api import load_from_riskmap

            meta = load_from_riskmap(conn, rm.url)
            out["reference_zones"] = conn.execute("SELECT count(*) FROM ref_zones").fetchone()[0]
        out["reference_load_s"] = round(time.perf_counter() - t, 1)
        out["policy"], out["at"] = meta["policy"], meta["at"]
        ref.start()
        ref.wait_for("/healthz", 120)
        say("warm-up: until every worker answers")
        out["riskmap_warm_up_s"] = round(
            warm_up(rm, "/v1/status", city.bbox, args.workers, START_TIMEOUT), 1
        )
        out["reference_warm_up_s"] = round(warm_up(ref, "/status", city.bbox, args.workers, 120), 1)
        say("until riskmap is idle (its start-up's background work done)")
        out["riskmap_idle_after_s"] = round(rm.wait_idle(IDLE_TIMEOUT), 1)
        say("agreement")
        out["agreement"] = agreement(rm, ref, city.bbox, args.agreement_points)
        pairs = (("riskmap", rm, "/v1/status"), ("reference", ref, "/status"))
        for name, proc, path in pairs:
            say(f"{name}: wrk (closed loop), {args.duration:g} s")
            run_wrk(proc.url, status_lua(path, city.bbox), min(2.0, args.duration))  # warm-up
            out[f"{name}_wrk"] = run_wrk(
                proc.url, status_lua(path, city.bbox), args.duration, args.threads, args.connections
            )
            say(f"{name}: {out[f'{name}_wrk']}")
            time.sleep(args.pause)
        for name, proc, path in pairs:
            say(f"{name}: open loop at {args.rate:g}/s, {args.duration:g} s")
            out[f"{name}_open"] = open_loop(proc.url, path, city.bbox, args.rate, args.duration)
            say(f"{name}: {out[f'{name}_open']}")
            out[f"{name}_memory"] = proc.memory()
            time.sleep(args.pause)  # an overloaded server finishes what it had queued
        for name, proc, path in (
            ("riskmap", rm, "/v1/status/batch"),
            ("reference", ref, "/status/batch"),
        ):
            say(f"{name}: batch of {args.batch_points:,} points x {args.batch_runs}")
            out[f"{name}_batch"] = batch(
                proc.url, path, city.bbox, args.batch_points, args.batch_runs
            )
            say(f"{name}: {out[f'{name}_batch']}")
        fresh_rate = args.fresh_rate or args.rate
        say(f"freshness: {args.new_cases} new cases under {fresh_rate:g} reads/s")
        out["freshness"] = freshness(
            rm, city, key, fresh_rate, args.new_cases, settle=args.settle, max_wait=args.max_wait
        )
        say(f"freshness: {out['freshness']}")
        say("start-up: kill and restart")
        out["riskmap_restart"] = restart(rm, sample_q, START_TIMEOUT)
        out["reference_restart"] = restart(
            ref, f"/status?lat={city.bbox[1]:.6f}&lon={city.bbox[0]:.6f}", 120
        )
        say(f"restart: riskmap {out['riskmap_restart']}, reference {out['reference_restart']}")
    finally:
        rm.stop()
        ref.stop()
    return out


# -- the table -----------------------------------------------------------------------------


def _f(v: Any, fmt: str = "{:,.0f}") -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and np.isnan(v):
        return "-"
    if isinstance(v, float) and np.isinf(v):
        return "over 1% unanswered"
    return fmt.format(v)


def table(r: dict[str, Any]) -> str:
    """The results as one markdown table (riskmap | reference | target)."""
    rw, fw = r.get("riskmap_wrk", {}), r.get("reference_wrk", {})
    ro, fo = r.get("riskmap_open", {}), r.get("reference_open", {})
    rb, fb = r.get("riskmap_batch", {}), r.get("reference_batch", {})
    rmem, fmem = r.get("riskmap_memory", {}), r.get("reference_memory", {})
    fr = r.get("freshness", {})
    rr, fr2 = r.get("riskmap_restart", {}), r.get("reference_restart", {})
    ratio = rw.get("rps", 0) / fw["rps"] if fw.get("rps") else float("nan")
    ag = r.get("agreement", {})

    def met(ok: bool | None) -> str:
        return "" if ok is None else (" (met)" if ok else " (not met)")

    def lag(o: dict[str, Any]) -> str:
        v = o.get("client_lag_p99_ms")
        return f" (client lag p99 {v:.1f} ms)" if isinstance(v, float) and np.isfinite(v) else ""

    def errs(w: dict[str, Any]) -> str:
        bad = w.get("non_2xx", 0) + w.get("socket_errors", 0)
        return f", {bad:,} errors" if bad else ""

    rows = [
        ("| | riskmap | reference | target |", None),
        ("|---|---|---|---|", None),
        (
            f"| closed loop (`{rw.get('command', 'wrk')}`), requests/s | "
            f"{_f(rw.get('rps'))}{errs(rw)} | {_f(fw.get('rps'))}{errs(fw)} | "
            f">= 3x the reference: {_f(ratio, '{:.2f}')}x{met(ratio >= 3 if fw else None)} |",
            None,
        ),
        (
            f"| closed loop p50 / p99 (ms) | {_f(rw.get('p50_ms'), '{:.1f}')} / "
            f"{_f(rw.get('p99_ms'), '{:.1f}')} | {_f(fw.get('p50_ms'), '{:.1f}')} / "
            f"{_f(fw.get('p99_ms'), '{:.1f}')} | |",
            None,
        ),
        (
            f"| open loop, {_f(ro.get('offered_per_s'))} requests/s offered: achieved, "
            f"p50 / p99 (ms) | {_f(ro.get('achieved_per_s'))}, {_f(ro.get('p50_ms'), '{:.1f}')} / "
            f"{_f(ro.get('p99_ms'), '{:.1f}')}"
            f"{', ' + str(ro['failed']) + ' failed' if ro.get('failed') else ''}"
            f"{lag(ro)} | "
            f"{_f(fo.get('achieved_per_s'))}, {_f(fo.get('p50_ms'), '{:.1f}')} / "
            f"{_f(fo.get('p99_ms'), '{:.1f}')}"
            f"{', ' + str(fo['failed']) + ' failed' if fo.get('failed') else ''}"
            f"{lag(fo)} | "
            f"p99 < 20 ms{met(ro.get('p99_ms', 1e9) < 20 if ro else None)} |",
            None,
        ),
        (
            f"| freshness: {fr.get('cases', '-')} new cases posted (POST took "
            f"{_f(fr.get('post_s'), '{:.2f}')} s): first / every read new after (s) | "
            f"{_f(fr.get('first_new_s'), '{:.2f}')} / {_f(fr.get('all_new_s'), '{:.2f}')}"
            f"{' ' + fr['note'] if fr.get('note') else ''}"
            f"{' ' + fr['error'] if fr.get('error') else ''}"
            f" | n/a | <= 2 s"
            f"{met(fr['all_new_s'] <= 2 if fr.get('all_new_s') is not None else None)} |",
            None,
        ),
        (
            f"| freshness: readers' p99 meanwhile, {_f(fr.get('readers_per_s'))} reads/s (ms) | "
            f"{_f(fr.get('readers_p99_ms'), '{:.1f}')} | n/a | < 20 ms"
            f"{met(fr['readers_p99_ms'] < 20 if fr.get('readers_p99_ms') is not None else None)} |",
            None,
        ),
        (
            f"| start-up: killed and restarted, first 200 status (s) | "
            f"{_f(rr.get('first_200_s'), '{:.2f}')} | {_f(fr2.get('first_200_s'), '{:.2f}')} | "
            f"<= 30 s{met(rr['first_200_s'] <= 30 if 'first_200_s' in rr else None)} |",
            None,
        ),
        (
            f"| memory: RSS per worker after the load, max (MB) | {_f(rmem.get('max_rss_mb'))} "
            f"({rmem.get('workers', '-')} workers, USS {rmem.get('uss_mb', '-')}) | "
            f"{_f(fmem.get('max_rss_mb'))} | <= 1,536 MB"
            f"{met(rmem['max_rss_mb'] <= 1536 if rmem else None)} |",
            None,
        ),
        (
            f"| `POST /v1/status/batch`, {_f(rb.get('points') or fb.get('points'))} points "
            f"(JSON): points/s end to end | {_f(rb.get('points_per_s'))}"
            f"{' ' + rb['error'] if rb.get('error') else ''} | {_f(fb.get('points_per_s'))}"
            f"{' ' + fb['error'] if fb.get('error') else ''} | (figure) |",
            None,
        ),
        (
            f"| agreement: same level at {_f(ag.get('points'))} random points | "
            f"{_f(ag.get('share', float('nan')) * 100, '{:.1f}')}% | | 100% |",
            None,
        ),
    ]
    head = (
        f"`python -m bench.http` on the {r['city']} city ({r['communities']:,} communities, "
        f"{r['cases']:,} cases), {r['workers']} worker(s) each, {r['duration_s']:g} s per "
        f"load phase, rule `{r.get('policy', '?')}` at {r.get('at', '?')}, {r['date']}, "
        f"load average before the run {r.get('load_average', '?')}; first start of riskmap "
        f"to its first status: {_f(r.get('riskmap_first_start_s'), '{:.1f}')} s, until every "
        f"worker answered: {_f(r.get('riskmap_warm_up_s'), '{:.1f}')} s more"
        + (
            f", until it was idle (its start-up's background work done: the other workers' "
            f"zones, the tiles rendered ahead): {_f(r['riskmap_idle_after_s'], '{:.0f}')} s "
            "more; the load phases start then."
            if r.get("riskmap_idle_after_s") is not None
            else "."
        )
    )
    return head + "\n\n" + "\n".join(row for row, _ in rows) + "\n"


def write_readme(text: str, name: str = "bench.http", title: str = "`bench/http.py`") -> None:
    """Put ``text`` between the markers of ``name`` in bench/README.md (replacing what was
    there), or at its end under "Last run of ``title``"."""
    begin, end = f"<!-- {name}: begin -->", f"<!-- {name}: end -->"
    doc = README.read_text()
    block = f"{begin}\n{text}{end}"
    if begin in doc and end in doc:
        pre, rest = doc.split(begin, 1)
        _, post = rest.split(end, 1)
        doc = pre + block + post
    else:
        doc = doc.rstrip("\n") + f"\n\n### Last run of {title}\n\n" + block + "\n"
    README.write_text(doc)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--scale", action="store_true", help="the scale city (100,000 communities)")
    ap.add_argument("--communities", type=int, help="a city of this many communities instead")
    ap.add_argument("--cases", type=int, help="its cases (default 5 per community)")
    ap.add_argument("--workers", type=int, default=2, help="worker processes of each server")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds of each load phase")
    ap.add_argument("--threads", type=int, default=2, help="wrk threads")
    ap.add_argument("--connections", type=int, default=32, help="wrk connections")
    ap.add_argument("--rate", type=float, default=1000.0, help="open-loop requests/s offered")
    ap.add_argument("--fresh-rate", type=float, help="freshness: reads/s (default --rate)")
    ap.add_argument(
        "--settle", type=float, default=3.0, help="freshness: readers go on this long after"
    )
    ap.add_argument(
        "--max-wait", type=float, default=120.0, help="freshness: longest wait for the new data"
    )
    ap.add_argument("--new-cases", type=int, default=1000, help="cases posted for freshness")
    ap.add_argument("--batch-points", type=int, default=100_000)
    ap.add_argument("--batch-runs", type=int, default=3)
    ap.add_argument("--agreement-points", type=int, default=300)
    ap.add_argument("--pause", type=float, default=3.0, help="seconds between load phases")
    ap.add_argument("--pool", type=int, default=8, help="the reference's connections per worker")
    ap.add_argument("--out", type=Path, default=VAR / "http.json")
    ap.add_argument("--write-readme", action="store_true", help="put the table in bench/README.md")
    ap.add_argument("--postgis", action="store_true", help=argparse.SUPPRESS)  # make bench's
    ap.add_argument("--index-only", action="store_true", help=argparse.SUPPRESS)
    args, _ = ap.parse_known_args()  # make bench passes run.py's options too
    if args.index_only:
        return
    res = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2, default=str))
    text = table(res)
    print(text)
    say(f"results written to {args.out}")
    if args.write_readme:
        write_readme(text)
        say(f"table written to {README}")


if __name__ == "__main__":
    main()
