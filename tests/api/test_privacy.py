"""No public route shows a case id, a case location or a count of cases below the minimum."""

from __future__ import annotations

import re

import pandas as pd
import shapely
from fastapi.testclient import TestClient

from tests.api.conftest import END

AT = END.isoformat()


def _params(path: str, client: TestClient, sample: tuple[float, float]) -> list[dict[str, str]]:
    lat, lon = sample
    if path in ("/v1/status", "/v1/status/history"):
        return [{"lat": str(lat), "lon": str(lon), "at": AT, "from": "2024-02-01", "to": AT}]
    if path.startswith("/v1/aggregates"):
        return [
            {"unit": u, "period": p, "week": w}
            for u in ("community", "subdistrict", "district")
            for p in ("week", "14d")
            for w in ("2024-W13", "2024-W09")
        ]
    return [
        {"at": AT, "from": "2024-02-01", "to": AT},
        {"at": AT, "policy": "india-containment"},
        {"at": AT, "policy": "hk-building"},
    ]


def _needs_key(op: dict) -> bool:  # type: ignore[type-arg]
    return any(
        p.get("name") == "authorization" and not p.get("description", "").startswith("optional")
        for p in op.get("parameters", [])
    )


def _check_counts(path: str, body: dict, minimum: int) -> None:  # type: ignore[type-arg]
    """Case counts shown to the public: 0 or at least the minimum, perturbed (checked against
    the analysts' exact view in test_aggregates)."""
    assert body["min_count"] == minimum and body["max_perturbation"] > 0
    for n in [u["cases"] for u in body["units"]] + [body["total"]]:
        assert n == 0 or n >= minimum, (path, n)


def test_public_routes_leak_no_case_data(client: TestClient, sample_dir) -> None:  # type: ignore[no-untyped-def]
    cases = pd.read_csv(sample_dir / "cases.csv", dtype=str)
    ids = set(cases["case_id"])
    coords = set(zip(cases["lat"], cases["lon"], strict=True))
    spec = client.get("/openapi.json").json()
    public = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if method != "get":
                continue
            if not _needs_key(op):
                public.append(path)
    assert {
        "/v1/status",
        "/v1/zones",
        "/v1/communities",
        "/v1/zones/history",
        "/v1/aggregates/cases",
    } <= set(public)
    sealed = client.get("/v1/zones", params={"at": AT, "level": "sealed"}).json()["features"][0]
    pt = shapely.geometry.shape(sealed["geometry"]).representative_point()
    id_pattern = re.compile(r"K\d{7}")
    _number = re.compile(r"-?\d+\.\d+")
    for path in public:
        concrete = path.replace("{policy_id}", "cn-three-zone")
        for params in _params(path, client, (pt.y, pt.x)):
            r = client.get(concrete, params=params)
            assert r.status_code == 200, (concrete, r.status_code)
            text = r.text
            found = set(id_pattern.findall(text)) & ids
            assert not found, f"{concrete} shows case ids {sorted(found)[:3]}"
            numbers = _number.findall(text)
            pairs = set(zip(numbers, numbers[1:], strict=False))
            leaked = {(la, lo) for la, lo in coords if (lo, la) in pairs or (la, lo) in pairs}
            assert not leaked, f"{concrete} shows case locations {sorted(leaked)[:3]}"
            if concrete.startswith("/v1/aggregates"):  # counts: none below the minimum
                _check_counts(concrete, r.json(), 5)
                continue
            # no other route publishes a count of cases
            if not concrete.startswith("/v1/policies"):  # rule conditions say "cases": {min}
                assert '"cases"' not in text and "case_count" not in text, concrete
    # the routes that need a key do refuse without one
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if _needs_key(op):
                url = re.sub(r"\{[^}]+\}", "1", path)
                assert client.request(method.upper(), url).status_code == 401, (method, path)
