"""``GET /v1/policies`` and ``GET /v1/policies/{policy_id}``: the zone rules riskmap ships."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import DefaultPolicyDep, preset
from geo.policy import Policy, load_policy, preset_names

router = APIRouter(prefix="/v1/policies", tags=["policies"])


def _summary(p: Policy, active: str) -> dict[str, Any]:
    return {
        "id": p.id,
        "name": p.name,
        "active": p.id == active,
        "levels": [{"id": lv.id, "label": lv.label, "color": lv.color} for lv in p.levels],
    }


@router.get("", operation_id="list_policies")
def list_policies(active: DefaultPolicyDep) -> dict[str, Any]:
    """The presets, and which rule the service uses by default."""
    items = [_summary(load_policy(n), active.id) for n in preset_names()]
    if active.id not in preset_names():  # a custom rule file
        items.append(_summary(active, active.id))
    return {"default": active.id, "policies": items}


@router.get("/{policy_id}", operation_id="get_policy")
def get_policy(policy_id: str, active: DefaultPolicyDep) -> dict[str, Any]:
    """A rule in full: source, notes, levels and their building blocks."""
    p = active if policy_id == active.id else preset(policy_id)
    return p.model_dump(mode="json")
