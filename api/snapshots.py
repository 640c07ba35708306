"""The status snapshots a server serves: computed ahead, swapped atomically, kept on disk.

For every rule the service serves (``RISKMAP_POLICY`` and ``RISKMAP_POLICIES``), one
background thread (:class:`ServedSnapshots`) keeps today's snapshot ("today" in
``RISKMAP_TIMEZONE``, :mod:`api.clock`): the zones, their status look-up and the answer parts
of both views (exact for API keys, public for everyone else; :mod:`api.answers`). It computes
them at start-up and after every data change (an ingest through the API wakes it; a change by
another process, such as the CLI, is seen by polling the store's ``data_version`` once a
second), incrementally where the rule allows (:func:`geo.incremental.update_zones`, through
:meth:`api.service.RiskService.snapshot`), and replaces the served entry in one assignment once
it is complete: a status read never waits for a computation, and while a newer data version is
being computed the previous snapshot answers (its ``data_version``, ``computed_at`` and
``data_through``). In the last hour of the day (``ahead``) tomorrow's snapshot is computed too,
so that at midnight the new day is answered at once; a read finding no snapshot of today yet
is answered from yesterday's (its ``at`` says so), and a server that never had one answers 503.

Each served snapshot is written (:class:`SnapshotFiles`) to a directory derived from the store
(``<file>.snapshots`` beside a SQLite file, ``var/snapshots/<hash of the URL>`` for PostgreSQL,
or ``RISKMAP_SNAPSHOT_DIR``), one sub-directory per rule and date, replaced atomically: a
restarted server reads it back (the indexes memory-mapped) and answers before computing
anything, then catches up in the background. A stored snapshot that is damaged, of another
store, of another definition of the rule or of a newer data version than the store's is
ignored with a log line. Worker processes of one server (``riskmap serve --workers N``) share
the directory: one computes a snapshot (a file lock per rule and date) and the others read it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from riskmap.api.answers import CommunityParts, StatusParts, iso, iso_time
from riskmap.api.clock import Clock
from riskmap.api.store import redact, sqlite_path
from riskmap.geo._cancel import Cancelled
from riskmap.geo._errors import StoreError
from riskmap.geo._files import replaced_directory
from riskmap.geo.policy import Policy

if TYPE_CHECKING:
    from riskmap.api.service import RiskService, Snapshot

log = logging.getLogger("riskmap")

FORMAT_VERSION = 1
ONE_DAY = dt.timedelta(days=1)
#: how often the store's data version is read (a change by another process is seen this late)
POLL_S = 1.0
#: the tiles rendered ahead leave the worker's requests this share of their time (a pause of
#: this many times each tile's rendering time): background work, never ahead of reads
PRERENDER_PAUSE = 1.0
#: tomorrow's snapshot is computed this long before midnight
AHEAD = dt.timedelta(hours=1)

__all__ = ["Served", "ServedSnapshots", "SnapshotFiles", "build_served", "snapshot_dir"]


@dataclass(frozen=True, eq=False)
class Served:
    """One served snapshot: a rule at a date for a data version, both views ready to answer.
    Immutable: replaced whole when a newer one is complete."""

    policy: Policy
    key: str  # api.service.policy_key(policy)
    at: dt.date
    data_version: int
    computed_at: dt.datetime
    data_through: dt.date | None
    min_count: int  # of the public view (RISKMAP_MIN_PUBLIC_COUNT)
    exact: StatusParts
    public: StatusParts
    # the exact snapshot, when computed in this process (not when read from disk): advanced
    # incrementally after the next batch of new cases
    snapshot: Snapshot | None = field(default=None, repr=False)
    # the answer fields after the place's (pre-formatted)
    head: dict[str, Any] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "head",
            {
                "policy": self.policy.id,
                "at": self.at.isoformat(),
                "data_version": self.data_version,
                "computed_at": iso_time(self.computed_at),
                "data_through": iso(self.data_through),
            },
        )

    def parts(self, public: bool) -> StatusParts:
        return self.public if public else self.exact

    @property
    def fresh(self) -> dict[str, Any]:
        """``data_version``, ``computed_at``, ``data_through`` (as values)."""
        return {
            "data_version": self.data_version,
            "computed_at": self.computed_at,
            "data_through": self.data_through,
        }

    def answer(self, lon: float, lat: float, public: bool) -> bytes:
        """The JSON of ``GET /v1/status`` for one place."""
        return orjson.dumps(self.parts(public).one(lon, lat) | self.head)


def build_served(service: RiskService, policy: Policy, at: dt.date, min_count: int) -> Served:
    """Compute (or take from the service's cache) the snapshot of ``policy`` at ``at`` and
    prepare both views' answer parts."""
    from riskmap.api.service import policy_key

    for _ in range(5):  # the exact snapshot and the cases of one data version
        snap = service.snapshot(policy, at)
        data = service.current_data()
        if data.version == snap.data_version:
            break
    else:
        raise StoreError("the data is changing; try again")

    def build() -> Served:
        # the public view and both views' indexes: one bounded computation (admitted under
        # the memory guard, stopped at a checkpoint past RISKMAP_MAX_MEMORY_MB) like any other
        public = snap.public(data.cases, min_count)
        exact_parts = service.status_parts(snap).build()
        public_parts = exact_parts if public is snap else service.status_parts(public).build()
        return Served(
            policy=policy,
            key=policy_key(policy),
            at=at,
            data_version=snap.data_version,
            computed_at=snap.computed_at,
            data_through=service.last_report(data),
            min_count=min_count,
            exact=exact_parts,
            public=public_parts,
            snapshot=snap,
        )

    key = ("served", policy_key(policy), at, snap.data_version, min_count)
    served: Served = service.flights.run(key, build)
    return served


# -- files ------------------------------------------------------------------------------------


def snapshot_dir(database_url: str, configured: str = "") -> Path | None:
    """Where the served snapshots of a store are kept: ``configured`` (RISKMAP_SNAPSHOT_DIR;
    ``none`` keeps none), else ``<file>.snapshots`` beside a SQLite file, else
    ``var/snapshots/<hash of the URL without password>`` (PostgreSQL)."""
    configured = configured.strip()
    if configured.lower() in ("none", "off"):
        return None
    if configured:
        return Path(configured)
    path = sqlite_path(database_url)
    if path is not None:
        if str(path) in ("", ":memory:"):
            return None
        return path.with_name(path.name + ".snapshots")
    digest = hashlib.sha1(redact(database_url).encode()).hexdigest()[:16]
    return Path("var") / "snapshots" / digest


class SnapshotFiles:
    """Served snapshots on disk: ``<root>/<rule key>-<date>/`` holding ``meta.json``, the
    communities (index and ids) and each view (zone index and answer parts)."""

    def __init__(self, root: Path, store_id: str) -> None:
        self.root = Path(root)
        self.store_id = store_id

    def path(self, key: str, at: dt.date) -> Path:
        return self.root / f"{key[:20]}-{at.isoformat()}"

    def meta(self, served: Served) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "store": self.store_id,
            "policy_key": served.key,
            "policy": served.policy.id,
            "at": served.at.isoformat(),
            "data_version": served.data_version,
            "computed_at": served.computed_at.isoformat(),
            "data_through": iso(served.data_through),
            "min_count": served.min_count,
            "public_is_exact": served.public is served.exact,
        }

    def save(self, served: Served) -> Path:
        """Write a served snapshot (replacing the one of its rule and date atomically)."""
        dest = self.path(served.key, served.at)
        with replaced_directory(dest) as tmp:
            served.exact.communities.save(tmp / "communities")
            served.exact.save(tmp / "exact")
            if served.public is not served.exact:
                served.public.save(tmp / "public")
            # written last: a directory without it is never read
            (tmp / "meta.json").write_bytes(orjson.dumps(self.meta(served)))
        return dest

    def stored_version(self, key: str, at: dt.date) -> int | None:
        """The data version of the stored snapshot of a rule and date (None when none, or when
        it is of another store: a copied store's old directory, replaced when computed)."""
        try:
            meta = json.loads((self.path(key, at) / "meta.json").read_text())
            if meta.get("store") != self.store_id:
                return None
            return int(meta["data_version"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def load(
        self, policy: Policy, key: str, at: dt.date, min_count: int, version: int
    ) -> Served | None:
        """The stored snapshot of a rule and date, if there is a usable one: None when there
        is none, and (with a log line) when it is damaged or does not fit this store (another
        store, another definition of the rule, another public minimum count, a data version
        newer than ``version``, the store's)."""
        path = self.path(key, at)
        if not (path / "meta.json").exists():
            return None
        try:
            meta = json.loads((path / "meta.json").read_text())
            expected = {
                "format": FORMAT_VERSION,
                "store": self.store_id,
                "policy_key": key,
                "at": at.isoformat(),
                "min_count": min_count,
            }
            for name, want in expected.items():
                if meta.get(name) != want:
                    raise ValueError(f"meta.json: {name} is {meta.get(name)!r}, expected {want!r}")
            stored = int(meta["data_version"])
            if stored > version:
                raise ValueError(f"data version {stored} is newer than the store's ({version})")
            communities = CommunityParts.load(path / "communities")
            exact = StatusParts.load(path / "exact", communities)
            public = (
                exact
                if meta.get("public_is_exact")
                else StatusParts.load(path / "public", communities)
            )
            through = meta.get("data_through")
            return Served(
                policy=policy,
                key=key,
                at=at,
                data_version=stored,
                computed_at=dt.datetime.fromisoformat(meta["computed_at"]),
                data_through=None if through is None else dt.date.fromisoformat(through),
                min_count=min_count,
                exact=exact,
                public=public,
            )
        except Exception as e:  # damaged, truncated, of another version: computed again
            log.warning("ignoring the stored status snapshot %s: %s", path, e)
            return None

    def prune(self, key: str, keep: set[dt.date]) -> None:
        """Remove the stored snapshots of a rule at other dates than ``keep``."""
        prefix = f"{key[:20]}-"
        try:
            entries = list(self.root.iterdir())
        except OSError:
            return
        for p in entries:
            if not p.name.startswith(prefix):
                continue
            try:
                day = dt.date.fromisoformat(p.name[len(prefix) :])
            except ValueError:
                continue
            if day not in keep:
                shutil.rmtree(p, ignore_errors=True)

    @contextlib.contextmanager
    def computing(self, key: str, at: dt.date) -> Iterator[bool]:
        """Hold the lock of a rule and date while computing it: yields False when another
        process (or service) holds it, which then stores the snapshot for the others."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / f".lock-{key[:20]}-{at.isoformat()}", os.O_RDWR | os.O_CREAT)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


# -- the worker -------------------------------------------------------------------------------


class ServedSnapshots:
    """The served snapshots of one service and the background thread keeping them."""

    def __init__(
        self,
        service: RiskService,
        rules: Sequence[Policy],
        min_count: int,
        directory: Path | None = None,
        poll_s: float = POLL_S,
        ahead: dt.timedelta = AHEAD,
        prerender_zoom: int = -1,
    ) -> None:
        from riskmap.api.service import policy_key

        self.service = service
        self.rules: dict[str, Policy] = {}
        for p in rules:
            self.rules.setdefault(policy_key(p), p)
        # the rule objects are kept: their ids identify them for as long as they live
        self._ident = {id(p): k for k, p in self.rules.items()}
        self.min_count = min_count
        self.directory = directory
        self.files: SnapshotFiles | None = None
        self.poll_s = poll_s
        self.ahead = ahead
        # the public tiles of each new snapshot rendered up to this zoom (-1: none)
        self.prerender_zoom = prerender_zoom
        self.prerendered = 0  # snapshots whose tiles were rendered ahead
        # per rule: {date: Served}, each dict replaced whole (readers take no lock)
        self._served: dict[str, dict[dt.date, Served]] = {k: {} for k in self.rules}
        self._put_lock = threading.Lock()
        self._changed = threading.Condition()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loaded = False
        # (rule key, date, data version) of stored snapshots whose zones this process computed
        self._completed: set[tuple[str, dt.date, int]] = set()
        self.failures = 0  # failed rounds in a row (their retries back off)
        self.waits = 0  # rounds in a row put off: the server was busy or short of memory
        self.rounds = 0  # rounds done (each brought every rule up to date)

    @property
    def clock(self) -> Clock:
        """The service's clock (a test may replace it)."""
        return self.service.clock

    # -- readers ----------------------------------------------------------------------------

    def key_of(self, policy: Policy) -> str | None:
        """The key of ``policy`` when it is a served rule, else None."""
        key = self._ident.get(id(policy))
        if key is not None:
            return key
        if any(p.id == policy.id for p in self.rules.values()):  # the same rule, another object
            from riskmap.api.service import policy_key

            key = policy_key(policy)
            return key if key in self.rules else None
        return None

    def get(self, policy: Policy, day: dt.date) -> Served | None:
        """The latest complete snapshot of a served rule for ``day`` (else the day before's,
        until the new day's is ready); None when there is none (or the rule is not served)."""
        key = self.key_of(policy)
        if key is None:
            return None
        by_day = self._served[key]
        return by_day.get(day) or by_day.get(day - ONE_DAY)

    def entries(self) -> list[Served]:
        return [s for by_day in self._served.values() for s in by_day.values()]

    def wait_until(self, done: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``done()`` is true, looking again whenever a served snapshot changed or
        a round ended (at most ``timeout`` seconds); returns ``done()``."""
        with self._changed:
            return self._changed.wait_for(done, timeout)

    # -- the thread -------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="riskmap-snapshots", daemon=True)
            self._thread.start()

    def wake(self) -> None:
        """Look at the data version now (an ingest through the API calls it)."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def join(self, timeout: float) -> None:
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout)

    def _run(self) -> None:
        from riskmap.api.errors import Busy  # (FastAPI: not imported by the CLI's reads)

        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.step()
                self.failures = self.waits = 0
                with self._changed:
                    self.rounds += 1
                    self._changed.notify_all()
            except (Busy, Cancelled) as e:  # the server is busy or short of memory: soon again
                if self._stop.is_set():
                    break
                self.waits += 1
                if self.waits in (1, 60) or self.waits % 600 == 0:
                    log.info("the served status snapshots wait (%d): %s", self.waits, e)
                with self._changed:
                    self._changed.notify_all()
                self._wake.wait(self.poll_s)
                continue
            except Exception as e:
                if self._stop.is_set():
                    break
                self.failures += 1
                if self.failures in (1, 10) or self.failures % 100 == 0:
                    log.warning(
                        "could not compute the served status snapshots (attempt %d, retrying): %s",
                        self.failures,
                        e,
                        exc_info=self.failures == 1,
                    )
            delay = self.poll_s * 2 ** min(self.failures, 6) if self.failures else self.poll_s
            self._wake.wait(min(delay, 60.0))

    def step(self) -> None:
        """One round: read the stored snapshots (the first time), then bring today's snapshot
        of every rule (and tomorrow's, in the last ``ahead`` of the day) to the store's data
        version."""
        store = self.service.store
        if not self._loaded:
            if self.directory is not None:
                secret = store.meta_secret("snapshot_store_id")
                self.files = SnapshotFiles(
                    self.directory, hashlib.sha256(secret.encode()).hexdigest()[:16]
                )
                self._load_stored(store.data_version)
            self._loaded = True
        version = store.data_version
        now = self.clock.now()
        today = now.date()
        days = [today]
        if self.clock.next_midnight(now) - now <= self.ahead:
            days.append(today + ONE_DAY)
        for day in days:
            for key, rule in self.rules.items():
                if self._stop.is_set():
                    return
                self._ensure(key, rule, day, version)
        self._prune(self.clock.today())

    def _load_stored(self, version: int) -> None:
        assert self.files is not None
        today = self.clock.today()
        for key, rule in self.rules.items():
            for day in (today - ONE_DAY, today, today + ONE_DAY):
                got = self.files.load(rule, key, day, self.min_count, version)
                if got is not None:
                    self._put(got)
                    log.info(
                        "status of %s at %s: the stored snapshot of data version %d answers",
                        rule.id,
                        day,
                        got.data_version,
                    )

    def _ensure(self, key: str, rule: Policy, day: dt.date, version: int) -> None:
        cur = self._served[key].get(day)
        if cur is not None and cur.data_version >= version:
            if cur.snapshot is None and cur.data_version == version:
                self._complete(key, cur)
            return
        files = self.files
        if files is None:
            made = build_served(self.service, rule, day, self.min_count)
            self._put(made)
            self._prerender(made)
            return
        if self._take_stored(key, rule, day, version, cur):
            return
        with files.computing(key, day) as mine:
            if not mine:  # another worker process computes it: read it when it is stored
                return
            if self._take_stored(key, rule, day, version, cur):
                return
            made = build_served(self.service, rule, day, self.min_count)
            self._put(made)
            try:
                files.save(made)
            except Exception as e:  # served all the same; a restart computes it again
                log.warning("could not store the status snapshot of %s at %s: %s", rule.id, day, e)
        self._prerender(made)

    def _complete(self, key: str, served: Served) -> None:
        """A snapshot read from disk answers status without the zones: compute them in the
        background (once per rule, date and data version; never in a request, where the
        request's time limit could stop a computation longer than it), so that this process
        serves the zones, communities and tiles of the snapshot, renders its tiles ahead, and
        updates it incrementally when new cases come."""
        done = (key, served.at, served.data_version)
        if done in self._completed:
            return
        self.service.public_snapshot(served.policy, served.at, self.min_count)
        self._completed.add(done)
        log.info(
            "zones of %s at %s (data version %d) in memory behind the stored snapshot",
            served.policy.id,
            served.at,
            served.data_version,
        )
        self._prerender(served)

    def _take_stored(
        self, key: str, rule: Policy, day: dt.date, version: int, cur: Served | None
    ) -> bool:
        """Serve a stored snapshot newer than ``cur`` (another process stored it); True when it
        is of ``version``."""
        assert self.files is not None
        stored = self.files.stored_version(key, day)
        if stored is None or (cur is not None and stored <= cur.data_version):
            return False
        got = self.files.load(rule, key, day, self.min_count, version)
        if got is None:
            return False
        self._put(got)
        return got.data_version >= version

    def _prerender(self, served: Served) -> None:
        """Render the public tiles of a snapshot just computed (RISKMAP_PRERENDER_ZOOM), after
        it is served: status reads never wait for it, and a failure only costs the cache. (A
        snapshot read from disk: after its zones are computed, :meth:`_complete`.)"""
        if self.prerender_zoom < 0:
            return
        checked = [time.monotonic()]

        def stop() -> bool:
            # a newer data version makes these tiles stale: its snapshot comes first (an
            # ingest through the API wakes the keeper; another process's is polled)
            if self._stop.is_set() or self._wake.is_set():
                return True
            now = time.monotonic()
            if now - checked[0] < self.poll_s:
                return False
            checked[0] = now
            return self.service.store.data_version > served.data_version

        try:
            n = self.service.prerender_tiles(
                served.policy,
                served.at,
                self.min_count,
                self.prerender_zoom,
                stop=stop,
                pause=PRERENDER_PAUSE,
            )
            rule, at = served.policy.id, served.at
            if stop():
                log.info("rendering the tiles of %s at %s ahead stopped after %d", rule, at, n)
            else:
                log.info("rendered %d tiles of %s at %s ahead", n, rule, at)
                self.prerendered += 1
        except Exception as e:
            rule, at = served.policy.id, served.at
            log.warning("could not render the tiles of %s at %s: %s", rule, at, e)

    def _put(self, served: Served) -> None:
        with self._put_lock:
            by_day = dict(self._served[served.key])
            old = by_day.get(served.at)
            if old is not None and old.data_version > served.data_version:
                return  # never back to an older data version
            by_day[served.at] = served
            self._served[served.key] = by_day  # one reference replaced
        with self._changed:
            self._changed.notify_all()

    def _prune(self, today: dt.date) -> None:
        """Drop the snapshots of past days (yesterday's stays until today's is ready)."""
        for key in self.rules:
            with self._put_lock:
                by_day = self._served[key]
                keep = {d: s for d, s in by_day.items() if d >= today - ONE_DAY}
                if today in keep:
                    keep.pop(today - ONE_DAY, None)
                if len(keep) != len(by_day):
                    self._served[key] = keep
            if self.files is not None:
                self.files.prune(key, set(keep) | {today, today + ONE_DAY})
