"""riskmap in-process, for analysts and scripts: one store, the zone engine and every measure
behind one object (``riskmap.open``).

    import riskmap
    with riskmap.open("var/analysis.db") as rm:          # a SQLite file, a PostgreSQL URL,
        rm.ingest("communities", "communities.geojson")  # or riskmap.open() for a temporary
        rm.ingest("cases", "cases.csv")                  # store of its own
        zones = rm.zones("2024-03-31", policy="cn-three-zone")
        rm.status(lons, lats, at="2024-03-31")           # a frame, one row per point

A workspace reads the same store as ``riskmap serve`` and the command line, through the same
service (zones cached by data version, rule and date); its answers are the exact ones an
officer sees (analysts' view): publish only what the service publishes.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from riskmap.api.ingest import (
    IngestReport,
    ingest_cases,
    ingest_communities,
    ingest_metrics,
    ingest_units,
)
from riskmap.api.service import RiskService
from riskmap.api.store import Store
from riskmap.geo._errors import RiskmapError
from riskmap.geo.policy import Policy, load_policy

if TYPE_CHECKING:
    import geopandas as gpd

    from riskmap.geo.daily import DailyZones
    from riskmap.geo.scan import ScanResult
    from riskmap.geo.zones import CommunityLayer, ZoneResult
    from riskmap.tiles.notebook import NotebookMap

Kind = Literal["communities", "cases", "units", "metrics"]
DEFAULT_POLICY = "cn-three-zone"


def _date(value: dt.date | str, what: str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise RiskmapError(f"{what}: {value!r} is not a date (YYYY-MM-DD)") from None


class Workspace:
    """A store opened in this process, with the service that computes and caches its zones."""

    def __init__(self, url: str | Path | None = None, *, h3_res: int = 10) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if url is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="riskmap-")
            url = Path(self._tmp.name) / "riskmap.db"
        self.url = str(url)
        self.h3_res = h3_res
        self.store = Store.open(url)
        self.service = RiskService(self.store, h3_res)

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        """Stop computations and close the store (a temporary store is deleted)."""
        self.service.shutdown()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Workspace:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Workspace({self.url!r}, data version {self.store.data_version})"

    # -- data in ---------------------------------------------------------------------------
    def ingest(self, kind: Kind, path: str | Path, **options: Any) -> IngestReport:
        """Ingest a file of ``communities``, ``cases``, ``units`` or ``metrics`` as
        ``riskmap ingest KIND FILE`` does (same validation; ``options`` as the ingest
        functions of :mod:`riskmap.api.ingest` take them: ``columns``, ``date_format``, ...).
        The report lists rejected rows with file, row, field and reason."""
        p = Path(path)
        if kind == "communities":
            return ingest_communities(self.store, p, h3_res=self.h3_res, **options)
        if kind == "cases":
            return ingest_cases(self.store, p, h3_res=self.h3_res, **options)
        if kind == "units":
            return ingest_units(self.store, p, **options)
        if kind == "metrics":
            return ingest_metrics(self.store, p, **options)
        raise RiskmapError(
            f"ingest: unknown kind {kind!r} (expected communities, cases, units or metrics)"
        )

    def ingest_sample(
        self,
        out: str | Path,
        *,
        communities: int = 2000,
        cases: int = 5000,
        days: int = 60,
        end: dt.date | str | None = None,
        seed: int = 0,
    ) -> list[Path]:
        """Generate the sample city (as ``riskmap sample``) into ``out`` and ingest it:
        communities, subdistricts, districts and cases. Returns the files written."""
        from riskmap.data.generator import generate_city, write_city

        city = generate_city(
            seed=seed,
            communities=communities,
            cases=cases,
            days=days,
            end=None if end is None else _date(end, "end"),
        )
        paths = write_city(city, Path(out))
        d = Path(out)
        self.ingest("communities", d / "communities.geojson")
        self.ingest("units", d / "subdistricts.geojson")
        self.ingest("units", d / "districts.geojson")
        self.ingest("cases", d / "cases.csv")
        return paths

    # -- the data version in memory ----------------------------------------------------------
    @property
    def communities(self) -> CommunityLayer:
        """The communities of the current data version."""
        return self.service.data()[1]

    @property
    def cases(self) -> pd.DataFrame:
        """Case locations of the current data version, with their ``community`` (-1: none)."""
        return self.service.data()[2]

    @property
    def data_version(self) -> int:
        return self.service.data()[0]

    def policy(self, policy: str | Path | Policy = DEFAULT_POLICY) -> Policy:
        """A rule: a preset name, a rule file, or a ``Policy`` as it is."""
        return policy if isinstance(policy, Policy) else load_policy(policy)

    # -- zones, status, history ------------------------------------------------------------
    def zones(self, at: dt.date | str, policy: str | Path | Policy = DEFAULT_POLICY) -> ZoneResult:
        """The zones in force on ``at`` (computed once per data version, rule and date)."""
        return self.service.snapshot(self.policy(policy), _date(at, "at")).result

    def zones_over(
        self,
        start: dt.date | str,
        end: dt.date | str,
        policy: str | Path | Policy = DEFAULT_POLICY,
        *,
        forecast: bool = False,
        with_geometry: bool = True,
    ) -> DailyZones:
        """The zones of every date ``start .. end`` from one computation
        (:func:`riskmap.geo.daily.zones_over`); ``with_geometry=False`` leaves the zones'
        geometry out (much faster when only levels and counts are wanted)."""
        from riskmap.geo.daily import zones_over

        _, layer, cases = self.service.data()
        return zones_over(
            layer,
            cases,
            self.policy(policy),
            _date(start, "start"),
            _date(end, "end"),
            forecast=forecast,
            with_geometry=with_geometry,
        )

    def status(
        self,
        lon: Sequence[float] | np.ndarray,
        lat: Sequence[float] | np.ndarray,
        at: dt.date | str,
        policy: str | Path | Policy = DEFAULT_POLICY,
    ) -> pd.DataFrame:
        """The status of each point (arrays of longitudes and latitudes, degrees), one row
        per point in order: level, label, zone and community, as ``GET /v1/status`` answers."""
        x = np.asarray(lon, dtype=np.float64)
        y = np.asarray(lat, dtype=np.float64)
        if x.shape != y.shape or x.ndim != 1:
            raise RiskmapError(
                f"status: lon and lat must be two 1-D arrays of one length (got {x.shape} "
                f"and {y.shape})"
            )
        bad = ~(np.isfinite(x) & np.isfinite(y) & (np.abs(x) <= 180) & (np.abs(y) <= 90))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise RiskmapError(
                f"status: point {i} ({x[i]}, {y[i]}) is not a longitude/latitude in degrees"
            )
        snap = self.service.snapshot(self.policy(policy), _date(at, "at"))
        return pd.DataFrame(snap.status(x, y))

    def history(
        self,
        start: dt.date | str,
        end: dt.date | str,
        policy: str | Path | Policy = DEFAULT_POLICY,
    ) -> pd.DataFrame:
        """Zone events (a zone drawn, raised, lowered, lifted) between two dates."""
        return self.service.zone_history(
            self.policy(policy), _date(start, "start"), _date(end, "end")
        )

    # -- layers ----------------------------------------------------------------------------
    def zones_geojson(
        self, at: dt.date | str, policy: str | Path | Policy = DEFAULT_POLICY
    ) -> dict[str, Any]:
        """The zones as an RFC 7946 feature collection (as ``GET /v1/zones`` for officers)."""
        from riskmap.tiles.geojson import zones_geojson

        return zones_geojson(self.zones(at, policy))

    def communities_geojson(
        self, at: dt.date | str, policy: str | Path | Policy = DEFAULT_POLICY
    ) -> dict[str, Any]:
        """Communities with their level on ``at`` (as ``GET /v1/communities`` for officers)."""
        from riskmap.tiles.geojson import communities_geojson

        return communities_geojson(self.communities, self.zones(at, policy))

    # -- measures and early warning ----------------------------------------------------------
    def incidence(self, end: dt.date | str, *, days: int = 14, unit: str = "community") -> Any:
        """Cases per 100,000 residents (:func:`riskmap.geo.measures.incidence`)."""
        from riskmap.geo.measures import incidence

        _, layer, cases = self.service.data()
        return incidence(layer, cases, _date(end, "end"), days=days, unit=unit)

    def growth(self, end: dt.date | str, *, days: int = 7, unit: str = "community") -> Any:
        """Cases of the last ``days`` against the ``days`` before, doubling time
        (:func:`riskmap.geo.measures.growth`)."""
        from riskmap.geo.measures import growth

        _, layer, cases = self.service.data()
        return growth(layer, cases, _date(end, "end"), days=days, unit=unit)

    def population_under_levels(
        self,
        start: dt.date | str,
        end: dt.date | str,
        policy: str | Path | Policy = DEFAULT_POLICY,
    ) -> pd.DataFrame:
        """Residents under each level on each day ``start .. end``
        (:func:`riskmap.geo.measures.population_under_levels`)."""
        from riskmap.geo.measures import population_under_levels

        e = _date(end, "end")
        return population_under_levels(
            self.zones(e, policy), self.communities, _date(start, "start"), e
        )

    def hotspots(self, at: dt.date | str, **options: Any) -> gpd.GeoDataFrame:
        """Getis-Ord Gi* hotspots (:func:`riskmap.geo.hotspots.hotspots`; ``public=True`` by
        default: classes only)."""
        from riskmap.geo.hotspots import hotspots

        _, layer, cases = self.service.data()
        return hotspots(layer, cases, _date(at, "at"), **options)

    def scan(self, end: dt.date | str, **options: Any) -> ScanResult:
        """The space-time permutation scan over the communities (cases counted where they
        live), ending on ``end`` (:func:`riskmap.geo.scan.space_time_scan`; options as its
        keywords: ``prospective``, ``max_share``, ``replications``, ``seed``, ...)."""
        from riskmap.geo.scan import community_counts, space_time_scan

        _, layer, cases = self.service.data()
        counts, coords = community_counts(layer, cases)
        return space_time_scan(counts, coords, end=_date(end, "end"), **options)

    # -- maps (offline, for notebooks) --------------------------------------------------------
    def map(
        self,
        at: dt.date | str,
        policy: str | Path | Policy = DEFAULT_POLICY,
        *,
        hotspots: gpd.GeoDataFrame | None = None,
        scan: ScanResult | None = None,
        scan_max_p: float = 0.05,
        title: str | None = None,
        height: int = 480,
    ) -> NotebookMap:
        """A map of ``at`` that draws offline in a notebook (:mod:`riskmap.tiles.notebook`):
        communities coloured by level (tooltips), zone outlines, and optionally ``hotspots``
        (a frame of :meth:`hotspots`: hot cells red, cold blue) and the clusters of a ``scan``
        with a p-value of at most ``scan_max_p`` (circles around each cluster's centre, of the
        cluster's radius). ``.save(path)`` writes the page."""
        from riskmap.tiles.notebook import map_of

        day = _date(at, "at")
        pol = self.policy(policy)
        return map_of(
            self.communities,
            self.zones(day, pol),
            hotspots=hotspots,
            scan=scan,
            scan_max_p=scan_max_p,
            title=title if title is not None else f"{pol.name}, {day.isoformat()}",
            height=height,
        )


def open(url: str | Path | None = None, *, h3_res: int = 10) -> Workspace:  # noqa: A001
    """Open a store (a SQLite file path, ``sqlite:///...`` or ``postgresql://...``); with no
    argument, a temporary SQLite store deleted when the workspace closes."""
    return Workspace(url, h3_res=h3_res)
