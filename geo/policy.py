"""Zone rules as data: a rule file (YAML) names levels, how each is drawn and when it lifts.

A level combines building blocks (see README, "Rule files"):

* a **trigger**: which case locations count (case types, roles) and a condition evaluated per
  unit and day over a look-back window (distinct cases, distinct locations, cases per 100,000
  population, cumulative cases, a cluster of cases in one community, optional hospital
  figures), as alternatives in ``any_of``;
* an **extent**: where the level applies. Per community: ``community`` (the community of a
  qualifying location), ``parent`` (its whole subdistrict or district), ``all`` (every
  community), ``parent_remainder`` (the rest of every parent unit that contains a higher zone),
  ``buffer`` (communities near a higher zone, or the exact metric buffer). Geometric:
  ``radius`` (a metric circle around each qualifying location), ``cell`` (the H3 cell of the
  location at a resolution, e.g. a building at res 12), ``grid_disk`` (k rings of H3 cells);
  each geometric extent can be kept exact or snapped to whole communities;
* **lifting**: a unit that qualifies on day d keeps the level on days d .. d+N-1
  (``lift_after_days``: N); ``step_down`` hands it to a lower level for some more days;
* **precedence**: levels are listed highest first; where several apply, the highest wins.

Each extent kind is a building block of the zone engine: its rule-file model (a subclass of
:class:`ExtentSpec`) is listed here for the built-in kinds; the engine's registry
(``geo.zones.registry``) pairs each model with its implementation and, when a new kind is
registered, widens the ``extent`` union that rule files are validated against
(:func:`accept_extents`). See docs/architecture.md, "Add a building block".
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from riskmap.geo._errors import PolicyError, UnknownPolicyError

NONE_LEVEL = "none"  # the level id of places in no zone
NONE_LABEL = "No risk zone"
HEX_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
# the case types and location roles of case files (geo.io reads them) and of rule files'
# trigger filters; ``probable``: meets the clinical and epidemiological criteria without a
# confirmatory test, as authorities list them
CaseType = Literal["confirmed", "probable", "asymptomatic", "suspected", "close_contact"]
Role = Literal["residence", "workplace", "frequent_activity", "visit"]
CASE_TYPES: tuple[str, ...] = get_args(CaseType)
ROLES: tuple[str, ...] = get_args(Role)
Snap = Literal["exact", "intersects", "centroid", "area"]
Parent = Literal["subdistrict", "district"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Range(_Strict):
    """``min <= value`` and ``value < max`` (either bound optional)."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _check(self) -> Range:
        if self.min is None and self.max is None:
            raise ValueError("a range needs 'min', 'max' or both")
        if self.min is not None and self.max is not None and self.max <= self.min:
            raise ValueError(f"max {self.max} must be greater than min {self.min}")
        return self


class Cluster(_Strict):
    """At least ``min_cases`` qualifying cases in one community within ``window_days``."""

    min_cases: int = Field(2, ge=2)
    window_days: int = Field(14, ge=1, le=365)


class Condition(_Strict):
    """All the given tests must hold (per unit and day)."""

    cases: Range | None = None  # distinct qualifying cases in the window
    locations: Range | None = None  # distinct qualifying locations (res-12 cells) in the window
    rate_per_100k: Range | None = None  # cases in the window per 100,000 population of the unit
    cumulative: Range | None = None  # qualifying cases reported up to the day
    cluster: Cluster | None = None
    admissions_per_100k: Range | None = None  # optional hospital figures of the unit
    beds_pct: Range | None = None


class Trigger(_Strict):
    """Which case locations qualify and when a unit qualifies on a day."""

    case_types: tuple[CaseType, ...] = ("confirmed", "asymptomatic")
    roles: tuple[Role, ...] = ("residence",)
    window_days: int = Field(1, ge=1, le=365)
    any_of: tuple[Condition, ...] = (Condition(cases=Range(min=1)),)


class ExtentSpec(_Strict):
    """Where a level applies, as written in a rule file: ``kind`` names the building block.

    ``triggered``: the level is drawn around qualifying cases (it takes a ``trigger``);
    otherwise it is derived from other levels or from the communities alone.
    """

    kind: str
    triggered: ClassVar[bool] = False

    @property
    def exact(self) -> bool:
        """Drawn as exact geometry (not whole communities)."""
        return False

    def fine_reason(self, fine: Mapping[str, str]) -> str | None:
        """Why a level of this extent, drawn as exact geometry, is finer than a community
        (None: it is not); ``fine`` holds the levels above it already found finer, with their
        reasons (see :attr:`Policy.fine_levels`). A kind registered by other code overrides
        it in its model."""
        return None


class SnappableExtent(ExtentSpec):
    """An extent drawn as exact geometry (``snap: exact``) or snapped to whole communities
    (its model has ``snap`` and ``min_area_fraction``)."""

    @property
    def exact(self) -> bool:
        return getattr(self, "snap", "exact") == "exact"


class CommunityExtent(ExtentSpec):
    kind: Literal["community"]
    triggered: ClassVar[bool] = True


class ParentExtent(ExtentSpec):
    kind: Literal["parent"]
    parent: Parent
    triggered: ClassVar[bool] = True


class AllExtent(ExtentSpec):
    kind: Literal["all"]


class ParentRemainderExtent(ExtentSpec):
    kind: Literal["parent_remainder"]
    parent: Parent
    around: tuple[str, ...] = Field(min_length=1)


class BufferExtent(SnappableExtent):
    kind: Literal["buffer"]
    around: tuple[str, ...] = Field(min_length=1)
    distance_m: float = Field(gt=0, le=100_000)
    rural_distance_m: float | None = Field(None, gt=0, le=100_000)
    snap: Snap = "intersects"
    min_area_fraction: float = Field(0.5, gt=0, le=1)

    def fine_reason(self, fine: Mapping[str, str]) -> str | None:
        src = [a for a in self.around if a in fine]
        return f"exact buffers around level {src[0]!r}" if src else None


class RadiusExtent(SnappableExtent):
    kind: Literal["radius"]
    triggered: ClassVar[bool] = True
    radius_m: float = Field(gt=0, le=100_000)
    rural_radius_m: float | None = Field(None, gt=0, le=100_000)
    # centre circles on the centre of the location's H3 cell at this resolution, so that a
    # published circle does not give away the home it is drawn around (None: the location)
    centre_res: int | None = Field(None, ge=0, le=15)
    snap: Snap = "exact"
    min_area_fraction: float = Field(0.5, gt=0, le=1)

    def fine_reason(self, fine: Mapping[str, str]) -> str | None:
        if self.centre_res is None:
            return "circles centred on case locations"
        if self.centre_res > PUBLIC_RES:
            return f"circles centred on H3 cells of resolution {self.centre_res}"
        return None


class CellExtent(SnappableExtent):
    kind: Literal["cell"]
    triggered: ClassVar[bool] = True
    res: int = Field(12, ge=0, le=15)
    snap: Snap = "exact"
    min_area_fraction: float = Field(0.5, gt=0, le=1)

    def fine_reason(self, fine: Mapping[str, str]) -> str | None:
        return f"H3 cells of resolution {self.res}" if self.res > PUBLIC_RES else None


class GridDiskExtent(SnappableExtent):
    kind: Literal["grid_disk"]
    triggered: ClassVar[bool] = True
    res: int = Field(9, ge=0, le=15)
    k: int = Field(1, ge=0, le=50)
    snap: Snap = "exact"
    min_area_fraction: float = Field(0.5, gt=0, le=1)

    def fine_reason(self, fine: Mapping[str, str]) -> str | None:
        return f"rings of H3 cells of resolution {self.res}" if self.res > PUBLIC_RES else None


# the built-in kinds; registering a kind in geo.zones.registry widens it (accept_extents)
Extent = Annotated[
    CommunityExtent
    | ParentExtent
    | AllExtent
    | ParentRemainderExtent
    | BufferExtent
    | RadiusExtent
    | CellExtent
    | GridDiskExtent,
    Field(discriminator="kind"),
]
# the finest geometry riskmap publishes without a declaration: H3 cells of resolution 10 (about
# 0.015 km2, edge about 65 m), the resolution of community cells, and circles centred on them
PUBLIC_RES = 10


class StepDown(_Strict):
    to: str
    after_days: int = Field(ge=1, le=365)


class Level(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    label: str
    color: str
    extent: Extent
    trigger: Trigger | None = None
    lift_after_days: int = Field(1, ge=1, le=365)
    step_down: StepDown | None = None
    grouping: Literal["connected", "parent", "community"] = "connected"

    @model_validator(mode="after")
    def _check(self) -> Level:
        if not HEX_COLOR.match(self.color):
            raise ValueError(f"color {self.color!r}: expected a #rrggbb hex colour")
        if self.id == NONE_LEVEL:
            raise ValueError(f"level id {NONE_LEVEL!r} is reserved for places in no zone")
        kind, triggered = self.extent.kind, self.extent.triggered
        if triggered and self.trigger is None:
            raise ValueError(f"level {self.id!r}: extent {kind!r} needs a 'trigger'")
        if not triggered and self.trigger is not None:
            raise ValueError(f"level {self.id!r}: extent {kind!r} takes no 'trigger'")
        if self.step_down is not None and not triggered:
            raise ValueError(f"level {self.id!r}: 'step_down' needs a triggered extent")
        return self

    @property
    def geometric(self) -> bool:
        """Drawn as exact geometry (not whole communities)."""
        return self.extent.exact


class PublicPrecision(_Strict):
    """The finest geometry a rule publishes, and the authority that published at it.

    Needed by a rule with a level drawn finer than a community (see :attr:`Policy.fine_levels`);
    the service still coarsens such zones for the public when they hold few cases."""

    geometry: Literal["building", "home"] = Field(
        description="building: H3 cells finer than res 10 (a building); home: circles centred "
        "on case locations or on cells finer than res 10"
    )
    source: str = Field(min_length=1, description="who published zones at this precision")


class Policy(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    name: str
    source: str
    notes: tuple[str, ...] = ()
    levels: tuple[Level, ...] = Field(min_length=1)
    none_color: str = "#95a5a6"
    public_precision: PublicPrecision | None = None

    @model_validator(mode="after")
    def _check(self) -> Policy:
        seen: list[str] = []
        for lv in self.levels:
            if lv.id in seen:
                raise ValueError(f"level id {lv.id!r} appears twice")
            for a in getattr(lv.extent, "around", ()):
                if a not in seen:
                    raise ValueError(
                        f"level {lv.id!r}: 'around' names {a!r}, expected one of the levels "
                        f"listed above it: {seen}"
                    )
            seen.append(lv.id)
        ids = [lv.id for lv in self.levels]
        for i, lv in enumerate(self.levels):
            if lv.step_down is not None:
                if lv.step_down.to not in ids[i + 1 :]:
                    raise ValueError(
                        f"level {lv.id!r}: step_down.to {lv.step_down.to!r}, expected a lower "
                        f"level: {ids[i + 1 :]}"
                    )
                target = self.levels[ids.index(lv.step_down.to)]
                if target.geometric != lv.geometric:
                    raise ValueError(
                        f"level {lv.id!r}: step_down.to {target.id!r} must be drawn the same way"
                        " (both per community or both exact geometry)"
                    )
        if not HEX_COLOR.match(self.none_color):
            raise ValueError(f"none_color {self.none_color!r}: expected a #rrggbb hex colour")
        fine = self.fine_levels
        if fine and self.public_precision is None:
            lv_id, why = next(iter(fine.items()))
            raise ValueError(
                f"level {lv_id!r} publishes geometry finer than a community ({why}; the finest "
                f"undeclared precision is an H3 cell of resolution {PUBLIC_RES}): declare it with "
                "'public_precision: {geometry: building or home, source: \"...\"}', naming the "
                "authority that published zones at that precision"
            )
        return self

    @property
    def fine_levels(self) -> dict[str, str]:
        """Levels drawn finer than a community, with the reason: exact H3 cells or rings of
        cells finer than :data:`PUBLIC_RES`, circles centred on case locations or on cells
        finer than it, and exact buffers or step-downs of such levels (they keep the same
        centres)."""
        out: dict[str, str] = {}
        for lv in self.levels:
            why = lv.extent.fine_reason(out) if lv.geometric else None
            if why is None:
                src = [
                    h.id
                    for h in self.levels
                    if h.step_down is not None and h.step_down.to == lv.id and h.id in out
                ]
                if src and lv.geometric:
                    why = f"areas stepped down from level {src[0]!r}"
            if why is not None:
                out[lv.id] = why
        return out

    @property
    def level_ids(self) -> list[str]:
        return [lv.id for lv in self.levels]

    def level(self, level_id: str) -> Level:
        for lv in self.levels:
            if lv.id == level_id:
                return lv
        raise KeyError(level_id)

    @property
    def levels_low_first(self) -> list[Level]:
        """The levels, lowest first: the level of rank k is ``levels_low_first[k - 1]``."""
        return list(reversed(self.levels))

    @property
    def ids_by_rank(self) -> list[str]:
        """Level id of each rank: ``none`` (0), then the levels from the lowest to the highest."""
        return [NONE_LEVEL] + [lv.id for lv in self.levels_low_first]

    def rank(self, level_id: str) -> int:
        """0 for ``none``, len(levels) for the highest level."""
        if level_id == NONE_LEVEL:
            return 0
        return len(self.levels) - self.level_ids.index(level_id)

    def label(self, level_id: str) -> str:
        return NONE_LABEL if level_id == NONE_LEVEL else self.level(level_id).label

    def color(self, level_id: str) -> str:
        return self.none_color if level_id == NONE_LEVEL else self.level(level_id).color


def accept_extents(specs: list[type[ExtentSpec]]) -> None:
    """Validate rule files' ``extent`` against these models (by ``kind``): called by the zone
    engine's registry when an extent kind is registered."""
    union: Any = specs[0]
    for spec in specs[1:]:
        union = union | spec
    Level.model_fields["extent"].annotation = union
    Level.model_rebuild(force=True)
    Policy.model_rebuild(force=True)


def hex_to_rgb(color: str) -> tuple[int, int, int]:
    return (int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16))


def _format_validation_error(where: str, err: ValidationError) -> str:
    lines = [f"{where}: invalid rule file"]
    errors = err.errors()
    locs = [tuple(str(p) for p in e["loc"]) for e in errors]
    for e, loc in zip(errors, locs, strict=True):
        # an error of a container caused by errors inside it says nothing more
        if any(other[: len(loc)] == loc and other != loc for other in locs):
            continue
        key = ".".join(loc) or "(top level)"
        value = e.get("input")
        shown = repr(value) if not isinstance(value, dict | list) else "{...}"
        if len(shown) > 80:
            shown = shown[:77] + "..."
        lines.append(f"  key {key}: value {shown}: {e['msg']}")
    return "\n".join(lines)


def parse_policy(text: str, where: str = "<rule>") -> Policy:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise PolicyError(f"{where}: not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise PolicyError(f"{where}: expected a mapping with keys id, name, source, levels")
    try:
        return Policy.model_validate(raw)
    except ValidationError as e:
        raise PolicyError(_format_validation_error(where, e)) from None


def preset_names() -> list[str]:
    root = resources.files("riskmap.data") / "policies"
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml"))


@lru_cache(maxsize=64)
def _load_preset(name: str) -> Policy:
    f = resources.files("riskmap.data") / "policies" / f"{name}.yaml"
    return parse_policy(f.read_text(encoding="utf-8"), where=f"preset {name}")


def load_policy(name_or_path: str | Path) -> Policy:
    """A preset by name (``cn-three-zone``) or a rule file by path."""
    s = str(name_or_path)
    if s in preset_names():
        return _load_preset(s)
    p = Path(s)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.is_file():
            raise UnknownPolicyError(f"rule file {s} does not exist")
        return parse_policy(p.read_text(encoding="utf-8"), where=str(p))
    raise UnknownPolicyError(
        f"unknown policy {s!r}: expected a preset ({', '.join(preset_names())}) "
        "or the path of a .yaml rule file"
    )


def policy_key(policy: Policy) -> str:
    """A rule's key in the store: the hash of its whole definition."""
    return hashlib.sha1(policy.model_dump_json().encode()).hexdigest()
