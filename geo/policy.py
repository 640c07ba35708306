"""Zone rules as data: a rule file (YAML) names levels, how each is drawn and when it lifts.

The machinery in :mod:`geo.zones` combines a small set of building blocks:

* extent ``community``: the community containing a qualifying case location (needs a trigger);
* extent ``buffer``: every community within ``distance_m`` metres of a community of the levels
  named in ``around`` (distances measured in a local metric projection);
* extent ``parent_remainder``: the rest of every parent unit (``subdistrict`` or ``district``)
  that contains a community of the levels in ``around``.

Levels are listed highest first; where several apply to one community the highest wins.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from geo._errors import PolicyError, UnknownPolicyError

CASE_TYPES = ("confirmed", "asymptomatic", "suspected", "close_contact")
ROLES = ("residence", "workplace", "frequent_activity", "visit")
HEX_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Trigger(_Strict):
    """Which case locations qualify."""

    case_types: tuple[Literal["confirmed", "asymptomatic", "suspected", "close_contact"], ...] = (
        "confirmed",
        "asymptomatic",
    )
    roles: tuple[Literal["residence", "workplace", "frequent_activity", "visit"], ...] = (
        "residence",
    )
    min_cases: int = Field(1, ge=1)


class CommunityExtent(_Strict):
    kind: Literal["community"]


class BufferExtent(_Strict):
    kind: Literal["buffer"]
    around: tuple[str, ...] = Field(min_length=1)
    distance_m: float = Field(gt=0, le=100_000)


class ParentRemainderExtent(_Strict):
    kind: Literal["parent_remainder"]
    parent: Literal["subdistrict", "district"]
    around: tuple[str, ...] = Field(min_length=1)


Extent = Annotated[
    CommunityExtent | BufferExtent | ParentRemainderExtent, Field(discriminator="kind")
]


class Level(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    label: str
    color: str
    extent: Extent
    trigger: Trigger | None = None
    lift_after_days: int | None = Field(None, ge=1, le=365)
    grouping: Literal["connected", "parent", "community"] = "connected"

    @model_validator(mode="after")
    def _check(self) -> Level:
        if not HEX_COLOR.match(self.color):
            raise ValueError(f"color {self.color!r}: expected a #rrggbb hex colour")
        if self.id == "none":
            raise ValueError("level id 'none' is reserved for places in no zone")
        if self.extent.kind == "community":
            if self.trigger is None:
                raise ValueError(f"level {self.id!r}: extent 'community' needs a 'trigger'")
            if self.lift_after_days is None:
                raise ValueError(f"level {self.id!r}: extent 'community' needs 'lift_after_days'")
        return self

    @property
    def rgb(self) -> tuple[int, int, int]:
        return hex_to_rgb(self.color)


class Policy(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    name: str
    source: str
    notes: tuple[str, ...] = ()
    levels: tuple[Level, ...] = Field(min_length=1)
    none_color: str = "#95a5a6"

    @model_validator(mode="after")
    def _check(self) -> Policy:
        seen: list[str] = []
        for lv in self.levels:
            if lv.id in seen:
                raise ValueError(f"level id {lv.id!r} appears twice")
            around = getattr(lv.extent, "around", ())
            for a in around:
                if a not in seen:
                    raise ValueError(
                        f"level {lv.id!r}: 'around' names {a!r}, expected one of the levels "
                        f"listed above it: {seen}"
                    )
            seen.append(lv.id)
        if not HEX_COLOR.match(self.none_color):
            raise ValueError(f"none_color {self.none_color!r}: expected a #rrggbb hex colour")
        return self

    @property
    def level_ids(self) -> list[str]:
        return [lv.id for lv in self.levels]

    def level(self, level_id: str) -> Level:
        for lv in self.levels:
            if lv.id == level_id:
                return lv
        raise KeyError(level_id)

    def rank(self, level_id: str) -> int:
        """0 for ``none``, len(levels) for the highest level."""
        if level_id == "none":
            return 0
        return len(self.levels) - self.level_ids.index(level_id)


def hex_to_rgb(color: str) -> tuple[int, int, int]:
    return (int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16))


def _format_validation_error(where: str, err: ValidationError) -> str:
    lines = [f"{where}: invalid rule file"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        value = e.get("input")
        shown = repr(value) if not isinstance(value, dict) else "{...}"
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
    root = resources.files("data") / "policies"
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml"))


@lru_cache(maxsize=64)
def _load_preset(name: str) -> Policy:
    root = resources.files("data") / "policies"
    f = root / f"{name}.yaml"
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
