"""The asyncio load generator for what wrk cannot time: streams (TTFB), uploads, held streams.

    python -m bench.load streams --port P --side direct|relayed --concurrency C --duration S
    python -m bench.load vision  --port P --side direct|relayed --concurrency C --duration S
    python -m bench.load hold    --port P --side direct|relayed --streams N --rss-pids 1,2

Each prints one JSON line of figures. Every loop is bounded by a request budget and a
deadline; ``hold`` also by ``--timeout``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import sys
import time
import uuid
from collections.abc import Callable

import orjson

from bench import bodies
from bench.http1 import Connection, HTTPError, build_request
from bench.sse import StreamWatch

HOST = "127.0.0.1"
CLOCK = time.perf_counter
_FAILURES = (HTTPError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError)


@dataclasses.dataclass
class Tally:
    """Timings in seconds and error counts from one run."""

    ttfb: list[float] = dataclasses.field(default_factory=list)
    total: list[float] = dataclasses.field(default_factory=list)
    errors: int = 0
    started: float = dataclasses.field(default_factory=CLOCK)
    left: int = 0  # request budget still to spend

    def take(self) -> bool:
        self.left -= 1
        return self.left >= 0

    def summary(self) -> dict[str, object]:
        elapsed = CLOCK() - self.started
        done = len(self.total)
        return {
            "requests": done,
            "errors": self.errors,
            "seconds": round(elapsed, 3),
            "rate": round(done / elapsed, 1) if elapsed > 0 else 0.0,
            "ttfb": percentiles(self.ttfb),
            "total": percentiles(self.total),
        }


def percentiles(values: list[float]) -> dict[str, float] | None:
    """p50/p90/p99/max in milliseconds (nearest rank)."""
    if not values:
        return None
    ordered = sorted(values)
    last = len(ordered) - 1

    def at(q: float) -> float:
        return round(ordered[min(last, int(q * len(ordered)))] * 1000, 3)

    return {"p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "max": at(1.0)}


# -- streams ------------------------------------------------------------------------------


def stream_request(port: int, side: str, key: str) -> bytes:
    if side == "direct":
        path, headers, body = (
            bodies.DIRECT_STREAM_PATH,
            bodies.direct_headers(key),
            bodies.direct_chat(),
        )
    else:
        path, headers = bodies.RELAYED_CHAT_PATH, bodies.relayed_headers(key)
        body = bodies.relayed_chat(stream=True)
    headers["Content-Type"] = "application/json"
    return build_request("POST", HOST, port, path, headers, body)


async def stream_once(conn: Connection, raw: bytes, watch: StreamWatch, expect: int) -> None:
    watch.sent = CLOCK()
    status = await conn.request(raw, watch.feed)
    watch.ended = CLOCK()
    watch.check(status, expect)


async def _stream_worker(
    port: int, raw: bytes, relayed: bool, expect: int, deadline: float, tally: Tally
) -> None:
    conn: Connection | None = None
    while CLOCK() < deadline and tally.take():
        watch = StreamWatch(relayed, CLOCK)
        try:
            conn = conn or await Connection.open(HOST, port)
            await stream_once(conn, raw, watch, expect)
        except _FAILURES:
            tally.errors += 1
            if conn is not None:
                conn.close()
            conn = None
            continue
        if watch.ok and watch.first is not None:
            tally.ttfb.append(watch.first - watch.sent)
            tally.total.append(watch.ended - watch.sent)
        else:
            tally.errors += 1
    if conn is not None:
        conn.close()


async def run_streams(args: argparse.Namespace) -> dict[str, object]:
    raw = stream_request(args.port, args.side, args.key)
    tally = Tally(left=args.max_requests)
    deadline = CLOCK() + args.duration
    relayed = args.side == "relayed"
    workers = [
        _stream_worker(args.port, raw, relayed, args.expect_deltas, deadline, tally)
        for _ in range(args.concurrency)
    ]
    await asyncio.gather(*workers)
    return tally.summary()


# -- vision (upload path) -----------------------------------------------------------------


class VisionCaller:
    """One vision call: direct = upload the image then chat with it; relayed = one request."""

    def __init__(self, port: int, side: str, key: str) -> None:
        self.port, self.side, self.key = port, side, key
        self.png = bodies.png_image()
        self.relayed_raw = b""
        if side == "relayed":
            headers = bodies.relayed_headers(key) | {"Content-Type": "application/json"}
            body = bodies.relayed_chat(bodies.VISION_PROMPT, image_uri=bodies.data_uri(self.png))
            self.relayed_raw = build_request(
                "POST", HOST, port, bodies.RELAYED_CHAT_PATH, headers, body
            )

    async def call(self, conn: Connection) -> bool:
        if self.side == "relayed":
            status, body = await _collect(conn, self.relayed_raw)
            return status == 200 and b"[images: 1]" in body
        boundary = uuid.uuid4().hex
        upload = bodies.multipart_upload(self.png, f"bench-{boundary}.png", boundary)
        headers = bodies.direct_headers(self.key)
        headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
        raw = build_request("POST", HOST, self.port, bodies.DIRECT_ASSETS_PATH, headers, upload)
        status, body = await _collect(conn, raw)
        if status != 200:
            return False
        path = orjson.loads(body)["fileContent"]["path"]
        headers = bodies.direct_headers(self.key) | {"Content-Type": "application/json"}
        chat = bodies.direct_chat(bodies.VISION_PROMPT, images=(path,))
        raw = build_request("POST", HOST, self.port, bodies.DIRECT_CHAT_PATH, headers, chat)
        status, body = await _collect(conn, raw)
        return status == 200 and b"[images: 1]" in body


async def _collect(conn: Connection, raw: bytes) -> tuple[int, bytes]:
    pieces: list[bytes] = []
    status = await conn.request(raw, pieces.append)
    return status, b"".join(pieces)


async def _vision_worker(caller: VisionCaller, deadline: float, tally: Tally) -> None:
    conn: Connection | None = None
    while CLOCK() < deadline and tally.take():
        sent = CLOCK()
        try:
            conn = conn or await Connection.open(HOST, caller.port)
            ok = await caller.call(conn)
        except _FAILURES:
            ok = False
            if conn is not None:
                conn.close()
            conn = None
        if ok:
            tally.total.append(CLOCK() - sent)
        else:
            tally.errors += 1
    if conn is not None:
        conn.close()


async def run_vision(args: argparse.Namespace) -> dict[str, object]:
    caller = VisionCaller(args.port, args.side, args.key)
    tally = Tally(left=args.max_requests)
    deadline = CLOCK() + args.duration
    await asyncio.gather(
        *(_vision_worker(caller, deadline, tally) for _ in range(args.concurrency))
    )
    return tally.summary()


# -- many streams held open at once -------------------------------------------------------


def rss_kib(pids: list[int]) -> int:
    """Resident memory of ``pids`` together (VmRSS from /proc), KiB; vanished pids count 0."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
        except FileNotFoundError:
            continue
    return total


class Holder:
    """Opens N streams in batches and notes when every one of them has its first delta."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.raw = stream_request(args.port, args.side, args.key)
        self.relayed = args.side == "relayed"
        self.tally = Tally(left=args.streams)
        self.settled = 0  # streams that got their first delta or failed before it
        self.open_now = 0
        self.all_settled = asyncio.Event()

    def _settle(self) -> None:
        self.settled += 1
        if self.settled >= self.args.streams:
            self.all_settled.set()

    async def one(self) -> None:
        watch = StreamWatch(self.relayed, CLOCK, on_first=self._opened)
        conn: Connection | None = None
        try:
            conn = await Connection.open(HOST, self.args.port)
            await stream_once(conn, self.raw, watch, self.args.expect_deltas)
        except _FAILURES:
            watch.ok = False
        finally:
            if conn is not None:
                conn.close()
        if watch.first is not None:
            self.open_now -= 1
        else:
            self._settle()
        if watch.ok and watch.first is not None:
            self.tally.ttfb.append(watch.first - watch.sent)
            self.tally.total.append(watch.ended - watch.sent)
        else:
            self.tally.errors += 1

    def _opened(self) -> None:
        self.open_now += 1
        self._settle()


async def run_hold(args: argparse.Namespace) -> dict[str, object]:
    holder = Holder(args)
    pids = [int(p) for p in args.rss_pids.split(",") if p]
    idle_kib = rss_kib(pids)
    tasks: list[asyncio.Task[None]] = []
    for start in range(0, args.streams, args.batch):
        count = min(args.batch, args.streams - start)
        tasks += [asyncio.create_task(holder.one()) for _ in range(count)]
        await asyncio.sleep(args.batch_pause)
    opened_at = CLOCK()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(holder.all_settled.wait(), args.timeout)
    ramp = CLOCK() - holder.tally.started
    peak_kib, open_min = await _sample_rss(pids, holder, args.sample_seconds)
    _, pending = await asyncio.wait(tasks, timeout=max(1.0, args.timeout - (CLOCK() - opened_at)))
    for task in pending:
        task.cancel()
    summary = holder.tally.summary()
    summary["errors"] = int(summary["errors"]) + len(pending)  # type: ignore[call-overload]
    summary |= {
        "streams": args.streams,
        "open_while_sampled": open_min,
        "seconds_to_open_all": round(ramp, 3),
        "rss_idle_mib": round(idle_kib / 1024, 1),
        "rss_peak_mib": round(peak_kib / 1024, 1),
    }
    return summary


async def _sample_rss(pids: list[int], holder: Holder, seconds: float) -> tuple[int, int]:
    """Peak RSS of ``pids`` and the fewest streams open while sampling for ``seconds``."""
    peak, open_min = 0, holder.open_now
    end = CLOCK() + seconds
    while CLOCK() < end:
        peak = max(peak, rss_kib(pids))
        open_min = min(open_min, holder.open_now)
        await asyncio.sleep(0.05)
    return peak, open_min


# -- command line -------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("streams", "vision", "hold"):
        cmd = sub.add_parser(name)
        cmd.add_argument("--port", type=int, required=True)
        cmd.add_argument("--side", choices=("direct", "relayed"), required=True)
        cmd.add_argument("--key", default="bench-key")
        cmd.add_argument("--concurrency", type=int, default=1)
        cmd.add_argument("--duration", type=float, default=3.0)
        cmd.add_argument("--max-requests", type=int, default=100_000)
        cmd.add_argument("--expect-deltas", type=int, default=20)
    hold = sub.choices["hold"]
    hold.add_argument("--streams", type=int, default=1000)
    hold.add_argument("--batch", type=int, default=50)
    hold.add_argument("--batch-pause", type=float, default=0.05)
    hold.add_argument("--rss-pids", default="")
    hold.add_argument("--sample-seconds", type=float, default=1.0)
    hold.add_argument("--timeout", type=float, default=60.0)
    return parser


RUNNERS: dict[str, Callable[[argparse.Namespace], object]] = {
    "streams": run_streams,
    "vision": run_vision,
    "hold": run_hold,
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        import uvloop

        run: Callable[..., object] = uvloop.run
    except ImportError:
        run = asyncio.run
    result = run(RUNNERS[args.command](args))  # type: ignore[arg-type]
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
