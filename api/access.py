"""Which rule a request asks for, and whether it sees the exact zones or the public ones.

Anonymous callers may name only the service's public rules (``RISKMAP_POLICY`` and
``RISKMAP_POLICIES``) and see the public view of them (:mod:`geo.precision`); callers with a
valid API key of any role may name any preset and see the exact zones.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated

from fastapi import Depends, HTTPException, Query

from riskmap.api.auth import MaybeCaller
from riskmap.api.bounds import DateRange, date_range
from riskmap.api.deps import ServiceDep, SettingsDep, preset
from riskmap.api.service import Snapshot
from riskmap.api.settings import Settings
from riskmap.geo._errors import PolicyError, UnknownPolicyError
from riskmap.geo.policy import Policy, load_policy


@lru_cache(maxsize=8)
def _public_rules(policy: str, policies: str) -> tuple[Policy, ...]:
    out: list[Policy] = []
    for i, name in enumerate([policy, *(p.strip() for p in policies.split(",") if p.strip())]):
        try:
            p = load_policy(name)
        except (UnknownPolicyError, PolicyError) as e:
            where = "RISKMAP_POLICY" if i == 0 else "RISKMAP_POLICIES"
            raise type(e)(f"{where}: {e}") from None
        if p.id not in [q.id for q in out]:
            out.append(p)
    return tuple(out)


def public_rules(settings: Settings) -> tuple[Policy, ...]:
    """The service's rule first, then the other rules the public may request."""
    return _public_rules(settings.policy, settings.policies)


@dataclass(frozen=True)
class Access:
    policy: Policy
    keyed: bool  # a valid API key: the exact zones
    min_count: int  # RISKMAP_MIN_PUBLIC_COUNT

    @property
    def public_min(self) -> int | None:
        """The minimum count of the public view, None for keyed callers (exact zones)."""
        return None if self.keyed else self.min_count

    def snapshot(self, service: ServiceDep, at: dt.date) -> Snapshot:
        """The zones this caller may see."""
        if self.keyed:
            return service.snapshot(self.policy, at)
        return service.public_snapshot(self.policy, at, self.min_count)


def get_access(
    settings: SettingsDep,
    caller: MaybeCaller,
    policy: Annotated[
        str | None,
        Query(
            description="a preset id (GET /v1/policies); default: the service's rule. Without "
            "an API key only the rules GET /v1/policies marks public"
        ),
    ] = None,
) -> Access:
    rules = public_rules(settings)
    chosen = rules[0] if policy is None else next((r for r in rules if r.id == policy), None)
    if chosen is None:
        chosen = preset(policy)  # type: ignore[arg-type]  # 404 when unknown
        if caller is None:
            raise HTTPException(
                401,
                f"policy {policy!r} is not public on this service (public: "
                f"{', '.join(r.id for r in rules)}); other presets need an API key: "
                "Authorization: Bearer <key>",
                headers={"WWW-Authenticate": "Bearer"},
            )
    return Access(chosen, caller is not None, settings.min_public_count)


AccessDep = Annotated[Access, Depends(get_access)]


def get_dates(service: ServiceDep, access: AccessDep, settings: SettingsDep) -> DateRange:
    """The dates a request may ask about under the rule it was given (see :mod:`api.bounds`)."""
    return date_range(service, access.policy, settings.max_history_days)


DatesDep = Annotated[DateRange, Depends(get_dates)]


def get_at(
    dates: DatesDep,
    service: ServiceDep,
    at: Annotated[
        dt.date | None,
        Query(
            description="as-of date (YYYY-MM-DD); defaults to today (RISKMAP_TIMEZONE); from "
            "the first report date to the last plus the rule's longest lift (or today)",
            examples=["2024-03-01"],
        ),
    ] = None,
) -> dt.date:
    return dates.check(at or service.today(), "at")


AtDep = Annotated[dt.date, Depends(get_at)]
