"""Who the audit log names: key creation by the CLI (the local operator) and over HTTP (the
admin key); failed authentications audited and limited per client, and the audit log bounded
however many fail (both backends where a store is involved)."""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import riskmap.api.auth as auth_module
from riskmap.api.auth import AUDIT_ROWS_PER_MINUTE, AuthFailures, auth_failures, client_key
from riskmap.api.cli import app as cli
from riskmap.api.deps import service_of
from riskmap.api.main import app
from riskmap.api.settings import Settings
from riskmap.api.store import Store
from tests.helpers import running

LIMIT = 4


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def env(store_url: str) -> Iterator[tuple[Store, dict[str, str], Clock]]:
    """The app on an empty store of each backend with one key of each role (made by the CLI's
    operator), LIMIT failures a minute per client, and a clock the test moves."""
    store = Store.open(store_url)
    keys = {r: store.create_key(r, f"test {r}", by="cli:test")[1] for r in ("officer", "admin")}
    settings = Settings(database_url=store_url, auth_failures_per_minute=LIMIT)
    clock = Clock()
    try:
        with running(settings):
            auth_failures(service_of(app, settings)).clock = clock
            yield store, keys, clock
    finally:
        store.close()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def rows(store: Store, action: str) -> list[dict[str, object]]:
    return [r for r in store.audit_log() if r["action"] == action]


def test_cli_key_changes_name_the_local_operator(tmp_path: Path) -> None:
    db = str(tmp_path / "r.db")
    runner = CliRunner()
    made = runner.invoke(cli, ["--db", db, "keys", "create", "--role", "analyst", "--name", "x"])
    assert made.exit_code == 0, made.output
    key = made.stdout.strip()
    store = Store.open(db)
    (key_id, role) = store.check_key(key) or ("", "")
    assert role == "analyst"
    gone = runner.invoke(cli, ["--db", db, "keys", "revoke", key_id])
    assert gone.exit_code == 0, gone.output
    log = store.audit_log()
    me = f"cli:{getpass.getuser()}"
    assert [(r["action"], r["actor"], r["key_id"]) for r in log] == [
        ("keys.create", me, None),
        ("keys.revoke", me, None),
    ]
    assert f"key_id={key_id}" in str(log[0]["detail"]) and key not in str(log)


def test_http_key_creation_names_the_admin_key(env) -> None:  # type: ignore[no-untyped-def]
    store, keys, _ = env
    client = TestClient(app)
    admin_id = store.check_key(keys["admin"])[0]
    made = client.post("/v1/keys", json={"role": "officer"}, headers=bearer(keys["admin"]))
    assert made.status_code == 201
    new_id = made.json()["key_id"]
    created = [r for r in rows(store, "keys.create") if f"key_id={new_id}" in str(r["detail"])]
    assert [(r["actor"], r["key_id"]) for r in created] == [(admin_id, admin_id)]
    assert client.delete(f"/v1/keys/{new_id}", headers=bearer(keys["admin"])).status_code == 204
    assert rows(store, "keys.revoke")[-1]["actor"] == admin_id
    # the fixture's keys were made by the CLI's operator
    assert {r["actor"] for r in rows(store, "keys.create")} == {"cli:test", admin_id}


def test_failed_authentications_are_audited_without_the_key(env) -> None:  # type: ignore[no-untyped-def]
    store, keys, clock = env
    officer_id = store.check_key(keys["officer"])[0]
    revoked_id, revoked = store.create_key("officer", "old", by="cli:test")
    store.revoke_key(revoked_id, by="cli:test")
    wrong = f"rk_{officer_id}_{'x' * 43}"
    tries = [
        ("GET", "/v1/keys", {}, 401, "no key"),
        ("GET", "/v1/keys", bearer("rk_zzzz_secretsecret"), 401, "unknown key (sha256 "),
        ("DELETE", "/v1/keys/abcdef12", bearer(wrong), 401, f"wrong secret (key {officer_id}, "),
        ("GET", "/v1/audit", bearer(revoked), 401, f"revoked key (key {revoked_id}, "),
        ("GET", "/v1/keys", {"Authorization": "Basic dXNlcjpwdw=="}, 401, "not a Bearer key"),
        ("GET", "/v1/aggregates/cases", bearer("garbage"), 401, "malformed key (sha256 "),
        ("GET", "/v1/keys", bearer(keys["officer"]), 403, f"key {officer_id} has role officer"),
    ]
    for i, (method, path, headers, code, _) in enumerate(tries):
        clock.now += 30 * (i % 2)  # spread over minutes: LIMIT is not reached here
        client = TestClient(app, client=(f"10.0.0.{i}", 5000))
        assert client.request(method, path, headers=headers).status_code == code, path
    failed = rows(store, "auth.failed")
    assert len(failed) == len(tries)
    for row, (method, _, _, _, reason), i in zip(failed, tries, range(len(tries)), strict=True):
        assert reason in str(row["detail"]) and f" from 10.0.0.{i}: " in str(row["detail"])
        assert str(row["detail"]).startswith(method)
        assert row["actor"] == (officer_id if "has role" in reason else f"client:10.0.0.{i}")
    # routes by their template, never the path asked for; no presented key or secret stored
    assert "DELETE /v1/keys/{key_id} from" in str(failed[2]["detail"])
    text = str(store.audit_log())
    for secret in ("secretsecret", "x" * 43, revoked.split("_", 2)[2], "dXNlcjpwdw==", "garbage"):
        assert secret not in text
    # the admin sees them
    log = TestClient(app).get("/v1/audit", headers=bearer(keys["admin"])).json()
    assert sum(r["action"] == "auth.failed" for r in log) == len(tries)
    assert {"at", "actor", "key_id", "action", "detail"} <= set(log[0])


def test_failures_are_limited_per_client(env) -> None:  # type: ignore[no-untyped-def]
    store, keys, clock = env
    attacker = TestClient(app, client=("203.0.113.9", 4000))
    other = TestClient(app, client=("198.51.100.7", 4000))
    for i in range(LIMIT):
        r = attacker.get("/v1/keys", headers=bearer(f"rk_{i:08x}_guess"))
        assert r.status_code == 401
    clock.now += 10
    # the limit is reached: refused without checking the key, even a right one
    for key in ("rk_00000009_guess", keys["admin"], None):
        r = attacker.get("/v1/keys", headers=bearer(key) if key else {})
        assert r.status_code == 429, r.text
        assert r.headers["retry-after"] == "50" and "failed authentications" in r.json()["detail"]
    r = attacker.get("/v1/aggregates/cases", headers=bearer(keys["admin"]))  # any key-taking route
    assert r.status_code == 429
    assert attacker.get("/healthz").status_code == 200  # routes without keys are not limited
    assert attacker.get("/v1/aggregates/cases").status_code == 200
    # other clients are not limited
    assert other.get("/v1/keys", headers=bearer(keys["admin"])).status_code == 200
    # LIMIT failure rows and one row for the limit, however many more tries
    assert len(rows(store, "auth.failed")) == LIMIT
    limited = rows(store, "auth.limited")
    assert len(limited) == 1 and limited[0]["actor"] == "client:203.0.113.9"
    assert f"more than {LIMIT} failed authentications" in str(limited[0]["detail"])
    # a minute after the first failure, the client may try again
    clock.now += 50
    assert attacker.get("/v1/keys", headers=bearer(keys["admin"])).status_code == 200
    assert attacker.get("/v1/keys", headers=bearer("rk_1_x")).status_code == 401


def test_audit_rows_are_bounded_however_many_clients_fail(
    env, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    store, _, clock = env
    cap = 5
    monkeypatch.setattr(auth_module, "AUDIT_ROWS_PER_MINUTE", cap)
    clients = 3 * cap
    for i in range(clients):  # many clients, each past its own limit
        client = TestClient(app, client=(f"192.0.2.{i}", 1))
        codes = [client.get("/v1/keys").status_code for _ in range(LIMIT + 2)]
        assert codes == [401] * LIMIT + [429] * 2
    auth_rows = [r for r in store.audit_log() if str(r["action"]).startswith("auth.")]
    assert len(auth_rows) == cap + 1 and auth_rows[-1]["action"] == "auth.flood"
    clock.now += 61
    assert TestClient(app, client=("192.0.2.200", 1)).get("/v1/keys").status_code == 401
    unrecorded = rows(store, "auth.unrecorded")
    assert len(unrecorded) == 1
    # every failure and first refusal of the minute before, less the rows written
    events = clients * LIMIT + clients
    assert str(unrecorded[0]["detail"]).startswith(f"{events - cap} more failed")
    assert rows(store, "auth.failed")[-1]["actor"] == "client:192.0.2.200"


def test_audit_slots_and_memory_of_clients() -> None:
    clock = Clock()
    guard = AuthFailures(clock)
    slots = [guard.audit_slot(clock()) for _ in range(AUDIT_ROWS_PER_MINUTE + 3)]
    assert slots[:AUDIT_ROWS_PER_MINUTE] == [("row", 0)] * AUDIT_ROWS_PER_MINUTE
    assert slots[AUDIT_ROWS_PER_MINUTE:] == [("notice", 0), ("", 0), ("", 0)]
    clock.now += 60
    assert guard.audit_slot(clock()) == ("row", 3)
    # refusals: only after `limit` failures, for the rest of the client's minute
    assert guard.refusal("a", 2, clock()) == (0.0, False)
    guard.failed("a", clock())
    guard.failed("a", clock())
    clock.now += 15
    assert guard.refusal("a", 2, clock()) == (45.0, True)
    assert guard.refusal("a", 2, clock()) == (45.0, False)
    assert guard.refusal("a", 3, clock()) == (0.0, False)
    clock.now += 45
    assert guard.refusal("a", 2, clock()) == (0.0, False)


def test_clients_remembered_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth_module, "MAX_CLIENTS", 4)
    clock = Clock()
    guard = AuthFailures(clock)
    for c in "abcd":
        guard.failed(c, clock())
    clock.now += 61
    guard.failed("e", clock())  # the past minute's clients are forgotten
    assert guard.refusal("a", 1, clock()) == (0.0, False)
    assert guard.refusal("e", 1, clock())[0] > 0
    for c in "fgh":
        guard.failed(c, clock())
    guard.failed("i", clock())  # all live: the oldest half is forgotten
    assert [guard.refusal(c, 1, clock())[0] > 0 for c in "efghi"] == [
        False,
        False,
        True,
        True,
        True,
    ]


def test_ipv6_clients_count_by_their_64_network() -> None:
    assert client_key("2001:db8:1:2:3:4:5:6") == client_key("2001:db8:1:2:ffff::1")
    assert client_key("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:192.0.2.1") == "192.0.2.1" == client_key("192.0.2.1")
    assert client_key("testclient") == "testclient"
