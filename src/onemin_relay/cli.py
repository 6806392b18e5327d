"""The onemin-relay command line: serve (the relay), emulator (a local 1min.ai),
and keys, usage, ledger and db to run the gateway."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import gc
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, Literal

import typer
from aiohttp import web

from onemin_relay import __version__
from onemin_relay.admin import commands as admin_commands
from onemin_relay.admin import route_commands
from onemin_relay.gateway import describe_store
from onemin_relay.gateway.modes import exposure_warning, open_modes
from onemin_relay.gateway.routing_config import RoutesFileError, load_routes
from onemin_relay.logs import configure_logging
from onemin_relay.settings import LOG_LEVELS, Settings, SettingsError

_FIRST_WORKER = "ONEMIN_FIRST_WORKER"  # only the first worker announces the ways in
cli = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
_DEFAULTS = Settings()


class BindError(OSError):
    """The relay could not listen where it was told to."""


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"onemin-relay {__version__}")
        raise typer.Exit()


@cli.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    pass


@cli.command()
def serve(
    host: Annotated[str, typer.Option(envvar="ONEMIN_HOST", help="Address to bind")] = (
        _DEFAULTS.host
    ),
    port: Annotated[int, typer.Option(envvar="ONEMIN_PORT", help="Port to bind")] = (
        _DEFAULTS.port
    ),
    workers: Annotated[int, typer.Option(min=1, help="Worker processes sharing the port")] = 1,
    demo: Annotated[
        bool, typer.Option(help="Start the built-in 1min.ai emulator and relay to it")
    ] = False,
    log_level: Annotated[
        str,
        typer.Option(envvar="ONEMIN_LOG_LEVEL", help=f"One of {', '.join(LOG_LEVELS)}"),
    ] = _DEFAULTS.log_level,
) -> None:
    """Run the relay."""
    try:
        settings = Settings.from_env(None, host=host, port=port, log_level=log_level)
        load_routes(settings.routes_file, settings.data_dir)  # a bad routes file stops here
    except (SettingsError, RoutesFileError) as exc:
        raise typer.BadParameter(str(exc)) from None
    if demo and workers > 1:
        raise typer.BadParameter("--demo runs in one process; drop --workers")
    if workers > 1 and settings.limits_on and not settings.limits_are_shared:
        raise typer.BadParameter(
            "with --workers, rate limits kept in memory would be counted by each worker alone "
            "(N workers would admit N times the limit): set ONEMIN_REDIS_URL to share them, "
            "or turn them off (ONEMIN_IP_RPM=0 ONEMIN_IP_TPM=0 and the *_MAX_IN_FLIGHT caps)"
        )
    configure_logging(settings.log_level)
    if workers == 1:
        try:
            _run(_serve(settings, demo=demo, reuse_port=False))
        except BindError as exc:
            typer.echo(f"onemin-relay: {exc}", err=True)
            raise typer.Exit(2) from None
        return
    _run_workers(settings, workers)


@cli.command()
def emulator(
    host: Annotated[str, typer.Option(help="Address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind")] = 8090,
    replies: Annotated[
        Literal["echo", "model"],
        typer.Option(
            help="echo: repeat the prompt (exact text for tests); model: answer like a model"
        ),
    ] = "echo",
) -> None:
    """Run the 1min.ai emulator alone (for tests, benchmarks and trying the relay offline)."""
    from onemin_relay import emulator as emulator_pkg

    emulator_pkg.run(host, port, emulator_pkg.EmulatorConfig(replies=replies))


async def _serve(settings: Settings, *, demo: bool, reuse_port: bool) -> None:
    # imported here: the key and usage commands should not pay for loading the whole relay
    from onemin_relay.app import create_app
    from onemin_relay.logs import AccessLogger
    from onemin_relay.server import LISTEN_BACKLOG, RelayRunner

    runners: list[web.AppRunner] = []
    try:
        if demo:
            settings = await _start_demo_upstream(settings, runners)
        runner = RelayRunner(
            create_app(settings),
            header_timeout=settings.header_timeout,
            handler_cancellation=True,
            access_log_class=AccessLogger,
        )
        runners.append(runner)
        await runner.setup()
        settle_heap()
        site = web.TCPSite(
            runner, settings.host, settings.port, backlog=LISTEN_BACKLOG, reuse_port=reuse_port
        )
        try:
            await site.start()
        except OSError as exc:
            raise _bind_error(exc, settings) from None
        mode = " (demo: built-in 1min.ai emulator)" if demo else ""
        print(f"onemin-relay listening on http://{settings.host}:{settings.port}{mode}", flush=True)
        if not reuse_port or os.environ.get(_FIRST_WORKER) == "1":
            _announce(settings)
        await _until_terminated()
    finally:
        for started in reversed(runners):
            await started.cleanup()


def _bind_error(exc: OSError, settings: Settings) -> BindError:
    where = f"port {settings.port} on {settings.host}"
    if exc.errno == errno.EADDRINUSE:
        return BindError(f"{where} is in use; set ONEMIN_PORT or --port")
    reason = exc.strerror or str(exc)
    return BindError(
        f"cannot listen on {where}: {reason}; set ONEMIN_HOST/ONEMIN_PORT or --host/--port"
    )


def _announce(settings: Settings) -> None:
    """Say which ways in are open and where money is kept, so nothing is open by accident."""
    lines = ["ways in:", *open_modes(settings), f"store: {describe_store(settings)}"]
    warning = exposure_warning(settings)
    if warning:
        lines.append(warning)
    print("\n".join(lines), flush=True)


async def _until_terminated() -> None:
    """Serve until SIGTERM or SIGINT; the caller's cleanup then lets requests in flight
    finish and writes every queued ledger row before the process exits."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()


# Young objects are collected every GEN0_THRESHOLD allocations instead of Python's 700: each
# young collection then stays well under a millisecond, and far fewer run per request.
GEN0_THRESHOLD = 10_000


def settle_heap() -> None:
    """Take what start-up built (imports, app, tokenizer) out of the collector's sight.

    Without this every full collection walks those ~70,000 long-lived objects: 20-40 ms
    pauses, about one a second under load, which made the relay's p99. Frozen, a full
    collection takes 1-3 ms (see BENCHMARKS.md).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GEN0_THRESHOLD, *gc.get_threshold()[1:])


async def _start_demo_upstream(settings: Settings, runners: list[web.AppRunner]) -> Settings:
    from onemin_relay.emulator import EmulatorConfig
    from onemin_relay.emulator import create_app as create_emulator

    runner = web.AppRunner(create_emulator(EmulatorConfig(replies="model")))
    runners.append(runner)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    address = runner.addresses[0]
    url = f"http://127.0.0.1:{address[1]}"
    return dataclasses.replace(
        settings,
        upstream_url=url,
        asset_url=url,
        api_key=settings.api_key or "demo-key",
        allow_anonymous=True,
    )


def _run(main: Coroutine[Any, Any, None]) -> None:
    try:
        import uvloop

        runner: Callable[[Coroutine[Any, Any, None]], None] = uvloop.run
    except ImportError:
        runner = asyncio.run
    with contextlib.suppress(KeyboardInterrupt):
        runner(main)


def _worker(settings: Settings, first: bool) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ[_FIRST_WORKER] = "1" if first else "0"
    configure_logging(settings.log_level)
    try:
        _run(_serve(settings, demo=False, reuse_port=True))
    except BindError as exc:
        print(f"onemin-relay: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)


def _run_workers(settings: Settings, workers: int) -> None:
    """N processes bound to one port with SO_REUSEPORT; the kernel spreads connections."""
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_worker, args=(settings, index == 0)) for index in range(workers)
    ]
    for process in processes:
        process.start()
    print(f"onemin-relay: {workers} workers (pids {[p.pid for p in processes]})", flush=True)

    def stop(*_: object) -> None:
        for process in processes:
            if process.is_alive():
                process.terminate()

    signal.signal(signal.SIGTERM, stop)
    try:
        for process in processes:
            process.join()
    except KeyboardInterrupt:
        stop()
        for process in processes:
            process.join()
    sys.exit(max(p.exitcode or 0 for p in processes))


admin_commands.register(cli)
route_commands.register(cli)


def main() -> None:
    cli()
