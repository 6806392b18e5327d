"""``onemin-relay keys|usage|ledger|db`` as an operator runs them: a subprocess on the store
in ``ONEMIN_DATA_DIR``, tables by default and JSON on request, the secret printed once."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from onemin_relay.gateway import open_store
from onemin_relay.gateway.keys import usd_to_nanos
from onemin_relay.gateway.storage import MIGRATIONS, LedgerRow, Settlement
from onemin_relay.settings import Settings
from tests.admin.conftest import Relay, serve

SECRET = re.compile(r"\b(?:sk|rk)-onemin-[A-Za-z0-9]{20,}")


def cli(data_dir: Path, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONEMIN_")}
    env["ONEMIN_DATA_DIR"] = str(data_dir)
    done = subprocess.run(
        [sys.executable, "-m", "onemin_relay", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == code, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    return done


def cli_json(data_dir: Path, *args: str) -> Any:
    return json.loads(cli(data_dir, *args, "--json").stdout)


def test_db_upgrade_prints_the_schema_version_and_where_the_store_is(tmp_path: Path) -> None:
    for _ in range(2):  # a second upgrade finds nothing to do
        out = cli(tmp_path, "db", "upgrade").stdout
        assert f"Schema version {len(MIGRATIONS)}" in out
        assert f"SQLite at {tmp_path / 'onemin-relay.db'}" in out
    assert (tmp_path / "onemin-relay.db").exists()


def test_create_prints_the_secret_once_and_list_and_show_never_do(tmp_path: Path) -> None:
    made = cli(
        tmp_path, "keys", "create", "--name", "alice", "--balance", "5", "--model", "gpt-*",
        "--model", "claude-*", "--rpm", "10",
    ).stdout  # fmt: skip
    secrets_shown = SECRET.findall(made)
    assert len(secrets_shown) == 1 and secrets_shown[0].startswith("sk-onemin-")
    assert "will not be shown again" in made
    assert "$5.00" in made and "gpt-*, claude-*" in made
    relay = cli_json(tmp_path, "keys", "create", "--name", "bob", "--kind", "relay")
    assert relay["key"].startswith("rk-onemin-") and relay["kind"] == "relay"

    table = cli(tmp_path, "keys", "list").stdout
    assert not SECRET.search(table)
    header, *rows = [line for line in table.splitlines() if line.strip() and "──" not in line]
    assert header.split()[:3] == ["ID", "NAME", "KIND"]
    assert len(rows) == 2 and rows[0].split()[1:3] == ["alice", "managed"]
    assert rows[1].split()[0] == relay["id"] and "bob" in rows[1]

    listed = cli_json(tmp_path, "keys", "list")
    assert listed["object"] == "list" and [k["name"] for k in listed["data"]] == ["alice", "bob"]
    assert all("key" not in k and "hash" not in k for k in listed["data"])
    alice = listed["data"][0]
    assert alice["models"] == ["gpt-*", "claude-*"] and alice["balance_usd"] == 5.0

    shown = cli(tmp_path, "keys", "show", alice["id"]).stdout
    assert alice["id"] in shown and "alice" in shown and not SECRET.search(shown)
    assert cli_json(tmp_path, "keys", "show", alice["id"]) == alice


def test_topup_changes_the_balance(tmp_path: Path) -> None:
    key = cli_json(tmp_path, "keys", "create", "--name", "t", "--balance", "1")
    out = cli(tmp_path, "keys", "topup", key["id"], "2.5").stdout
    assert f"Added $2.50 to {key['id']}: balance $3.50" in out
    topped = cli_json(tmp_path, "keys", "topup", key["id"], "0.25")
    assert topped["balance_usd"] == topped["available_usd"] == 3.75
    assert cli_json(tmp_path, "keys", "show", key["id"])["balance_usd"] == 3.75


def test_revoke_marks_the_key_revoked_once(tmp_path: Path) -> None:
    key = cli_json(tmp_path, "keys", "create", "--name", "r")
    out = cli(tmp_path, "keys", "revoke", key["id"]).stdout
    assert f"Revoked {key['id']}" in out
    shown = cli_json(tmp_path, "keys", "show", key["id"])
    assert shown["status"] == "revoked" and shown["revoked_at"]
    assert cli_json(tmp_path, "keys", "revoke", key["id"])["revoked_at"] == shown["revoked_at"]
    assert "revoked" in cli(tmp_path, "keys", "list").stdout


def _seed_ledger(data_dir: Path, key_id: str, model: str) -> None:
    """Two settled calls for ``key_id``, written straight to the store the CLI reads."""

    def row(cost_usd: float, tokens: int) -> LedgerRow:
        return LedgerRow(
            at=time.time(), request_id=uuid.uuid4().hex, key_id=key_id, project="default",
            mode="managed", surface="/v1/chat/completions", requested_model=model,
            upstream_model=model, status=200, outcome="ok", input_tokens=tokens,
            output_tokens=tokens, credits=tokens, cost=usd_to_nanos(cost_usd), latency_ms=42.0,
        )  # fmt: skip

    async def seed() -> None:
        store = open_store(Settings(data_dir=str(data_dir)))
        await store.open()
        try:
            await store.migrate()
            rows = [row(0.5, 1000), row(0.25, 234)]
            await store.settle([Settlement(r, key_id=key_id) for r in rows])
        finally:
            await store.close()

    asyncio.run(seed())


def test_usage_and_ledger_print_what_the_ledger_holds(tmp_path: Path) -> None:
    assert "No usage since" in cli(tmp_path, "usage").stdout
    assert "The ledger is empty." in cli(tmp_path, "ledger").stdout
    key = cli_json(tmp_path, "keys", "create", "--name", "u", "--balance", "2")
    _seed_ledger(tmp_path, key["id"], "gpt-4o-mini")

    table = cli(tmp_path, "usage").stdout
    line = next(line for line in table.splitlines() if key["id"] in line)
    assert line.split()[1:] == ["2", "1,234", "1,234", "1,234", "$0.75"]
    usage = cli_json(tmp_path, "usage", "--group-by", "model", "--key-id", key["id"])
    assert usage["group_by"] == "model"
    assert usage["data"] == [
        {
            "group": "gpt-4o-mini",
            "requests": 2,
            "input_tokens": 1234,
            "output_tokens": 1234,
            "credits": 1234,
            "charged_usd": 0.75,
        }
    ]
    by_day = cli(tmp_path, "usage", "--group-by", "day", "--since", "2000-01-01").stdout
    assert time.strftime("%Y-%m-%d", time.gmtime()) in by_day
    assert cli_json(tmp_path, "usage", "--since", str(int(time.time()) + 3600))["data"] == []

    ledger = cli(tmp_path, "ledger", "--key-id", key["id"]).stdout
    assert ledger.count("gpt-4o-mini") == 2 and "$0.25" in ledger and "$0.50" in ledger
    rows = cli_json(tmp_path, "ledger", "--limit", "1")["data"]
    assert len(rows) == 1 and rows[0]["charged_usd"] == 0.25 and "cost" not in rows[0]
    assert cli_json(tmp_path, "keys", "show", key["id"])["balance_usd"] == 1.25


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["keys", "show", "key_nope"], 1, "no key with id 'key_nope'"),
        (["keys", "revoke", "key_nope"], 1, "no key with id"),
        (["keys", "topup", "key_nope", "1"], 1, "no key with id"),
        (["keys", "create", "--name", "x", "--rpm", "-1"], 2, "--rpm"),
        (["keys", "create", "--name", ""], 2, "--name"),
        (["keys", "create", "--name", "x", "--expires", "soon"], 2, "--expires"),
        (["keys", "create", "--name", "x", "--model", "a,b"], 2, "--model"),
        (["keys", "create", "--name", "x", "--kind", "relay", "--balance", "3"], 2, "--balance"),
        (["keys", "create", "--name", "x", "--kind", "boss"], 2, "--kind"),
        (["usage", "--since", "yesterday"], 2, "--since"),
        (["usage", "--group-by", "week"], 2, "--group-by"),
        (["ledger", "--limit", "0"], 2, "--limit"),
    ],
)
def test_mistakes_exit_non_zero_with_a_message_not_a_traceback(
    tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    done = cli(tmp_path, *args, code=code)
    assert message in done.stderr
    assert done.stdout == ""


def test_topup_of_a_relay_key_or_by_nothing_is_refused(tmp_path: Path) -> None:
    relay = cli_json(tmp_path, "keys", "create", "--name", "r", "--kind", "relay")
    assert "managed" in cli(tmp_path, "keys", "topup", relay["id"], "1", code=2).stderr
    managed = cli_json(tmp_path, "keys", "create", "--name", "m")
    assert "AMOUNT_USD" in cli(tmp_path, "keys", "topup", managed["id"], "0", code=2).stderr


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Relay]:
    yield from serve(tmp_path_factory.mktemp("shared-data"), admin_token="t0ken")


def test_the_command_line_and_a_running_relay_share_the_store(running: Relay) -> None:
    made = cli_json(running.data_dir, "keys", "create", "--name", "shared", "--balance", "1")
    status, shown = running.call("GET", f"/admin/v1/keys/{made['id']}")
    assert status == 200 and shown["name"] == "shared" and shown["balance_usd"] == 1.0
    status, _ = running.call("POST", f"/admin/v1/keys/{made['id']}/topups", {"amount_usd": 2})
    assert status == 200
    assert cli_json(running.data_dir, "keys", "show", made["id"])["balance_usd"] == 3.0
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
    status, reply = running.call("POST", "/v1/chat/completions", chat, token=made["key"])
    assert status == 200, reply
    running.flush_ledger()
    rows = cli_json(running.data_dir, "ledger", "--key-id", made["id"])["data"]
    assert len(rows) == 1 and rows[0]["mode"] == "managed"


def test_workers_with_limits_in_memory_are_refused(tmp_path: Path) -> None:
    env = {**os.environ, "ONEMIN_DATA_DIR": str(tmp_path)}
    env.pop("ONEMIN_REDIS_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "onemin_relay", "serve", "--workers", "2", "--port", "1"],
        env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 2
    assert "ONEMIN_REDIS_URL" in done.stderr and "each worker" in done.stderr


def test_update_changes_what_is_given_and_clears_what_is_asked(tmp_path: Path) -> None:
    key = cli_json(
        tmp_path, "keys", "create", "--name", "u", "--rpm", "10", "--tpm", "1000",
        "--model", "gpt-4o*", "--expires", "2099-01-01T00:00:00Z",
    )  # fmt: skip
    out = cli(tmp_path, "keys", "update", key["id"], "--name", "renamed", "--rpm", "20").stdout
    assert f"Updated {key['id']}" in out
    shown = cli_json(tmp_path, "keys", "show", key["id"])
    assert (shown["name"], shown["rpm"], shown["tpm"]) == ("renamed", 20, 1000)
    assert shown["models"] == ["gpt-4o*"] and shown["expires_at"]
    cleared = cli_json(
        tmp_path, "keys", "update", key["id"], "--clear", "tpm", "--clear", "expires",
        "--clear", "models",
    )  # fmt: skip
    assert cleared["tpm"] is None and cleared["expires_at"] is None and cleared["models"] == []
    assert cleared["rpm"] == 20, "what is not named stays"
    assert "nothing to change" in cli(tmp_path, "keys", "update", key["id"], code=2).stderr
    assert "rpm" in cli(tmp_path, "keys", "update", key["id"], "--rpm", "-1", code=2).stderr
    cli(tmp_path, "keys", "update", "key_missing", "--rpm", "5", code=1)
