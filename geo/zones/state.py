"""What the engine keeps while it computes: the grids of each level and the inputs shared by
every level (the context), and the units that qualifying case locations are grouped into."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple

import geopandas as gpd
import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import sparse

from riskmap.geo.policy import Policy
from riskmap.geo.zones.features import Features
from riskmap.geo.zones.grids import Bool2D, Int1D, last_true, rolling_any, spread, spread_max
from riskmap.geo.zones.layer import CommunityLayer


@dataclass
class LevelState:
    """What one level contributes: whole communities (``grid``) and/or exact features."""

    grid: Bool2D  # communities x days drawn at this level
    events: Bool2D  # communities x days: qualifying cases sustaining it
    last: Int1D  # per community: sustaining qualifying day (grid index) at the as-of date
    features: Features | None = None
    touch_cache: Bool2D | None = None
    hits_cache: Bool2D | None = None
    sel_cache: sparse.csr_matrix | None = None

    def feature_selection(self, layer: CommunityLayer) -> sparse.csr_matrix:
        """features x communities: the communities each feature intersects."""
        assert self.features is not None
        if self.sel_cache is None:
            self.sel_cache = layer.select(self.features.metric, 0.0, "intersects")
        return self.sel_cache

    def feature_hits(self, layer: CommunityLayer) -> Bool2D:
        """communities x days: a qualifying case of a feature touching the community."""
        assert self.features is not None
        if self.hits_cache is None:
            f = self.features
            if f.is_discs:
                self.hits_cache = f.hits(layer)
            else:
                self.hits_cache = spread(self.feature_selection(layer), f.events)
        return self.hits_cache

    def touch(self, layer: CommunityLayer) -> Bool2D:
        """Communities drawn at the level or touched by one of its active features."""
        if self.touch_cache is None:
            t = self.grid.copy()
            f = self.features
            if f is not None and len(f):
                if f.is_discs:
                    t |= rolling_any(self.feature_hits(layer), f.lift)
                else:
                    t |= spread(self.feature_selection(layer), f.active)
            self.touch_cache = t
        return self.touch_cache

    def touch_last(self, layer: CommunityLayer, at_i: int) -> Int1D:
        last = np.where(self.grid[:, at_i], self.last, -1)
        f = self.features
        if f is not None and len(f):
            if f.is_discs:
                hit = self.feature_hits(layer)
                last = np.maximum(last, last_true(hit, at_i - f.lift + 1, at_i))
            else:
                last_f = np.where(f.active[:, at_i], f.last, -1)
                last = np.maximum(last, spread_max(self.feature_selection(layer), last_f))
        return last


class Activity(NamedTuple):
    """A triggered level's units: drawn on the day (``active``), sustained by a qualifying
    case that day (``events``), and the sustaining qualifying day (grid index) of each."""

    active: Bool2D
    events: Bool2D
    last: Int1D

    def ever(self, at_i: int) -> tuple[Int1D, Bool2D, Bool2D, Int1D]:
        """The units ever active and their rows (``last`` only where active at ``at_i``)."""
        ever = np.flatnonzero(self.active.any(axis=1))
        last_at = np.where(self.active[ever, at_i], self.last[ever], -1)
        return ever, self.active[ever], self.events[ever], last_at


@dataclass
class Patching:
    """An incremental update in progress: the levels' grids, patched row by row."""

    layer: CommunityLayer
    states: dict[str, LevelState]
    at_i: int


@dataclass
class Context:
    """The inputs shared by every level of one computation, and the levels computed so far."""

    layer: CommunityLayer
    cases: pd.DataFrame  # qualifying for no level yet: all case locations reported <= at
    rep: Int1D  # report day (grid index) per case location
    day0: int
    ndays: int
    at_i: int
    metrics: pd.DataFrame | None
    states: dict[str, LevelState] = field(default_factory=dict)
    pending: dict[str, list[LevelState]] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.layer)

    @cached_property
    def case_codes(self) -> Int1D:
        """An integer per case id (distinct counts compare these, not the text ids)."""
        if len(self.cases) == 0:
            return np.empty(0, dtype=np.int64)
        return pd.factorize(self.cases["case_id"])[0].astype(np.int64)

    def blank(self, features: Features | None = None) -> LevelState:
        """A level drawing no whole community (maybe exact features)."""
        z = np.zeros((self.n, self.ndays), dtype=bool)
        return LevelState(z, z.copy(), np.full(self.n, -1, dtype=np.int64), features=features)

    def add_pending(self, to: str, st: LevelState) -> None:
        """A step-down contribution to the lower level ``to``, merged when it is computed."""
        self.pending.setdefault(to, []).append(st)


@dataclass
class Units:
    """Qualifying case locations grouped into units, with their per-day statistics."""

    count: int
    of_row: Int1D  # unit of each qualifying location
    rows: NDArray[np.bool_]  # mask over ctx.cases: qualifying locations with a unit
    population: NDArray[np.float64]
    ids: NDArray[np.object_]

    def location(self, cases: pd.DataFrame) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Coordinates (lon, lat) of each location unit (its first location)."""
        lon = np.zeros(self.count)
        lat = np.zeros(self.count)
        idx = np.flatnonzero(self.rows)
        u, pos = np.unique(self.of_row, return_index=True)
        lon[u] = cases["lon"].to_numpy()[idx[pos]]
        lat[u] = cases["lat"].to_numpy()[idx[pos]]
        return lon, lat

    def community(self, cases: pd.DataFrame) -> Int1D:
        """Community of each unit's first location (-1 if none)."""
        comm = np.full(self.count, -1, dtype=np.int64)
        idx = np.flatnonzero(self.rows)
        u, pos = np.unique(self.of_row, return_index=True)
        comm[u] = cases["community"].to_numpy()[idx[pos]]
        return comm


@dataclass
class ZoneResult:
    """Zones and per-community levels under one policy as of one date."""

    policy: Policy
    at: dt.date
    levels: pd.DataFrame  # community_id, level, since, expected_lift, last_case, zone_id
    zones: gpd.GeoDataFrame
    day0: int = 0
    # communities x days, rank of the level shown for the community (highest zone on any part)
    rank_grid: NDArray[np.int8] | None = field(default=None, repr=False)
    # communities x days, rank of the community-drawn zone the community belongs to
    zone_rank_grid: NDArray[np.int8] | None = field(default=None, repr=False)
    states: dict[str, LevelState] = field(default_factory=dict, repr=False)

    # the grid column of the as-of date (or of the day after which nothing changes any more)
    at_index: int = -1
