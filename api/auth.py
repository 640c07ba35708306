"""API keys: ``Authorization: Bearer <key>`` and roles.

* ``officer``: writes cases, communities and hospital figures;
* ``analyst``: reads case-level aggregates below the public minimum count and ingest reports;
* ``admin``: manages keys (and may do everything else).

Failed authentications (no key, a malformed, unknown, wrong or revoked key, a key of the wrong
role) are audited (``auth.failed``: the client's address, the route and the reason; never the
presented key, at most the first 8 hex digits of its SHA-256) and limited per client: after
``RISKMAP_AUTH_FAILURES_PER_MINUTE`` failures in a minute, the client's requests that present
or need a key answer 429 with ``Retry-After`` until the minute is over, without looking at the
key (one ``auth.limited`` row). The audit log grows by at most that many rows plus one per
client a minute, and by at most :data:`AUDIT_ROWS_PER_MINUTE` ``auth.*`` rows (plus two) in all
clients together: beyond, the failures are counted, one ``auth.flood`` row says so and one
``auth.unrecorded`` row gives their number (with the next row after the minute). The counts
live in the process (each server process counts its own).
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import logging
import math
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, HTTPException, Request

from riskmap.api.deps import ServiceDep, SettingsDep
from riskmap.api.service import RiskService
from riskmap.geo._errors import StoreError

ROLES = ("officer", "analyst", "admin")
WINDOW_S = 60.0
AUDIT_ROWS_PER_MINUTE = 1000  # failed-authentication rows a minute, all clients together
MAX_CLIENTS = 100_000  # clients remembered (past minutes forgotten first, then the oldest)

log = logging.getLogger("riskmap")


@dataclass(frozen=True)
class Caller:
    key_id: str
    role: str


@dataclass
class _Window:
    start: float
    failures: int = 0
    refused: int = 0


class AuthFailures:
    """Failed authentications per client in one-minute windows (from a client's first failure),
    and the number of audit rows they wrote, all clients together."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._clients: dict[str, _Window] = {}
        # all clients: failures = rows written (and the notice), refused = rows not written
        self._rows = _Window(start=-math.inf)

    def _window(self, client: str, now: float) -> _Window:
        w = self._clients.get(client)
        if w is None or now - w.start >= WINDOW_S:
            if len(self._clients) >= MAX_CLIENTS:  # forget past minutes, else the oldest half
                live = [(c, v) for c, v in self._clients.items() if now - v.start < WINDOW_S]
                self._clients = dict(live[-(MAX_CLIENTS // 2) :])
            w = self._clients[client] = _Window(start=now)
        return w

    def refusal(self, client: str, limit: int, now: float) -> tuple[float, bool]:
        """(seconds until the client may try again, or 0; whether this is its first refusal
        of the window)."""
        with self._lock:
            w = self._clients.get(client)
            if w is None or now - w.start >= WINDOW_S or w.failures < limit:
                return 0.0, False
            w.refused += 1
            return max(w.start + WINDOW_S - now, 1.0), w.refused == 1

    def failed(self, client: str, now: float) -> int:
        """Count one failure; the client's failures in the window, this one included."""
        with self._lock:
            w = self._window(client, now)
            w.failures += 1
            return w.failures

    def audit_slot(self, now: float) -> tuple[str, int]:
        """Whether a failure row may be written now: ``"row"``, ``"notice"`` (the last row of
        the minute says that the rest are only counted) or ``""``; and the number of rows left
        unwritten in the minute before (to be reported)."""
        with self._lock:
            r, skipped = self._rows, 0
            if now - r.start >= WINDOW_S:
                skipped = r.refused
                r = self._rows = _Window(start=now)
            if r.failures < AUDIT_ROWS_PER_MINUTE:
                r.failures += 1
                return "row", skipped
            if r.failures == AUDIT_ROWS_PER_MINUTE:  # this one is counted, not recorded
                r.failures += 1
                r.refused += 1
                return "notice", skipped
            r.refused += 1
            return "", skipped


_failures: weakref.WeakKeyDictionary[RiskService, AuthFailures] = weakref.WeakKeyDictionary()
_failures_lock = threading.Lock()


def auth_failures(service: RiskService) -> AuthFailures:
    """The failure counts of a service (they live as long as it)."""
    with _failures_lock:
        found = _failures.get(service)
        if found is None:
            found = _failures[service] = AuthFailures()
        return found


def _client(request: Request) -> str:
    from riskmap.api.settings import get_settings_of

    peer = request.client.host if request.client else "unknown"
    trusted = get_settings_of(request.app).trusted_proxies
    return client_address(peer, request.headers.get("x-forwarded-for"), trusted)


@functools.lru_cache(maxsize=16)
def _networks(trusted: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    out = []
    for part in trusted.split(","):
        if part.strip():
            out.append(ipaddress.ip_network(part.strip(), strict=False))
    return tuple(out)


def _trusted(address: str, networks: tuple[Any, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in n for n in networks)


def client_address(peer: str, forwarded_for: str | None, trusted: str) -> str:
    """The client a request comes from: the peer's address, unless the peer is one of the
    trusted proxies (RISKMAP_TRUSTED_PROXIES): then the right-most address of
    ``X-Forwarded-For`` that is not itself a trusted proxy (addresses further left were
    written by the client and may be forged)."""
    networks = _networks(trusted)
    if not networks or not forwarded_for or not _trusted(peer, networks):
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, networks):
            return hop
    return hops[0] if hops else peer


def client_key(address: str) -> str:
    """What failures are counted by: the address, or its /64 network for IPv6 (one host may
    hold a whole /64)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def _route(request: Request) -> str:
    """The method and route template (``DELETE /v1/keys/{key_id}``): never the raw path."""
    route = request.scope.get("route")
    return f"{request.method} {getattr(route, 'path', '?')}"


def _audit(service: RiskService, actor: str, action: str, detail: str) -> None:
    """An audit row that must not turn a refusal into a 503 when the store fails."""
    try:
        service.store.audit(actor, action, detail)
    except StoreError as e:
        log.error("cannot audit %s (%s): %s", action, detail, e)


def _audit_failure(
    service: RiskService, guard: AuthFailures, actor: str, action: str, detail: str
) -> None:
    """An ``auth.*`` row, within the rows a minute all clients together may write."""
    slot, skipped = guard.audit_slot(guard.clock())
    if skipped:
        _audit(
            service,
            "client:*",
            "auth.unrecorded",
            f"{skipped} more failed authentications in the minute before were counted, not "
            f"recorded one by one (more than {AUDIT_ROWS_PER_MINUTE} a minute)",
        )
    if slot == "row":
        _audit(service, actor, action, detail)
    elif slot == "notice":
        _audit(
            service,
            "client:*",
            "auth.flood",
            f"more than {AUDIT_ROWS_PER_MINUTE} failed authentications in a minute: the rest "
            "of the minute are counted, not recorded one by one",
        )


def _refuse_if_limited(request: Request, service: RiskService, limit: int) -> None:
    """429 while the client has used up its failures of the minute (the key is not looked at)."""
    client = _client(request)
    guard = auth_failures(service)
    wait, first = guard.refusal(client_key(client), limit, guard.clock())
    if not wait:
        return
    if first:
        _audit_failure(
            service,
            guard,
            f"client:{client}",
            "auth.limited",
            f"{_route(request)} from {client}: more than {limit} failed authentications in a "
            f"minute; keys are not checked for {math.ceil(wait)} s",
        )
    raise HTTPException(
        429,
        f"too many failed authentications from this client (at most {limit} a minute); "
        f"try again in {math.ceil(wait)} s",
        headers={"Retry-After": str(math.ceil(wait))},
    )


def _failure(
    request: Request, service: RiskService, limit: int, reason: str, actor: str | None = None
) -> None:
    """Count and audit one failed authentication (at most ``limit`` rows a client a minute,
    even when concurrent requests slip past the refusal)."""
    client = _client(request)
    guard = auth_failures(service)
    if guard.failed(client_key(client), guard.clock()) > limit:
        return
    _audit_failure(
        service,
        guard,
        actor or f"client:{client}",
        "auth.failed",
        f"{_route(request)} from {client}: {reason}",
    )


def _fingerprint(key: str) -> str:
    return "sha256 " + hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()[:8]


def _caller(
    request: Request, service: RiskService, limit: int, authorization: str | None
) -> Caller:
    _refuse_if_limited(request, service, limit)
    if not authorization:
        _failure(request, service, limit, "no key")
        raise HTTPException(
            401,
            "this route needs an API key: Authorization: Bearer <key>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    scheme, _, key = authorization.partition(" ")
    key = key.strip()
    found = service.store.check_key(key) if scheme.lower() == "bearer" else None
    if found is None:
        if scheme.lower() != "bearer":
            reason = f"not a Bearer key ({_fingerprint(authorization)})"
        else:
            why, key_id = service.store.key_failure(key)
            reason = f"{why} ({f'key {key_id}, ' if key_id else ''}{_fingerprint(key)})"
        _failure(request, service, limit, reason)
        raise HTTPException(
            401, "invalid or revoked API key", headers={"WWW-Authenticate": "Bearer"}
        )
    return Caller(*found)


def require(*roles: str) -> Callable[..., Caller]:
    """A dependency that admits callers whose key has one of ``roles`` (admin always)."""

    def dep(
        request: Request,
        service: ServiceDep,
        settings: SettingsDep,
        authorization: Annotated[str | None, Header(description="Bearer <API key>")] = None,
    ) -> Caller:
        caller = _caller(request, service, settings.auth_failures_per_minute, authorization)
        if caller.role != "admin" and caller.role not in roles:
            needs = " or ".join(roles)
            _failure(
                request,
                service,
                settings.auth_failures_per_minute,
                f"key {caller.key_id} has role {caller.role}, needs {needs}",
                actor=caller.key_id,
            )
            raise HTTPException(
                403, f"a key with role {caller.role!r} may not do this (needs {needs})"
            )
        return caller

    return dep


def optional_caller(
    request: Request,
    service: ServiceDep,
    settings: SettingsDep,
    authorization: Annotated[
        str | None,
        Header(description="optional: Bearer <API key> of an analyst (or admin) sees every count"),
    ] = None,
) -> Caller | None:
    """The caller of a public route that shows more to some keys: None without a key."""
    if authorization is None:
        return None
    return _caller(request, service, settings.auth_failures_per_minute, authorization)


Officer = Annotated[Caller, Depends(require("officer"))]
Reader = Annotated[Caller, Depends(require("officer", "analyst"))]
Admin = Annotated[Caller, Depends(require("admin"))]
MaybeCaller = Annotated[Caller | None, Depends(optional_caller)]
