"""The admin API on a live relay: off without a token, 401 without the right one, keys issued
(secret shown once, only its hash stored), changed, revoked and topped up. Usage and the
ledger are in test_admin_usage.py."""

from __future__ import annotations

import hashlib
import json
import time
import urllib.request
from datetime import datetime
from typing import Any

import msgspec
import pytest

from onemin_relay.gateway.keys import usd_to_nanos
from tests.admin.conftest import CHAT, TOKEN, Relay, create, is_iso_utc

KEY_FIELDS = {
    "id", "object", "name", "kind", "prefix", "project", "models", "rpm", "tpm", "expires_at",
    "created_at", "revoked_at", "balance_usd", "reserved_usd", "spent_usd", "available_usd",
    "status",
}  # fmt: skip


# -- switched off, and locked ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/admin/v1/keys"),
        ("POST", "/admin/v1/keys"),
        ("GET", "/admin/v1/keys/key_123"),
        ("DELETE", "/admin/v1/keys/key_123"),
        ("GET", "/admin/v1/usage"),
        ("GET", "/admin/v1/ledger"),
        ("GET", "/admin"),
    ],
)
def test_without_an_admin_token_every_admin_route_is_404(
    no_admin: Relay, method: str, path: str
) -> None:
    for token in (None, "anything"):
        status, body = no_admin.call(method, path, {"name": "x"}, token=token)
        assert status == 404, body
        assert body["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    "header", [None, "Bearer wrong", "Bearer t0ken2", "Bearer T0KEN", "Basic t0ken", "t0ken"]
)
def test_a_missing_or_wrong_bearer_is_401_and_changes_nothing(
    admin: Relay, header: str | None
) -> None:
    before = admin.run(admin.store.keys())
    for method, path in (("GET", "/admin/v1/keys"), ("POST", "/admin/v1/keys")):
        status, body = admin.call(
            method, path, {"name": "intruder"}, token=None, authorization=header
        )
        assert status == 401, body
        assert body["error"]["code"] == "invalid_api_key"
        assert TOKEN not in str(body)
    assert admin.run(admin.store.keys()) == before


def test_unknown_admin_paths_are_404_behind_the_token(admin: Relay) -> None:
    for method, path in (
        ("GET", "/admin/v1/models"),
        ("POST", "/admin/v1/chat/completions"),
        ("PUT", "/admin/v1/keys"),
    ):
        assert admin.call(method, path, {}, token=None)[0] == 401
        status, body = admin.call(method, path, {})
        assert status == 404 and body["error"]["code"] == "not_found", body


# -- issuing keys --------------------------------------------------------------------------


def test_create_shows_the_secret_once_and_the_store_holds_only_its_hash(admin: Relay) -> None:
    created = create(admin, balance_usd=5, models=["gpt-*"], rpm=60, tpm=10_000)
    secret = created.pop("key")
    assert secret.startswith("sk-onemin-") and len(secret) > 30
    assert set(created) == KEY_FIELDS
    assert created["prefix"] == secret[: len("sk-onemin-") + 4] + "…"
    assert created["balance_usd"] == created["available_usd"] == 5.0
    assert (created["rpm"], created["tpm"], created["models"]) == (60, 10_000, ["gpt-*"])

    for path in (f"/admin/v1/keys/{created['id']}", "/admin/v1/keys"):
        status, body = admin.call("GET", path)
        assert status == 200
        assert secret not in str(body) and secret[10:] not in str(body)
        assert "hash" not in str(body) and '"key"' not in str(body)
    _, shown = admin.call("GET", f"/admin/v1/keys/{created['id']}")
    assert shown == created

    record = admin.run(admin.store.key(created["id"]))
    assert record is not None
    assert record.hash == hashlib.sha256(secret.encode()).hexdigest()
    for value in msgspec.structs.astuple(record):
        assert secret not in str(value) and secret[10:] not in str(value)
    files = list(admin.data_dir.glob("onemin-relay.db*"))
    assert files and all(secret[10:].encode() not in f.read_bytes() for f in files)


def test_create_defaults_to_a_managed_key_with_nothing_set(admin: Relay) -> None:
    created = create(admin)
    assert created["kind"] == "managed" and created["key"].startswith("sk-onemin-")
    assert created["project"] == "default" and created["models"] == []
    assert created["rpm"] is None and created["tpm"] is None and created["expires_at"] is None
    assert created["revoked_at"] is None and created["status"] == "active"
    assert created["balance_usd"] == created["spent_usd"] == created["reserved_usd"] == 0.0
    assert is_iso_utc(created["created_at"])
    assert abs(datetime.fromisoformat(created["created_at"]).timestamp() - time.time()) < 60


def test_create_a_relay_key_with_an_expiry_and_project(admin: Relay) -> None:
    created = create(admin, kind="relay", expires_at="2031-02-03T04:05:06Z", project="ops")
    assert created["kind"] == "relay" and created["key"].startswith("rk-onemin-")
    assert created["expires_at"] == "2031-02-03T04:05:06Z"
    assert created["project"] == "ops"
    by_epoch = create(admin, expires_at=1_950_000_000)
    assert datetime.fromisoformat(by_epoch["expires_at"]).timestamp() == 1_950_000_000
    past = create(admin, expires_at="2020-01-01")
    assert past["status"] == "expired"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": 5}, "name"),
        ({"name": "x", "kind": "boss"}, "kind"),
        ({"name": "x", "balance_usd": -1}, "balance_usd"),
        ({"name": "x", "balance_usd": "5"}, "balance_usd"),
        ({"name": "x", "models": "gpt-4o"}, "models"),
        ({"name": "x", "models": ["gpt-4o", ""]}, "models[1]"),
        ({"name": "x", "models": ["a,b"]}, "models[0]"),
        ({"name": "x", "rpm": -1}, "rpm"),
        ({"name": "x", "tpm": 1.5}, "tpm"),
        ({"name": "x", "expires_at": "soon"}, "expires_at"),
        ({"name": "x", "expires_at": -5}, "expires_at"),
        ({"name": "x", "expires_at": True}, "expires_at"),
        ({"name": "x", "project": ""}, "project"),
        ({"name": "x", "colour": "blue"}, "colour"),
        ({"name": "x", "kind": "relay", "balance_usd": 3}, "balance_usd"),
        (["name"], None),
    ],
)
def test_create_rejects_bad_input_naming_the_field(
    admin: Relay, body: Any, param: str | None
) -> None:
    before = len(admin.run(admin.store.keys()))
    status, answer = admin.call("POST", "/admin/v1/keys", body)
    assert status == 400, answer
    assert answer["error"]["type"] == "invalid_request_error"
    assert answer["error"]["param"] == param
    assert len(admin.run(admin.store.keys())) == before


@pytest.mark.parametrize("raw", [b"", b"{not json", b"null"])
def test_create_rejects_a_body_that_is_not_a_json_object(admin: Relay, raw: bytes) -> None:
    status, answer = admin.call("POST", "/admin/v1/keys", raw=raw)
    assert status == 400, answer
    assert answer["error"]["code"] == "invalid_request"


# -- reading, changing, revoking, topping up -------------------------------------------------


def test_list_and_show(admin: Relay) -> None:
    first, second = create(admin, name="first"), create(admin, name="second")
    status, listed = admin.call("GET", "/admin/v1/keys")
    assert status == 200 and listed["object"] == "list"
    ids = [key["id"] for key in listed["data"]]
    assert ids.index(first["id"]) < ids.index(second["id"]), "oldest first"
    assert all(set(key) == KEY_FIELDS for key in listed["data"])
    status, shown = admin.call("GET", f"/admin/v1/keys/{second['id']}")
    assert status == 200 and shown["name"] == "second"
    status, missing = admin.call("GET", "/admin/v1/keys/key_nope")
    assert status == 404 and missing["error"]["code"] == "not_found"


def test_patch_changes_only_what_it_names(admin: Relay) -> None:
    key = create(admin, models=["gpt-*"], rpm=5)
    path = f"/admin/v1/keys/{key['id']}"
    changes = {"name": "renamed", "models": ["claude-*", "o*"], "tpm": 900, "project": "p2"}
    status, changed = admin.call("PATCH", path, changes)
    assert status == 200, changed
    assert (changed["name"], changed["models"], changed["tpm"]) == (
        "renamed",
        ["claude-*", "o*"],
        900,
    )
    assert (changed["project"], changed["rpm"]) == ("p2", 5), "rpm was not named: unchanged"
    status, cleared = admin.call("PATCH", path, {"rpm": None, "models": []})
    assert status == 200 and cleared["rpm"] is None and cleared["models"] == []
    status, expired = admin.call("PATCH", path, {"expires_at": "2001-01-01T00:00:00Z"})
    assert status == 200 and expired["status"] == "expired"
    status, renewed = admin.call("PATCH", path, {"expires_at": None})
    assert status == 200 and renewed["status"] == "active" and renewed["expires_at"] is None
    status, same = admin.call("PATCH", path, {})
    assert status == 200 and same == renewed
    assert admin.call("GET", path)[1] == renewed


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"kind": "relay"}, "kind"),
        ({"balance_usd": 3}, "balance_usd"),
        ({"rpm": -2}, "rpm"),
        ({"name": ""}, "name"),
        ({"models": ["a,b"]}, "models[0]"),
        ({"expires_at": "tomorrow"}, "expires_at"),
    ],
)
def test_patch_rejects_bad_changes(admin: Relay, body: dict[str, Any], param: str) -> None:
    key = create(admin)
    status, answer = admin.call("PATCH", f"/admin/v1/keys/{key['id']}", body)
    assert status == 400, answer
    assert answer["error"]["param"] == param
    assert admin.call("GET", f"/admin/v1/keys/{key['id']}")[1] == {
        k: v for k, v in key.items() if k != "key"
    }


def test_patch_an_unknown_key_is_404(admin: Relay) -> None:
    status, answer = admin.call("PATCH", "/admin/v1/keys/key_nope", {"name": "x"})
    assert status == 404 and answer["error"]["code"] == "not_found"


def test_revoke_is_idempotent_and_the_key_stops_working(admin: Relay) -> None:
    key = create(admin, balance_usd=1)
    path = f"/admin/v1/keys/{key['id']}"
    status, revoked = admin.call("DELETE", path)
    assert status == 200 and revoked["status"] == "revoked"
    assert is_iso_utc(revoked["revoked_at"])
    status, again = admin.call("DELETE", path)
    assert status == 200 and again["revoked_at"] == revoked["revoked_at"]
    assert admin.call("GET", path)[1]["status"] == "revoked"
    status, answer = admin.call("POST", "/v1/chat/completions", CHAT, token=key["key"])
    assert status == 401, answer
    assert admin.call("DELETE", "/admin/v1/keys/key_nope")[0] == 404


def test_top_up_adds_to_the_balance(admin: Relay) -> None:
    key = create(admin, balance_usd=1.25)
    path = f"/admin/v1/keys/{key['id']}/topups"
    status, topped = admin.call("POST", path, {"amount_usd": 2.5})
    assert status == 200, topped
    assert topped["balance_usd"] == topped["available_usd"] == 3.75
    status, again = admin.call("POST", path, {"amount_usd": 0.000000001})
    assert status == 200 and again["balance_usd"] == pytest.approx(3.750000001)
    record = admin.run(admin.store.key(key["id"]))
    assert record is not None and record.balance == usd_to_nanos(3.75) + 1


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"amount_usd": 0}, "amount_usd"),
        ({"amount_usd": -1}, "amount_usd"),
        ({"amount_usd": "1"}, "amount_usd"),
        ({}, "amount_usd"),
        ({"amount_usd": 1, "note": "x"}, "note"),
    ],
)
def test_top_up_rejects_bad_amounts(admin: Relay, body: dict[str, Any], param: str) -> None:
    key = create(admin, balance_usd=1)
    status, answer = admin.call("POST", f"/admin/v1/keys/{key['id']}/topups", body)
    assert status == 400, answer
    assert answer["error"]["param"] == param
    assert admin.call("GET", f"/admin/v1/keys/{key['id']}")[1]["balance_usd"] == 1.0


def test_top_up_an_unknown_or_relay_key(admin: Relay) -> None:
    status, _ = admin.call("POST", "/admin/v1/keys/key_nope/topups", {"amount_usd": 1})
    assert status == 404
    relay = create(admin, kind="relay")
    status, answer = admin.call("POST", f"/admin/v1/keys/{relay['id']}/topups", {"amount_usd": 1})
    assert status == 400 and "managed" in answer["error"]["message"]


def test_key_creation_is_never_replayed_or_kept_by_idempotency(admin: Relay) -> None:
    body = json.dumps({"name": "twice"}).encode()
    secrets = []
    for _ in range(2):
        request = urllib.request.Request(
            admin.url + "/admin/v1/keys", data=body, method="POST",
            headers={"Authorization": f"Bearer {TOKEN}", "Idempotency-Key": "same-key",
                     "Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 201
            secrets.append(json.loads(answer.read())["key"])
    assert secrets[0] != secrets[1]
    for path in admin.data_dir.glob("*.db*"):
        assert secrets[0].encode() not in path.read_bytes()
