"""Helpers for day-by-day rule scenarios on hand-made communities (local metric frame)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import shapely

from riskmap.geo.index import PolygonIndex
from riskmap.geo.policy import Policy, load_policy
from riskmap.geo.zones import CommunityLayer, ZoneResult, compute_zones
from tests.conftest import LOCAL, case_rows

D0 = dt.date(2024, 3, 1)


def day(n: int) -> dt.date:
    return D0 + dt.timedelta(days=n)


def cases(*rows: tuple[str, int, str, str, float, float]) -> pd.DataFrame:
    """(case_id, day, type, role, x_m, y_m) rows."""
    return case_rows([(c, day(d).isoformat(), t, r, x, y) for c, d, t, r, x, y in rows])


class Scenario:
    def __init__(
        self,
        layer: CommunityLayer,
        policy: str | Policy,
        case_df: pd.DataFrame,
        metrics: pd.DataFrame | None = None,
    ) -> None:
        self.layer = layer
        self.policy = load_policy(policy) if isinstance(policy, str) else policy
        self.cases = case_df.copy()
        self.cases["community"] = (
            layer.locate(self.cases["lon"].to_numpy(), self.cases["lat"].to_numpy())
            if len(case_df)
            else np.empty(0, np.int64)
        )
        self.metrics = metrics

    def at(self, n: int) -> ZoneResult:
        return compute_zones(self.layer, self.cases, self.policy, day(n), metrics=self.metrics)

    def levels(self, n: int) -> dict[str, str]:
        r = self.at(n)
        return dict(zip(r.levels["community_id"], r.levels["level"], strict=True))

    def level(self, n: int, community: str) -> str:
        return self.levels(n)[community]

    def point(self, n: int, x: float, y: float) -> str:
        """Level at a point (metres in the local frame): the highest zone covering it."""
        return self.points(n, [(x, y)])[0]

    def points(self, n: int, xy: list[tuple[float, float]]) -> list[str]:
        r = self.at(n)
        pts = shapely.points(np.asarray(xy, dtype=float))
        import geopandas as gpd

        ll = gpd.GeoSeries(pts, crs=LOCAL).to_crs(4326)
        z = r.zones
        if len(z) == 0:
            return ["none"] * len(xy)
        idx = PolygonIndex(
            z.geometry.to_numpy(), 10, priority=[self.policy.rank(lv) for lv in z["level"]]
        )
        hit = idx.lookup(ll.x.to_numpy(), ll.y.to_numpy()).index
        lv = z["level"].to_numpy()
        return [lv[i] if i >= 0 else "none" for i in hit]
