"""Starting the system under test: the emulator (zero artificial latency) and relay processes."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Mapping
from pathlib import Path

from bench.procs import Fleet, Proc, wait_ready

BIN = Path(sys.executable).parent
CLI = str(BIN / "onemin-relay")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_emulator(fleet: Fleet, cpus: str, source: str | None = None) -> tuple[Proc, int]:
    port = free_port()
    env = {"PYTHONPATH": source} if source else None
    proc = fleet.start("emulator", [CLI, "emulator", "--port", str(port)], cpus, env)
    url = f"http://127.0.0.1:{port}/models?feature=UNIFY_CHAT_WITH_AI"
    wait_ready(proc, url, "1min.ai emulator on")
    return proc, port


LIMITS_OFF = {
    name: "0"
    for name in (
        "ONEMIN_IP_RPM",
        "ONEMIN_IP_TPM",
        "ONEMIN_IP_MAX_IN_FLIGHT",
        "ONEMIN_KEY_MAX_IN_FLIGHT",
        "ONEMIN_UPSTREAM_MAX_IN_FLIGHT",
        "ONEMIN_MAX_CONNECTIONS_PER_IP",  # 1,000 streams held open from one address
    )
}


def relay_env(emulator_port: int, data_dir: Path | None = None) -> dict[str, str]:
    upstream = f"http://127.0.0.1:{emulator_port}"
    env = {
        "ONEMIN_UPSTREAM_URL": upstream,
        "ONEMIN_ASSET_URL": upstream,
        "ONEMIN_LOG_LEVEL": "warning",
        # The catalog refreshes every 5 minutes by default; one refresh inside a measured
        # window would show up as a p99 outlier that has nothing to do with the hot path.
        "ONEMIN_MODELS_TTL": "3600",
        "PYTHONUNBUFFERED": "1",
        # The load comes from one address, far above any per-IP limit; the limiter's own
        # cost is measured on its own (the ``limits`` scenario, bench/limits.py).
        **LIMITS_OFF,
    }
    if data_dir is not None:
        # The gateway store (SQLite) of this relay: in the run's work directory, never ./data.
        env["ONEMIN_DATA_DIR"] = str(data_dir)
    return env


def start_relay(
    fleet: Fleet,
    name: str,
    cpus: str,
    emulator_port: int,
    workers: int = 1,
    source: str | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> tuple[Proc, int]:
    """A relay process; ``source`` is another ``src`` directory to run the relay from.

    Its gateway store is a SQLite file in ``<work dir>/data-<name>`` unless ``extra_env``
    names another (``ONEMIN_DATA_DIR`` or ``ONEMIN_DATABASE_URL``)."""
    port = free_port()
    argv = [CLI, "serve", "--host", "127.0.0.1", "--port", str(port)]
    if workers > 1:
        argv += ["--workers", str(workers)]
    env = {**relay_env(emulator_port, fleet.log_dir / f"data-{name}"), **(extra_env or {})}
    if source:
        env["PYTHONPATH"] = source
    proc = fleet.start(name, argv, cpus, env)
    wait_ready(proc, f"http://127.0.0.1:{port}/healthz", "listening on", count=workers)
    return proc, port


def raise_fd_limit() -> int:
    """Lift the soft open-files limit to the hard one (1,000 streams need ~3,000 fds)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def cpu_list() -> list[int]:
    return sorted(os.sched_getaffinity(0))
