"""Zones, look-ups and layers computed from the store and cached by (data version, rule, date)."""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd

from riskmap.api.answers import CommunityParts, StatusParts
from riskmap.api.clock import Clock
from riskmap.api.flights import Flights, WorkLimits
from riskmap.api.store import Store
from riskmap.geo._cancel import checkpoint
from riskmap.geo._errors import StoreError
from riskmap.geo.counts import CountTable, case_counts
from riskmap.geo.history import zone_events
from riskmap.geo.incremental import supports_incremental, update_zones
from riskmap.geo.index import PolygonIndex
from riskmap.geo.policy import Policy, policy_key
from riskmap.geo.precision import public_result
from riskmap.geo.status import StatusLookup, place_history
from riskmap.geo.zones import CommunityLayer, ZoneResult, compute_zones, from_day, longest_lift
from riskmap.tiles.collections import (
    ZONE_TILE_FEATURES,
    communities_frame,
    districts_frame,
    zones_frame,
    zones_merge,
)
from riskmap.tiles.mvt import MercatorGeometries, TileCache, TileLayer, encode_tile

if TYPE_CHECKING:
    from riskmap.api.snapshots import Served, ServedSnapshots

log = logging.getLogger("riskmap")


@dataclass(frozen=True)
class MapLayer:
    """One collection (zones, communities or districts) prepared once: its flat frame
    (:mod:`tiles.collections`: the GeoJSON items) and its tile layer (Web Mercator, STRtree)."""

    frame: gpd.GeoDataFrame
    tiles: TileLayer


#: the collections whose features follow the rule and date (districts do not)
SNAPSHOT_LAYERS = ("zones", "communities")


@dataclass
class Snapshot:
    """Zones under one rule at one date for one data version (immutable once built)."""

    data_version: int
    result: ZoneResult
    layer: CommunityLayer
    # when the zones were computed (UTC)
    computed_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    # the status look-up is built once, when first asked for (look-ups themselves take no lock)
    _lookup: StatusLookup | None = field(default=None, repr=False, compare=False)
    _lookup_lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    # the public views (geo.precision) by minimum count, each computed once
    _public: dict[int, Snapshot] = field(default_factory=dict, repr=False)
    _public_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # the map layers (zones, communities), each built when first asked for; their own lock:
    # building them never holds up a status look-up
    _maps: dict[str, MapLayer] = field(default_factory=dict, repr=False, compare=False)
    _maps_lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    # the answer parts of the status look-up (api.answers), built once
    _parts: StatusParts | None = field(default=None, repr=False, compare=False)
    _parts_lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def public(self, cases: pd.DataFrame, min_count: int) -> Snapshot:
        """The snapshot as anonymous callers see it (``cases``: those it was computed from):
        fine zones with fewer than ``min_count`` cases coarsened, their dates withheld."""
        with self._public_lock:
            got = self._public.get(min_count)
            if got is None:
                result = public_result(self.result, self.layer, cases, min_count)
                got = (
                    self
                    if result is self.result
                    else Snapshot(self.data_version, result, self.layer, self.computed_at)
                )
                self._public[min_count] = got
            return got

    @property
    def lookup(self) -> StatusLookup:
        """The status look-up of the zones (see :mod:`geo.status`)."""
        if self._lookup is None:
            with self._lookup_lock:
                if self._lookup is None:
                    self._lookup = StatusLookup(self.result, self.layer)
        return self._lookup

    @property
    def zone_index(self) -> PolygonIndex:
        return self.lookup.index

    def status(self, lon: np.ndarray, lat: np.ndarray) -> list[dict[str, Any]]:
        """The status of each point (see :meth:`geo.status.StatusLookup.answers`)."""
        return self.lookup.answers(lon, lat)

    def map_layer(
        self,
        name: str,
        communities: Callable[[CommunityLayer], MercatorGeometries],
        merge_features: int = ZONE_TILE_FEATURES,
    ) -> MapLayer:
        """The collection ``name`` (``zones`` or ``communities``) of these zones, built once
        (``communities``: the communities' Web Mercator geometries, shared by the snapshots
        of a data version; ``merge_features``: the zones tiles merge each level's zones at
        the zooms where a tile would hold more than this many, see
        :func:`tiles.collections.zones_merge`)."""
        got = self._maps.get(name)
        if got is not None:
            return got
        with self._maps_lock:
            got = self._maps.get(name)
            if got is None:
                if name == "zones":
                    frame = zones_frame(self.result)
                    merge = zones_merge(frame, merge_features)
                    got = MapLayer(frame, TileLayer(name, frame, merge=merge))
                elif name == "communities":
                    frame = communities_frame(self.layer, self.result)
                    geoms = communities(self.layer)
                    got = MapLayer(frame, TileLayer(name, frame, geometry=geoms))
                else:
                    raise ValueError(f"no snapshot layer {name!r}: expected {SNAPSHOT_LAYERS}")
                self._maps[name] = got
            return got


@dataclass(frozen=True)
class _Data:
    """One data version in memory (replaced whole, never changed)."""

    version: int
    batch: int  # the last ingest batch it holds
    layer: CommunityLayer
    cases: pd.DataFrame
    metrics: pd.DataFrame | None
    units: pd.DataFrame | None


class _Keeper:
    """One daemon thread writing computed zones to the store: answers never wait for it, and
    it never holds up the exit (what it had not written yet is computed again when asked)."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[Future[bool], Callable[[], bool]] | None] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, fn: Callable[[], bool]) -> Future[bool]:
        f: Future[bool] = Future()
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, args=(self._queue,), name="riskmap-keep", daemon=True
                )
                self._thread.start()
        self._queue.put((f, fn))
        return f

    @staticmethod
    def _run(q: queue.SimpleQueue[tuple[Future[bool], Callable[[], bool]] | None]) -> None:
        while (item := q.get()) is not None:
            f, fn = item
            if f.set_running_or_notify_cancel():
                try:
                    f.set_result(fn())
                except BaseException as e:
                    f.set_exception(e)

    def close(self) -> None:
        self._queue.put(None)


_SERVICES: weakref.WeakSet[RiskService] = weakref.WeakSet()


def shutdown_all(reason: str = "the server is shutting down") -> None:
    """Cancel every running computation of every service of this process and refuse new
    ones (on SIGTERM)."""
    for service in list(_SERVICES):
        service.close(reason)


class RiskService:
    """Owns the store and the caches of prepared data and zone snapshots.

    Zone snapshots are computed once per key (data version, rule, date) however many requests
    ask for them at once, at most ``limits.max_running`` at a time (see :mod:`api.flights`);
    a request for a cached snapshot never waits for a computation.
    """

    def __init__(
        self,
        store: Store,
        h3_res: int = 10,
        cache_size: int = 16,
        limits: WorkLimits | None = None,
        tile_cache_mb: float = 64.0,
        clock: Clock | None = None,
        tile_merge_features: int = ZONE_TILE_FEATURES,
    ) -> None:
        self.store = store
        # "today" (RISKMAP_TIMEZONE): the date of the served snapshots and of default dates
        self.clock = clock or Clock()
        # today's snapshots of the served rules, kept by a background thread (see serve)
        self.served: ServedSnapshots | None = None
        self._communities: tuple[CommunityLayer, CommunityParts] | None = None
        self.h3_res = h3_res
        self.cache_size = cache_size
        # encoded vector tiles, keyed by (data version, rule, date, view, layer, z, x, y)
        self.tiles = TileCache(int(tile_cache_mb * 2**20))
        # zones tiles merge each level's zones where a tile would hold more than this many
        self.tile_merge_features = tile_merge_features
        # per community layer (data version): its Web Mercator geometries and the districts
        self._maps_lock = threading.Lock()
        self._mercator: tuple[CommunityLayer, MercatorGeometries] | None = None
        self._districts: tuple[_Data, MapLayer] | None = None
        # loading a new data version: one thread at a time; a request for the version in
        # memory takes no lock (the state is one tuple, replaced whole)
        self._load_lock = threading.Lock()
        self._cache_lock = threading.Lock()  # the snapshot cache (short sections only)
        self._data: _Data | None = None
        self._span: tuple[int, tuple[dt.date, dt.date] | None] | None = None
        self._snapshots: OrderedDict[tuple[int, str, dt.date], Snapshot] = OrderedDict()
        self._cell_secret: bytes | None = None
        # early warning (api/service.py, end): scans of the data version in memory, every
        # date kept (one scan per key, never again); hotspot layers, the last few
        self._scans: dict[tuple[Any, ...], Any] = {}
        self._scan_lock = threading.Lock()  # one scan at a time (see scan)
        self._hotspots: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self.flights = Flights(limits or WorkLimits())
        # scans (minutes on a large city) on a worker of their own: they never hold up zones
        self.scan_flights = Flights(
            replace(self.flights.limits, max_running=1), name="riskmap-scan"
        )
        # computed zones are kept in the store (table zones) by one background writer
        self._writer = _Keeper()
        self._pending: list[Future[bool]] = []
        weakref.finalize(self, self.flights.close)
        weakref.finalize(self, self.scan_flights.close)
        weakref.finalize(self, self._writer.close)
        _SERVICES.add(self)

    def close(self, reason: str = "the service is closing") -> None:
        """Cancel running computations and refuse new ones."""
        self.flights.cancel_all(reason, close=True)
        self.scan_flights.cancel_all(reason, close=True)

    def shutdown(self) -> None:
        """Close for good: cancel computations, stop the worker threads and close the store
        (zones not written yet are computed again when next asked: the exit never waits)."""
        served = self.served
        if served is not None:
            served.stop()
        self.close("the server is shutting down")
        if served is not None:
            served.join(2.0)
        self._writer.close()
        self.flights.close()
        self.scan_flights.close()
        self.store.close()

    # -- served snapshots (api.snapshots) -----------------------------------------------------

    def today(self) -> dt.date:
        """Today in the service's time zone (RISKMAP_TIMEZONE)."""
        return self.clock.today()

    def serve(
        self,
        rules: list[Policy] | tuple[Policy, ...],
        min_count: int,
        directory: Path | None = None,
        **options: Any,
    ) -> ServedSnapshots:
        """Keep today's snapshot of each of ``rules`` computed ahead in a background thread
        (its public view at ``min_count``), stored under ``directory`` (see
        :mod:`api.snapshots`); status reads of these rules for today are then answered from
        it and never wait."""
        from riskmap.api.snapshots import ServedSnapshots

        if self.served is None:
            self.served = ServedSnapshots(self, rules, min_count, directory, **options)
            self.served.start()
        return self.served

    def data_changed(self) -> None:
        """The data changed (an ingest through the API): bring the served snapshots up to
        date now rather than at the next poll."""
        if self.served is not None:
            self.served.wake()

    def serves(self, policy: Policy) -> bool:
        """Whether today's status under ``policy`` is served from a snapshot computed ahead."""
        return self.served is not None and self.served.key_of(policy) is not None

    def served_status(self, policy: Policy) -> Served | None:
        """The latest complete snapshot of a served rule for today (None: not served, or
        none ready yet). Reads nothing from the store and never waits."""
        served = self.served
        return None if served is None else served.get(policy, self.clock.today())

    def known_layer(self) -> CommunityLayer | None:
        """The communities prepared in memory when no batch of communities came since (only
        cases): what an ingest of cases flags rows with, without reading and preparing them
        again (seconds on a large city). None when there is none yet or they changed."""
        data = self._data
        if data is None or not self.store.only_new_cases_since(data.batch):
            return None
        return data.layer

    def current_data(self) -> _Data:
        """The current data version in memory (loaded when the store's changed)."""
        return self._state()

    @staticmethod
    def last_report(data: _Data) -> dt.date | None:
        """The last report date of a data version's case locations (None without cases)."""
        if not len(data.cases):
            return None
        return pd.to_datetime(data.cases["reported"]).max().date()

    def _community_parts(self, layer: CommunityLayer) -> CommunityParts:
        got = self._communities
        if got is None or got[0] is not layer:
            got = (layer, CommunityParts.of(layer.index, layer.frame))
            self._communities = got
        return got[1]

    def status_parts(self, snap: Snapshot) -> StatusParts:
        """The answer parts of a snapshot (:mod:`api.answers`), built once."""
        parts = snap._parts
        if parts is None:
            with snap._parts_lock:
                parts = snap._parts
                if parts is None:
                    parts = StatusParts.of(snap.lookup, self._community_parts(snap.layer))
                    snap._parts = parts
        return parts

    def data(self) -> tuple[int, CommunityLayer, pd.DataFrame]:
        """Communities and case locations of the current data version.

        When the batches since the version in memory only added case locations, the new rows
        are appended and the cached zone snapshots are updated incrementally
        (:func:`geo.incremental.update_zones`); anything else reloads everything.
        """
        d = self._state()
        return d.version, d.layer, d.cases

    def _state(self) -> _Data:
        """The data version, its communities, case locations, hospital figures and units."""
        version, _ = self.store.versions()
        data = self._data
        if data is not None and data.version == version:
            return data
        with self._load_lock:
            data = self._data
            with self.store.reading():  # one state of the data, whatever commits meanwhile
                version, last_batch = self.store.versions()
                if data is not None and data.version == version:
                    return data
                incremental = data is not None and self.store.only_new_cases_since(data.batch)
                if incremental:
                    assert data is not None
                    new = self.store.case_locations(after_batch=data.batch, upto_batch=last_batch)
                else:
                    communities = self.store.communities()
                    cases = self.store.case_locations(upto_batch=last_batch)
                    metrics, units = self.store.unit_metrics(), self.store.units()
            if incremental:
                assert data is not None
                layer, metrics, units = data.layer, data.metrics, data.units
                new["community"] = layer.locate(new["lon"].to_numpy(), new["lat"].to_numpy())
                cases = pd.concat([data.cases, new], ignore_index=True)
                self._advance_snapshots(data.version, version, layer, cases, new, metrics)
            else:
                layer = CommunityLayer(communities, self.h3_res)
                cases["community"] = layer.locate(cases["lon"].to_numpy(), cases["lat"].to_numpy())
                with self._cache_lock:
                    self._snapshots.clear()
            self._data = _Data(version, last_batch, layer, cases, metrics, units)
            return self._data

    def report_span(self) -> tuple[int, tuple[dt.date, dt.date] | None]:
        """(data version, (first, last) report date of the case locations, or None)."""
        version, _, cases = self.data()
        span = self._span
        if span is None or span[0] != version:
            days = pd.to_datetime(cases["reported"]) if len(cases) else None
            dates = None if days is None else (days.min().date(), days.max().date())
            self._span = span = (version, dates)
        return span

    def date_bounds(self, policy: Policy, today: dt.date | None = None) -> tuple[dt.date, dt.date]:
        """The dates a request may ask about under ``policy``: from the first report date to
        the last report date plus the rule's longest lift, or today if later (with no case
        yet: up to today)."""
        today = today or self.today()
        _, span = self.report_span()
        if span is None:
            return dt.date(1970, 1, 1), today
        first, last = span
        try:
            end = last + dt.timedelta(days=longest_lift(policy))
        except OverflowError:
            end = dt.date.max
        return min(first, today), max(end, today)

    def _advance_snapshots(
        self,
        previous: int,
        version: int,
        layer: CommunityLayer,
        cases: pd.DataFrame,
        new: pd.DataFrame,
        metrics: pd.DataFrame | None,
    ) -> None:
        advanced: OrderedDict[tuple[int, str, dt.date], Snapshot] = OrderedDict()
        with self._cache_lock:
            cached = list(self._snapshots.items())
        if self.served is not None:  # the served snapshots too, if the cache let them go
            have = {k for k, _ in cached}
            for entry in self.served.entries():
                snap = entry.snapshot
                if snap is not None and snap.data_version == previous:
                    key = (previous, snap.result.policy.model_dump_json(), snap.result.at)
                    if key not in have:
                        have.add(key)
                        cached.append((key, snap))
        for (_, pkey, at), snap in cached:
            if not supports_incremental(snap.result.policy, metrics):
                # a full recomputation: on demand, through the bounded computations (never
                # here, for every cached date, while every request waits for the data)
                continue
            try:
                result = update_zones(snap.result, layer, cases, new, metrics=metrics)
            except Exception:  # never lose the data for a cache entry: recompute on demand
                continue
            advanced[(version, pkey, at)] = Snapshot(version, result, layer)
            if at == self.today():
                self._keep(advanced[(version, pkey, at)])
        with self._cache_lock:
            self._snapshots = advanced

    def _keep(self, snap: Snapshot) -> None:
        """Store the zones in force today of a new snapshot (in the background: answers never
        wait for it). Other dates are not kept: any reader could ask for any date, and the
        past is in the zone history."""
        policy = snap.result.policy
        key = policy_key(policy)

        def write() -> bool:
            try:
                return self.store.save_zone_snapshot(
                    key, policy.id, snap.data_version, snap.result.at, snap.result.zones
                )
            except Exception:  # the answer was given; the next computation tries again
                log.exception("could not store the zones of %s at %s", policy.id, snap.result.at)
                return False

        with self._cache_lock:
            self._pending = [f for f in self._pending if not f.done()]
            self._pending.append(self._writer.submit(write))

    def flush(self) -> None:
        """Wait until every computed snapshot is stored."""
        with self._cache_lock:
            pending = list(self._pending)
        for f in pending:
            f.result()

    def snapshot(self, policy: Policy, at: dt.date) -> Snapshot:
        """The zones under ``policy`` as of ``at``: from the cache, or computed once for every
        request that needs them (raises :class:`~api.errors.Busy` when too much is running)."""
        d = self._state()
        version, layer, cases, metrics = d.version, d.layer, d.cases, d.metrics
        key = (version, policy.model_dump_json(), at)
        with self._cache_lock:
            snap = self._snapshots.get(key)
            if snap is not None:
                self._snapshots.move_to_end(key)
                return snap

        def compute() -> Snapshot:
            with self._cache_lock:  # a flight for the key may have ended just now
                done = self._snapshots.get(key)
            if done is not None:
                return done
            result = compute_zones(layer, cases, policy, at, metrics=metrics)
            made = Snapshot(version, result, layer)
            with self._cache_lock:
                if self._data is not None and self._data.version == version:
                    self._snapshots[key] = made
                    while len(self._snapshots) > self.cache_size:
                        self._snapshots.popitem(last=False)
            if at == self.today():
                self._keep(made)
            return made

        return self.flights.run(("zones", *key), compute)

    def built_public_layer(
        self, policy: Policy, at: dt.date, version: int, min_count: int, name: str
    ) -> MapLayer | None:
        """The public map layer ``name`` of the snapshot of ``policy`` at ``at`` of data
        version ``version`` when it is in memory with that layer built; None otherwise (never
        computes: :mod:`api.fastpath` renders a missing tile of it without routing)."""
        with self._cache_lock:
            snap = self._snapshots.get((version, policy.model_dump_json(), at))
        public = None if snap is None else snap._public.get(min_count)
        return None if public is None else public._maps.get(name)

    def public_snapshot(self, policy: Policy, at: dt.date, min_count: int) -> Snapshot:
        """The snapshot of ``policy`` at ``at`` as the public sees it (see geo.precision)."""
        for _ in range(5):  # the cases of the snapshot's data version
            snap = self.snapshot(policy, at)
            version, _, cases = self.data()
            if version == snap.data_version:
                return snap.public(cases, min_count)
        raise StoreError("the data is changing; try again")

    def zone_history(self, policy: Policy, start: dt.date, end: dt.date) -> pd.DataFrame:
        """Zone events between two dates, computed once per data version and kept in the store."""
        key = policy_key(policy)
        version = self.store.data_version
        events = self.store.zone_events(key, version, end)
        if events is None:
            snap = self.snapshot(policy, end)  # its grid holds every day up to `end`

            def compute() -> pd.DataFrame:
                first = from_day(snap.result.day0)
                ev = zone_events(snap.result, snap.layer, first, snap.result.at)
                self.store.save_zone_events(key, version, snap.result.at, ev)
                return ev

            events = self.flights.run(("events", snap.data_version, key, end), compute)
        sel = (events["date"] >= start) & (events["date"] <= end) if len(events) else []
        return events[sel].reset_index(drop=True) if len(events) else events

    def status_history(
        self,
        lon: float,
        lat: float,
        policy: Policy,
        start: dt.date,
        end: dt.date,
        public: bool = False,
    ) -> dict[str, Any]:
        """The levels of a place; ``public``: as anonymous callers see them (a fine level at
        the precision of the place's community, see geo.precision)."""
        snap = self.snapshot(policy, end)  # its grid holds every day up to `end`
        return place_history(snap.result, snap.layer, lon, lat, start, end, public)

    def _community_geometries(self, layer: CommunityLayer) -> MercatorGeometries:
        got = self._mercator
        if got is not None and got[0] is layer:
            return got[1]
        with self._maps_lock:
            got = self._mercator
            if got is None or got[0] is not layer:
                got = (layer, MercatorGeometries.from_wgs84(layer.geoms))
                self._mercator = got
            return got[1]

    def map_layer(self, name: str, snap: Snapshot | None = None) -> MapLayer:
        """A map collection prepared for items and tiles, built once: ``zones`` and
        ``communities`` of ``snap`` (exact or public, as the caller may see it), ``districts``
        of the current data version (``snap`` is not needed)."""
        if name == "districts":
            return self.districts_layer()[1]
        if snap is None:
            raise ValueError(f"the {name} layer needs a snapshot")
        return snap.map_layer(name, self._community_geometries, self.tile_merge_features)

    def districts_layer(self) -> tuple[int, MapLayer]:
        """The data version and its district outlines prepared for items and tiles."""
        d = self._state()
        got = self._districts
        if got is None or got[0] is not d:
            with self._maps_lock:
                got = self._districts
                if got is None or got[0] is not d:
                    frame = districts_frame(d.layer, d.units)
                    got = (d, MapLayer(frame, TileLayer("districts", frame)))
                    self._districts = got
        return got[0].version, got[1]

    def tile(
        self, key: tuple[Any, ...], layer: TileLayer, z: int, x: int, y: int, gzip: bool = False
    ) -> bytes | None:
        """The MVT of ``layer`` for z/x/y from the tile cache (``key``: what the layer is of,
        data version first), rendered when missing; its gzip body when ``gzip``; None when
        the tile has no feature."""
        return self.tiles.get_or_render(
            (*key, layer.name, z, x, y), lambda: encode_tile([layer], z, x, y), gzip=gzip
        )

    def prerender_tiles(
        self,
        policy: Policy,
        at: dt.date,
        min_count: int,
        max_zoom: int,
        max_tiles: int = 20_000,
        stop: Callable[[], bool] = lambda: False,
        pause: float = 0.0,
    ) -> int:
        """Render the tiles of the zones and communities anonymous callers see (the public
        view at ``min_count``) and of the district outlines (their layer prepared first) at
        zooms 0..``max_zoom`` over the city into the tile cache, with
        their gzip bodies as browsers ask for them: the map's first views then come from
        memory. At most ``max_tiles``; ``stop`` ends it early; after each tile it sleeps
        ``pause`` times the tile's rendering time (background work that leaves the process's
        requests their share). Returns the tiles rendered."""
        from riskmap.tiles.mvt import TMS

        if max_zoom < 0:
            return 0
        snap = self.public_snapshot(policy, at, min_count)
        # the key of the tile route's cache (api.routers.collections._source)
        key = (snap.data_version, policy_key(policy), at.isoformat(), f"public-{min_count}")

        def render() -> int:
            # one bounded computation: admitted under the memory guard, stopped at a
            # checkpoint when the process would grow past RISKMAP_MAX_MEMORY_MB
            # the tiles of both layers, coarse zooms first, within max_tiles; rendered the
            # finest zoom first, so that the coarse ones (a map's first view) are the most
            # recently used in the cache, the last to make room when it is full
            todo: list[tuple[Any, Any, Any]] = []
            layers: list[tuple[tuple[Any, ...], TileLayer]] = [
                (key, self.map_layer(name, snap).tiles) for name in SNAPSHOT_LAYERS
            ]
            # the district outlines too (the map draws them at every zoom): their layer is
            # the union of a data version's communities per district, seconds at scale
            version, districts = self.districts_layer()
            layers.append(((version,), districts.tiles))
            for z in range(max_zoom + 1):
                for k, layer in layers:
                    room = max_tiles - len(todo)
                    if len(layer) and room > 0:  # never more listed than rendered
                        tiles = islice(TMS.tiles(*layer.bounds, [z]), room)
                        todo += [(k, layer, t) for t in tiles]
            # the merged zooms of a large city's zones first (tiles.mvt.Merge: the unions of
            # its levels, seconds): a map's first view then renders in milliseconds a tile
            for _, layer in layers:
                for z in range(max_zoom + 1):
                    if stop():
                        return 0
                    began = time.perf_counter()
                    layer.at_zoom(z)
                    if pause > 0:
                        time.sleep((time.perf_counter() - began) * pause)
            done = 0
            for k, layer, t in reversed(todo):
                if stop():
                    break
                checkpoint()
                began = time.perf_counter()
                self.tile(k, layer, t.z, t.x, t.y, gzip=True)
                done += 1
                if pause > 0:
                    time.sleep((time.perf_counter() - began) * pause)
            return done

        return int(self.flights.run(("prerender", *key, max_zoom), render))

    def units(self) -> pd.DataFrame:
        """Parent units (names, stated populations) of the current data version."""
        units = self._state().units
        assert units is not None
        return units

    def case_counts(
        self,
        unit: str,
        start: dt.date,
        end: dt.date,
        case_type: str | None = None,
        secret: bytes | None = None,
    ) -> tuple[CountTable, int]:
        """Exact case counts per unit over a period (with cell keys under ``secret``) and the
        data version (never public as such: see :mod:`geo.counts`)."""
        d = self._state()
        return case_counts(
            d.layer, d.cases, unit, start, end, d.units, case_type, secret
        ), d.version

    def cell_key_secret(self, configured: str | None) -> bytes:
        """The secret of the record keys: ``RISKMAP_CELL_KEY_SECRET`` when set, else the
        store's own (made once, kept in its meta table)."""
        if configured:
            return configured.encode()
        if self._cell_secret is None:
            self._cell_secret = self.store.meta_secret("cell_key_secret").encode()
        return self._cell_secret

    def status_snapshot(
        self, policy: Policy, at: dt.date, public_min: int | None = None
    ) -> tuple[Snapshot, dict[str, Any]]:
        """The snapshot status answers come from (``public_min``: the public zones of that
        minimum count, for anonymous callers) and its freshness: ``data_version``,
        ``computed_at``, ``data_through`` (the last report date of that data)."""
        snap = (
            self.snapshot(policy, at)
            if public_min is None
            else self.public_snapshot(policy, at, public_min)
        )
        version, span = self.report_span()
        return snap, {
            "data_version": snap.data_version,
            "computed_at": snap.computed_at,
            "data_through": span[1] if span and version == snap.data_version else None,
        }

    def status(
        self, lon: float, lat: float, policy: Policy, at: dt.date, public_min: int | None = None
    ) -> dict[str, Any]:
        """The status of a place; ``public_min``: against the public zones of that minimum
        count (anonymous callers)."""
        snap, fresh = self.status_snapshot(policy, at, public_min)
        return snap.status(np.array([lon]), np.array([lat]))[0] | fresh

    # -- early warning and measures -----------------------------------------------------------

    def zones_over(self, policy: Policy, start: dt.date, end: dt.date) -> Any:
        """The zones of every date ``start .. end`` from one computation
        (:func:`geo.daily.zones_over`; ``DailyZones``)."""
        from riskmap.geo.daily import zones_over

        d = self._state()
        return self.flights.run(
            ("zones_over", d.version, policy.model_dump_json(), start, end),
            lambda: zones_over(d.layer, d.cases, policy, start, end, metrics=d.metrics),
        )

    def hotspots(self, at: dt.date, **options: Any) -> tuple[int, Any]:
        """(data version, Gi* hotspots of its data: :func:`geo.hotspots.hotspots` with its
        keywords), computed once per (data version, date, options) through the bounded
        computations; the last ``HOTSPOT_CACHE`` answers are kept."""
        from riskmap.geo.hotspots import hotspots

        d = self._state()
        key = ("hotspots", d.version, at, tuple(sorted(options.items())))
        with self._cache_lock:
            got = self._hotspots.get(key)
            if got is not None:
                self._hotspots.move_to_end(key)
                return d.version, got

        def compute() -> Any:
            frame = hotspots(d.layer, d.cases, at, **options)
            with self._cache_lock:
                if self._data is not None and self._data.version == d.version:
                    self._hotspots[key] = frame
                    for k in [k for k in self._hotspots if k[1] != d.version]:
                        del self._hotspots[k]
                    while len(self._hotspots) > HOTSPOT_CACHE:
                        self._hotspots.popitem(last=False)
            return frame

        return d.version, self.flights.run(key, compute)

    def scan(
        self, at: dt.date, study_days: int = 365, **options: Any
    ) -> tuple[int, CommunityLayer, Any]:
        """(data version, its communities, the space-time permutation scan of them ending on
        ``at`` over ``study_days`` days: :func:`geo.scan.space_time_scan` with ``options``).

        Each (data version, date, options) is scanned at most once: the answer is kept for
        as long as the data version is current, and scans run one at a time on a worker of
        their own (``scan_flights``: zone computations never wait behind a scan), to the end
        even when the request that asked for it left (a second flight for the same key runs
        after the first and takes its answer), so no caller can make the same scan run
        twice."""
        from riskmap.geo.scan import community_counts, space_time_scan

        d = self._state()
        key = ("scan", d.version, at, study_days, tuple(sorted(options.items())))
        got = self._scans.get(key)
        if got is not None:
            return d.version, d.layer, got

        def compute() -> Any:
            with self._scan_lock:
                done = self._scans.get(key)
                if done is not None:
                    return done
                counts, coords = community_counts(d.layer, d.cases)
                start = at - dt.timedelta(days=study_days - 1)
                result = space_time_scan(counts, coords, end=at, start=start, **options)
                with self._cache_lock:
                    if self._data is not None and self._data.version == d.version:
                        stale = [k for k in self._scans if k[1] != d.version]
                        for k in stale:
                            del self._scans[k]
                        self._scans[key] = result
                return result

        return d.version, d.layer, self.scan_flights.run(key, compute)


#: hotspot layers kept in memory per service (each a few thousand cells at most)
HOTSPOT_CACHE = 32
