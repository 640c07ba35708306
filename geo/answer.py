"""The columns of status answers from array look-ups (light: numpy only, so that a CLI read
of a stored snapshot does not import the zone engine)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from riskmap.geo.policy import NONE_LEVEL

__all__ = ["answer_columns"]


def answer_columns(
    zi: NDArray[Any],
    ci: NDArray[Any],
    zones: tuple[Any, Any, Any, Any],
    communities: tuple[Any, Any, Any],
    community_ids: Any,
) -> tuple[Any, Any, Any, NDArray[np.bool_], Any, Any]:
    """The columns of many status answers from the zone and community each point falls in
    (``zi``, ``ci``: -1 for none), with array look-ups only: ``level``, ``zone_id``,
    ``community_id``, ``covered``, ``since``, ``expected_lift``. ``zones``: per zone its level,
    id, start and expected lift; ``communities``: per community its own level, since and
    expected lift (the dates of a place are its community's when the community is itself at
    the place's level, else its zone's). Shared by :meth:`StatusLookup.table` and the served
    answers of the service."""
    zone_level, zone_ids, zone_start, zone_lift = zones
    community_level, community_since, community_lift = communities
    in_zone, in_comm = zi >= 0, ci >= 0
    z, c = np.where(in_zone, zi, 0), np.where(in_comm, ci, 0)
    none = np.full(len(zi), None, dtype=object)
    if len(zone_level):
        level = np.where(in_zone, zone_level[z], NONE_LEVEL)
        zone_id = np.where(in_zone, zone_ids[z], none)
        since = np.where(in_zone, zone_start[z], none)
        lift = np.where(in_zone, zone_lift[z], none)
    else:
        level = np.full(len(zi), NONE_LEVEL, dtype=object)
        zone_id, since, lift = none, none, none
    community_id = none
    if len(community_level):
        own = in_comm & in_zone & (community_level[c] == level)
        since = np.where(own, community_since[c], since)
        lift = np.where(own, community_lift[c], lift)
        community_id = np.where(in_comm, community_ids[c], none)
    return level, zone_id, community_id, in_comm, since, lift
