"""``onemin-relay routes show`` as an operator runs it: a subprocess on the store in
``ONEMIN_DATA_DIR`` and the emulator's catalog."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from onemin_relay.gateway import open_store
from onemin_relay.gateway.pricing import chat_credits, credits_to_nanos
from onemin_relay.gateway.route_policy import Tally
from onemin_relay.gateway.storage import LedgerRow, Settlement
from onemin_relay.settings import Settings
from tests.conftest import Stack
from tests.gateway.test_routing_resolve import emulator_catalog

ACCOUNT = (
    "route=onemin/cost-saver; model=open-mistral-nemo; reason=evidence; evidence=20; "
    "incumbent=gpt-4o"
)


def routes_show(data_dir: Path, upstream: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONEMIN_")}
    env |= {"ONEMIN_DATA_DIR": str(data_dir), "ONEMIN_UPSTREAM_URL": upstream}
    done = subprocess.run(
        [sys.executable, "-m", "onemin_relay", "routes", "show", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stdout + done.stderr
    return done


def seed(data_dir: Path, credits: int) -> None:
    async def write() -> None:
        store = open_store(Settings(data_dir=str(data_dir)))
        await store.open()
        await store.migrate()
        try:
            await store.add_evidence("default", "cost-saver", "chat", "open-mistral-nemo",
                                     Tally(20.0, 20.0, 20))  # fmt: skip
            row = LedgerRow(
                at=time.time(),
                request_id="req-1",
                key_id=None,
                project=None,
                mode="byok",
                surface="openai.chat",
                requested_model="onemin/cost-saver",
                upstream_model="open-mistral-nemo",
                status=200,
                outcome="ok",
                input_tokens=1000,
                output_tokens=1000,
                credits=credits,
                route=ACCOUNT,
            )
            await store.settle([Settlement(row)])
        finally:
            await store.close()

    asyncio.run(write())


def test_routes_show_prints_models_evidence_and_the_saving(tmp_path: Path, stack: Stack) -> None:
    catalog = emulator_catalog()
    nemo, dear = catalog.get("open-mistral-nemo"), catalog.get("gpt-4o")
    assert nemo is not None and dear is not None
    spent = chat_credits(nemo, 1000, 1000)
    seed(tmp_path, spent)
    saved = chat_credits(dear, 1000, 1000) - spent
    data = json.loads(routes_show(tmp_path, stack.emulator_url, "--json").stdout)
    cheap = [m for m in data["models"] if m["route"] == "onemin/cost-saver" and m["kind"] == "chat"]
    assert len(cheap) == 1 and cheap[0]["model"] == "open-mistral-nemo"
    assert cheap[0]["samples"] == 20 and cheap[0]["takes_traffic"] is True
    assert cheap[0]["win_rate"] == 1.0 and 0.9 < cheap[0]["lower_bound"] < 1.0
    roles = {(m["route"], m["role"], m["model"]) for m in data["models"]}
    assert ("onemin/balanced", "incumbent", "gpt-4o") in roles
    assert ("onemin/balanced", "fallback", "claude-sonnet-4-5-20250929") in roles
    usd = credits_to_nanos(saved, Settings().credits_per_usd) / 1e9
    assert data["savings"] == [
        {"route": "onemin/cost-saver", "requests": 1, "by_candidates": 1,
         "saved_credits": saved, "saved_usd": usd, "shadow_credits": 0, "shadow_usd": 0.0}
    ]  # fmt: skip
    table = routes_show(tmp_path, stack.emulator_url).stdout
    assert "open-mistral-nemo" in table and "yes" in table and "onemin/cost-saver" in table


def test_routes_show_without_a_catalog_shows_the_routes_as_configured(tmp_path: Path) -> None:
    out = routes_show(tmp_path, "http://127.0.0.1:9").stdout  # nothing listens there
    assert "onemin/balanced" in out and "No routed requests" in out
