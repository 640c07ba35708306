"""Status answers prepared once per snapshot: every part of an answer as arrays, so that a
status answer is two index look-ups, a few array look-ups and one ``orjson`` encoding (no
pandas, no pydantic per request).

:class:`StatusParts` holds one view (exact or public) of one snapshot: the zone index
(:class:`geo.index.PolygonIndex`, levels as priorities), the community index, and per zone
and per community the values of an answer, dates already as ISO text. It answers exactly as
:meth:`geo.status.StatusLookup.answers` does (the same fields and values), is immutable once
built, takes no lock, and can be written to a directory and read back (the indexes
memory-mapped) so that a restarted server answers before computing anything.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
from numpy.typing import NDArray

from riskmap.geo._values import missing
from riskmap.geo.index import PolygonIndex
from riskmap.geo.policy import NONE_LEVEL

if TYPE_CHECKING:
    import pandas as pd

    from riskmap.geo.status import StatusLookup
from riskmap.geo.answer import answer_columns

__all__ = ["CommunityParts", "StatusParts", "iso", "iso_time"]

Objects = NDArray[np.object_]


def iso(v: Any) -> str | None:
    """A date as ``YYYY-MM-DD`` (as pydantic writes it), None when missing."""
    if missing(v):
        return None
    if isinstance(v, dt.datetime):  # pandas Timestamps too
        v = v.date()
    if isinstance(v, dt.date):
        return v.isoformat()
    return dt.date.fromisoformat(str(v)).isoformat()


def iso_time(t: dt.datetime) -> str:
    """A UTC time as pydantic writes it (``2024-03-01T08:00:00.123456Z``)."""
    t = t.astimezone(dt.UTC)
    return t.replace(tzinfo=None).isoformat() + "Z"


def _objects(values: Any) -> Objects:
    items = list(values)
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


@dataclass(frozen=True, eq=False)
class CommunityParts:
    """The communities of a data version: their index and the ``community`` of an answer."""

    index: PolygonIndex
    ids: Objects  # str
    names: Objects  # str or None

    @classmethod
    def of(cls, index: PolygonIndex, frame: pd.DataFrame) -> CommunityParts:
        ids = frame["community_id"].astype(str).tolist()
        raw = frame["name"].tolist() if "name" in frame else [None] * len(ids)
        names = [None if missing(v) else str(v) for v in raw]
        return cls(index, _objects(ids), _objects(names))

    def __post_init__(self) -> None:
        n = len(self.index)
        if len(self.ids) != n or len(self.names) != n:
            raise ValueError(f"{n} communities but {len(self.ids)} ids, {len(self.names)} names")

    def locate(self, lon: NDArray[np.float64], lat: NDArray[np.float64]) -> NDArray[np.int64]:
        return self.index.lookup(lon, lat).index

    def save(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        save_index(self.index, path / "index")
        doc = {"ids": self.ids.tolist(), "names": self.names.tolist()}
        _write(path / "parts.json", orjson.dumps(doc))

    @classmethod
    def load(cls, path: Path) -> CommunityParts:
        doc = orjson.loads((path / "parts.json").read_bytes())
        return cls(load_index(path / "index"), _objects(doc["ids"]), _objects(doc["names"]))


_ZONE = ("zone_level", "zone_id", "zone_since", "zone_lift")
_COMMUNITY = ("community_level", "community_since", "community_lift")


@dataclass(frozen=True, eq=False)
class StatusParts:
    """One view of one snapshot, ready to answer (see the module docstring)."""

    zones: PolygonIndex  # the zones, their levels' ranks as priorities
    communities: CommunityParts
    zone_level: Objects  # level id per zone
    zone_id: Objects
    zone_since: Objects  # ISO date or None
    zone_lift: Objects
    community_level: Objects  # the community's own level (or None) per community
    community_since: Objects
    community_lift: Objects
    label: dict[str, str]  # per level id, "none" included
    color: dict[str, str]

    def __post_init__(self) -> None:
        nz, nc = len(self.zones), len(self.communities.ids)
        for name in _ZONE:
            if len(getattr(self, name)) != nz:
                raise ValueError(f"{name}: {len(getattr(self, name))} values for {nz} zones")
        for name in _COMMUNITY:
            if len(getattr(self, name)) != nc:
                raise ValueError(f"{name}: {len(getattr(self, name))} values for {nc} communities")
        levels = {str(v) for v in self.zone_level}
        if not levels | {NONE_LEVEL} <= set(self.label) or not set(self.label) <= set(self.color):
            raise ValueError("a zone level has no label or colour")

    @classmethod
    def of(cls, lookup: StatusLookup, communities: CommunityParts) -> StatusParts:
        """The parts of a status look-up (:class:`geo.status.StatusLookup`) of a snapshot;
        ``communities``: those of its data version (shared by its views)."""
        return cls(
            zones=lookup.index,
            communities=communities,
            zone_level=_objects(str(v) for v in lookup.zone_level),
            zone_id=_objects(None if missing(v) else str(v) for v in lookup.zone_id),
            zone_since=_objects(iso(v) for v in lookup.zone_start),
            zone_lift=_objects(iso(v) for v in lookup.zone_lift),
            community_level=_objects(None if missing(v) else v for v in lookup.community_level),
            community_since=_objects(iso(v) for v in lookup.community_since),
            community_lift=_objects(iso(v) for v in lookup.community_lift),
            label=dict(lookup.label),
            color=dict(lookup.color),
        )

    def build(self) -> StatusParts:
        """Build the cell tables of both indexes now (not on the first request)."""
        for index in (self.zones, self.communities.index):
            if len(index):  # an index of nothing has no table (it answers -1 at once)
                index.build()
        return self

    # -- answers ------------------------------------------------------------------------------

    def one(self, lon: float, lat: float) -> dict[str, Any]:
        """The place part of a status answer (``level`` ... ``expected_lift``) of one point,
        the fields and values of :meth:`geo.status.StatusLookup.answers`."""
        z = self.zones.lookup_one(lon, lat)
        c = self.communities.index.lookup_one(lon, lat)
        if z < 0:
            level, zone_id, since, lift = NONE_LEVEL, None, None, None
        else:
            level, zone_id = self.zone_level[z], self.zone_id[z]
            if c >= 0 and self.community_level[c] == level:
                since, lift = self.community_since[c], self.community_lift[c]
            else:
                since, lift = self.zone_since[z], self.zone_lift[z]
        cs = self.communities
        return {
            "level": level,
            "label": self.label[level],
            "color": self.color[level],
            "zone_id": zone_id,
            "community": None if c < 0 else {"id": cs.ids[c], "name": cs.names[c]},
            "covered": c >= 0,
            "since": since,
            "expected_lift": lift,
        }

    def table(self, lon: NDArray[np.float64], lat: NDArray[np.float64]) -> pd.DataFrame:
        """The answers of many points as columns, in order (the columns of
        :meth:`geo.status.StatusLookup.table`, dates as ISO text)."""
        lon = np.asarray(lon, np.float64)
        lat = np.asarray(lat, np.float64)
        zi = self.zones.lookup(lon, lat).index
        ci = self.communities.locate(lon, lat)
        level, zone_id, community_id, covered, since, lift = answer_columns(
            zi,
            ci,
            (self.zone_level, self.zone_id, self.zone_since, self.zone_lift),
            (self.community_level, self.community_since, self.community_lift),
            self.communities.ids,
        )
        text = {  # kept as objects (None stays None: no inferred string dtype with NaN)
            "level": level,
            "zone_id": zone_id,
            "community_id": community_id,
            "covered": covered,
            "since": since,
            "expected_lift": lift,
        }
        import pandas as pd  # not for one answer (the CLI's status reads no frame)

        return pd.DataFrame(
            {k: v if k == "covered" else pd.Series(v, dtype=object) for k, v in text.items()}
        )

    # -- files --------------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Write the view to the directory ``path`` (the zone index, its values as JSON); the
        communities are written once per snapshot by their owner."""
        path.mkdir(parents=True, exist_ok=True)
        save_index(self.zones, path / "zones")
        doc: dict[str, Any] = {n: getattr(self, n).tolist() for n in (*_ZONE, *_COMMUNITY)}
        doc |= {"label": self.label, "color": self.color}
        _write(path / "parts.json", orjson.dumps(doc))

    @classmethod
    def load(cls, path: Path, communities: CommunityParts) -> StatusParts:
        """A view written by :meth:`save` (raises ``ValueError`` or ``OSError`` when it is not
        one, or does not fit ``communities``)."""
        doc = orjson.loads((path / "parts.json").read_bytes())
        arrays = {n: _objects(doc[n]) for n in (*_ZONE, *_COMMUNITY)}
        return cls(
            zones=load_index(path / "zones"),
            communities=communities,
            label=dict(doc["label"]),
            color=dict(doc["color"]),
            **arrays,
        )


def save_index(index: PolygonIndex, path: Path) -> None:
    """:meth:`PolygonIndex.save`, and an index of no polygon as an empty directory."""
    if len(index):
        index.save(path)
    else:
        path.mkdir(parents=True, exist_ok=True)
        _write(path / "empty", b"")


def load_index(path: Path) -> PolygonIndex:
    """An index written by :func:`save_index` (its table memory-mapped)."""
    if (path / "empty").exists():
        return PolygonIndex(np.empty(0, dtype=object))
    return PolygonIndex.load(path)


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
