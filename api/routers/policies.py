"""``GET /v1/policies`` and ``GET /v1/policies/{policy_id}``: the zone rules riskmap ships."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from riskmap.api.access import public_rules
from riskmap.api.deps import DefaultPolicyDep, SettingsDep, preset
from riskmap.geo.policy import Policy, load_policy, preset_names

router = APIRouter(prefix="/v1/policies", tags=["policies"])


def _precision(p: Policy) -> dict[str, Any] | None:
    return None if p.public_precision is None else p.public_precision.model_dump()


def _summary(p: Policy, active: str, public: set[str]) -> dict[str, Any]:
    return {
        "id": p.id,
        "name": p.name,
        "active": p.id == active,
        "public": p.id in public,
        "public_precision": _precision(p),
        "levels": [{"id": lv.id, "label": lv.label, "color": lv.color} for lv in p.levels],
    }


@router.get("", operation_id="list_policies")
def list_policies(active: DefaultPolicyDep, settings: SettingsDep) -> dict[str, Any]:
    """The presets, which rule the service uses by default, and which ones callers without
    an API key may request (``public``: RISKMAP_POLICY and RISKMAP_POLICIES)."""
    rules = public_rules(settings)
    public = {r.id for r in rules}
    items = [_summary(load_policy(n), active.id, public) for n in preset_names()]
    listed = {i["id"] for i in items}
    items += [_summary(r, active.id, public) for r in rules if r.id not in listed]  # rule files
    return {"default": active.id, "public": [r.id for r in rules], "policies": items}


@router.get("/{policy_id}", operation_id="get_policy")
def get_policy(policy_id: str, active: DefaultPolicyDep, settings: SettingsDep) -> dict[str, Any]:
    """A rule in full: source, notes, levels and their building blocks, its declared public
    precision, and whether callers without an API key may request it."""
    rules = {r.id: r for r in public_rules(settings)}
    p = active if policy_id == active.id else rules.get(policy_id) or preset(policy_id)
    return p.model_dump(mode="json") | {"public": p.id in rules}
