"""Running the two load generators: ``wrk`` (request/response) and ``bench.load`` (streams).

Both run pinned to the load generator's cores and return plain dicts of figures; a run that
produced no figures raises :class:`BenchError`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from bench.procs import BenchError

BENCH_DIR = Path(__file__).resolve().parent
POST_SCRIPT = BENCH_DIR / "post.lua"
REPO = BENCH_DIR.parent


def wrk(
    url: str,
    body_file: Path,
    headers: Mapping[str, str],
    *,
    connections: int,
    duration: float,
    cpus: str,
) -> dict[str, float]:
    """One wrk run: requests/s, latency percentiles (ms), errors (socket errors and
    responses with a status of 400 or more) and, of those, the responses alone."""
    env = {
        **os.environ,
        "BENCH_BODY_FILE": str(body_file),
        "BENCH_HEADERS": "|".join(f"{k}: {v}" for k, v in headers.items()),
    }
    seconds = max(1, round(duration))  # wrk takes whole seconds
    argv = ["taskset", "-c", cpus, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s"]
    argv += ["--timeout", "10s", "-s", str(POST_SCRIPT), url]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=duration + 30)
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise BenchError(
            f"wrk failed ({done.returncode}): {done.stderr[-500:] or done.stdout[-500:]}"
        )
    raw = json.loads(line.removeprefix("BENCH_JSON "))
    seconds = raw["duration_us"] / 1e6 or 1.0
    errors = sum(raw["errors"].values())
    return {
        "rate": raw["requests"] / seconds,
        "requests": raw["requests"],
        "errors": errors,
        "status_errors": raw["errors"]["status"],  # responses with a status of 400 or more
        "p50": raw["p50_us"] / 1000,
        "p90": raw["p90_us"] / 1000,
        "p99": raw["p99_us"] / 1000,
    }


def load(command: str, cpus: str, timeout: float, *args: str) -> dict[str, object]:
    """One ``python -m bench.load COMMAND ...`` run; its JSON summary."""
    argv = ["taskset", "-c", cpus, sys.executable, "-m", "bench.load", command, *args]
    done = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=timeout)
    if done.returncode != 0 or not done.stdout.strip():
        raise BenchError(f"bench.load {command} failed: {done.stderr[-1500:]}")
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def wrk_version() -> str:
    try:
        done = subprocess.run(["wrk", "--version"], capture_output=True, text=True, timeout=10)
    except FileNotFoundError:
        return ""
    return (done.stdout or done.stderr).splitlines()[0].split(" [")[0] if done.stdout else ""
