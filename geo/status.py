"""The status of places under computed zones: the answer to "what is the zone status here?"
for arrays of points, and a place's levels over a period.

:class:`StatusLookup` is prepared once per :class:`~geo.zones.ZoneResult` (the zone index and
every part of an answer as arrays); each look-up is then array indexing, no pandas row access.
It holds no lock and changes nothing after it is built: any number of threads may use it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from riskmap.geo._values import or_none
from riskmap.geo.answer import answer_columns
from riskmap.geo.history import base_rank, intervals, point_ranks
from riskmap.geo.index import PolygonIndex
from riskmap.geo.policy import NONE_LABEL, NONE_LEVEL
from riskmap.geo.precision import public_point_ranks
from riskmap.geo.zones import CommunityLayer, ZoneResult

__all__ = ["StatusLookup", "community_ref", "place_history"]


def community_ref(layer: CommunityLayer, c: int) -> dict[str, Any] | None:
    """``{id, name}`` of the community at position ``c``; None for -1 (outside every one)."""
    if c < 0:
        return None
    name = layer.frame["name"].iat[c] if "name" in layer.frame else None
    return {"id": str(layer.ids[c]), "name": or_none(name)}


class StatusLookup:
    """The status of points under one result: the highest zone containing each point (points
    on a boundary included), its level's label and colour, and the community's dates."""

    def __init__(self, result: ZoneResult, layer: CommunityLayer) -> None:
        self.result = result
        self.layer = layer
        policy = result.policy
        z = result.zones.reset_index(drop=True)
        self.zone_level = z["level"].to_numpy(dtype=object)
        self.zone_id = z["zone_id"].to_numpy(dtype=object)
        self.zone_start = z["start"].to_numpy(dtype=object)
        self.zone_lift = z["expected_lift"].to_numpy(dtype=object)
        self.index = PolygonIndex(
            z.geometry.to_numpy(),
            layer.h3_res,
            priority=[policy.rank(lv) for lv in self.zone_level],
        )
        lv = result.levels
        self.community_level = lv["level"].to_numpy(dtype=object)
        self.community_since = lv["since"].to_numpy(dtype=object)
        self.community_lift = lv["expected_lift"].to_numpy(dtype=object)
        self.label = {x.id: x.label for x in policy.levels} | {NONE_LEVEL: NONE_LABEL}
        self.color = {x.id: x.color for x in policy.levels} | {NONE_LEVEL: policy.none_color}

    def locate(
        self, lon: NDArray[np.float64], lat: NDArray[np.float64]
    ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """(zone position or -1, community position or -1) of each point."""
        return self.index.lookup(lon, lat).index, self.layer.locate(lon, lat)

    def answers(self, lon: NDArray[np.float64], lat: NDArray[np.float64]) -> list[dict[str, Any]]:
        """One answer per point: ``level`` (a level id or ``none``), ``label``, ``color``,
        ``zone_id``, ``community`` ({id, name} or None), ``covered`` (the point lies in a
        community: outside every community "no zone" means "no data", not "safe"), ``since``
        and ``expected_lift`` (the community's dates when its own level is the zone's, else the
        zone's), ``policy``, ``at``.
        """
        zi, ci = self.locate(np.asarray(lon, np.float64), np.asarray(lat, np.float64))
        policy_id, at = self.result.policy.id, self.result.at
        out = []
        for z, c in zip(zi.tolist(), ci.tolist(), strict=True):
            community = community_ref(self.layer, c)
            if z < 0:
                level, zone_id, since, lift = NONE_LEVEL, None, None, None
            else:
                level, zone_id = self.zone_level[z], self.zone_id[z]
                if c >= 0 and self.community_level[c] == level:
                    since, lift = self.community_since[c], self.community_lift[c]
                else:
                    since, lift = self.zone_start[z], self.zone_lift[z]
            out.append(
                {
                    "level": level,
                    "label": self.label[level],
                    "color": self.color[level],
                    "zone_id": zone_id,
                    "community": community,
                    "covered": c >= 0,
                    "since": or_none(since),
                    "expected_lift": or_none(lift),
                    "policy": policy_id,
                    "at": at,
                }
            )
        return out

    def table(self, lon: NDArray[np.float64], lat: NDArray[np.float64]) -> pd.DataFrame:
        """The answers of :meth:`answers` as columns (one row per point, in order), built with
        array look-ups only, for batches: ``level``, ``zone_id``, ``community_id``, ``covered``,
        ``since``, ``expected_lift`` (labels and colours are the level's: :attr:`label`,
        :attr:`color`)."""
        zi, ci = self.locate(np.asarray(lon, np.float64), np.asarray(lat, np.float64))
        level, zone_id, community_id, covered, since, lift = answer_columns(
            zi,
            ci,
            (self.zone_level, self.zone_id, self.zone_start, self.zone_lift),
            (self.community_level, self.community_since, self.community_lift),
            self.layer.ids,
        )
        return pd.DataFrame(
            {
                "level": level,
                "zone_id": zone_id,
                "community_id": community_id,
                "covered": covered,
                "since": [or_none(v) for v in since],
                "expected_lift": [or_none(v) for v in lift],
            }
        )


def place_history(
    result: ZoneResult,
    layer: CommunityLayer,
    lon: float,
    lat: float,
    start: dt.date,
    end: dt.date,
    public: bool = False,
) -> dict[str, Any]:
    """The levels of a place from ``start`` to ``end`` as runs of days (``result`` must be
    computed as of ``end`` or later); ``public``: as anonymous callers see them (a fine level
    at the precision of the place's community, see :mod:`geo.precision`)."""
    policy = result.policy
    ranks_of = public_point_ranks if public else point_ranks
    ranks = ranks_of(result, layer, lon, lat)
    c = int(layer.locate(np.array([lon]), np.array([lat]))[0])
    runs = intervals(result, ranks, start, end, base_rank(result, c >= 0))
    for r in runs:
        r["label"] = policy.label(str(r["level"]))
        r["days"] = (r["to"] - r["from"]).days + 1  # type: ignore[operator]
    in_zone = sum(int(str(r["days"])) for r in runs if r["level"] != NONE_LEVEL)
    return {
        "policy": policy.id,
        "from": start,
        "to": end,
        "community": community_ref(layer, c),
        "in_zone": in_zone > 0,
        "days_in_zone": in_zone,
        "intervals": runs,
    }
