"""``throttlekit-server [serve] --config FILE ...``: run the gRPC service door.

Flags keep the upstream's names. Differences on purpose: the default host is 127.0.0.1 (upstream binds
0.0.0.0), and ``--tls-ca`` without ``--tls-cert``/``--tls-key`` is an error (upstream silently stays
insecure while its startup line says mTLS).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from .._errors import ConfigError, StoreError, loggable
from ..config import PolicyConfigError, load_config_file

__all__ = ["check_store", "health", "is_loopback", "probe", "serve"]

log = logging.getLogger("throttlekit.server")


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _store(
    store: str | None,
    redis_url: str | None,
    postgres_url: str | None = None,
    dynamodb_table: str | None = None,
) -> str:
    """The backend (spec 3.1): an explicit ``--store`` wins, else exactly one connection flag implies it."""
    implied = [
        n for n, v in (("redis", redis_url), ("postgres", postgres_url), ("dynamodb", dynamodb_table)) if v
    ]
    if store is None:
        if len(implied) > 1:
            raise click.UsageError(
                f"ambiguous store: {' + '.join(implied)} all implied; pass --store to choose one"
            )
        return implied[0] if implied else "memory"
    needs = {
        "redis": "--redis <url>",
        "postgres": "--postgres-url <url>",
        "dynamodb": "--dynamodb-table <name>",
    }
    if store in needs and store not in implied:
        raise click.UsageError(f"--store {store} requires {needs[store]}")
    for other in implied:
        if other != store:
            _say(f"warning: --{needs[other].split()[0][2:]} is ignored with --store {store}")
    return store


#: Environment variables that may supply a URL's value, only once ``--store`` chose that store.
URL_ENV = {"redis": "THROTTLEKIT_REDIS_URL", "postgres": "THROTTLEKIT_POSTGRES_URL"}


def _env_url(store: str | None, backend: str, flag_value: str | None) -> str | None:
    """``flag_value``, else the backend's environment variable when ``--store backend`` was given. The
    environment never chooses the store (a client's test setup exports these variables)."""
    if flag_value or store != backend:
        return flag_value
    return os.environ.get(URL_ENV[backend]) or None


def _shared_store(
    backend: str, opts: dict[str, Any], redis_url: str | None = None, redis_prefix: str = ""
) -> Any:
    """The store for ``backend`` from the store factory. Connects lazily."""
    from ..stores import store_from_flags

    return store_from_flags(
        backend,
        redis_url=redis_url,
        redis_prefix=redis_prefix,
        **{k: v for k, v in opts.items() if k.startswith(("postgres_", "dynamodb_", "memory_"))},
    )


def _security(cert: str | None, key: str | None, ca: str | None) -> str:
    if (cert is None) != (key is None):
        raise click.UsageError("--tls-cert and --tls-key go together")
    if ca is not None and cert is None:
        raise click.UsageError("--tls-ca needs --tls-cert and --tls-key (mutual TLS runs over server TLS)")
    return "mTLS" if ca else "TLS" if cert else "insecure"


async def _run(
    service: Any,
    host: str,
    port: int,
    credentials: Any,
    tag: str,
    drain: float,
    options: dict[str, Any] | None = None,
    config_path: str | None = None,
    watch_s: float | None = None,
    loaded_state: tuple[int, int, int] | None = None,
    panels: Any = None,
) -> None:
    from ..server import start

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    handle: Any = None

    def on_signal(sig: signal.Signals) -> None:
        if not stop.is_set():
            _say(f"{sig.name} received, draining: health NOT_SERVING for {drain:g} s, then stopping…")
            stop.set()
        elif handle is not None:
            _say(f"{sig.name} received again: stopping now")
            handle.skip_drain()

    reloading: set[asyncio.Task[bool]] = set()

    def on_hup() -> None:
        if handle is None or config_path is None:
            return
        log.warning("SIGHUP received: reloading %s", config_path)
        task = asyncio.ensure_future(handle.reload_file(config_path))
        reloading.add(task)
        task.add_done_callback(reloading.discard)

    # handlers first: a supervisor may send SIGTERM as soon as it reads the startup line
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    loop.add_signal_handler(signal.SIGHUP, on_hup)
    handle = await start(service, host, port, credentials, **(options or {}))
    if handle.metrics is not None:
        tag += f", metrics:{handle.metrics_port}"
    names = ", ".join(service.names)
    n = len(service.names)
    click.echo(
        f"throttlekit-server listening on {handle.address} [{tag}] ({n} polic{'ies' if n != 1 else 'y'}: {names})"
    )
    sys.stdout.flush()
    evictions = asyncio.ensure_future(_report_evictions(service))
    watcher = (
        asyncio.ensure_future(_watch_config(handle, config_path, watch_s, loaded_state))
        if config_path is not None and watch_s
        else None
    )
    if panels is not None:  # --tui on a terminal: Lens until it closes (log lines wait while it is up)
        from ..lens._link import show_until_closed

        code = await show_until_closed(handle.hub.snapshot, stop, panels)
        if code == 0:
            _say(f"dashboard closed: draining: health NOT_SERVING for {drain:g} s, then stopping…")
            stop.set()
        elif code is not None:
            _say(f"warning: the dashboard exited with code {code}; serving on without it")
    await stop.wait()
    evictions.cancel()
    if watcher is not None:
        watcher.cancel()
    await handle.aclose(drain=drain)
    _say("throttlekit-server stopped")


def _file_state(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


async def _watch_config(
    handle: Any, path: str, every_s: float, seen: tuple[int, int, int] | None = None
) -> None:
    """``--watch-config``: reload when the file's mtime, size or inode changes (checked every
    ``every_s`` s; an editor's atomic rename counts). A change is reloaded once it has been stable for one
    interval, so a file being written is not read half-way. ``seen``: the state of the file the running
    policies came from (read before it was loaded, so a change made meanwhile is not missed)."""
    if seen is None:
        seen = _file_state(path)
    pending: tuple[int, int, int] | None = None
    while True:
        await asyncio.sleep(every_s)
        now = _file_state(path)
        if now is None or now == seen:
            pending = None
            continue
        if now != pending:
            pending = now  # changed: wait one more interval for it to settle
            continue
        seen, pending = now, None
        await handle.reload_file(path)


async def _report_evictions(service: Any, every_s: float | None = None) -> None:
    """Every ``EVICTION_REPORT_S`` seconds, warn about stores that evicted live keys at their bound."""
    from ..server._service import EVICTION_REPORT_S, EvictionLog

    report = EvictionLog(service.bounded_stores())
    while True:
        await asyncio.sleep(EVICTION_REPORT_S if every_s is None else every_s)
        report.report()


#: Seconds between two checks of the policy file under ``--watch-config``.
WATCH_CONFIG_S = 1.0
#: Seconds the startup check waits for the store before treating it as unreachable.
STARTUP_CHECK_S = 5.0


async def check_store(
    service: Any, backend: str, timeout: float = STARTUP_CHECK_S, *, store: Any = None
) -> None:
    """The startup check (``aping``) of the service's store (or of ``store``: the regional store). A store
    that answers but is misconfigured (wrong database, role, table, credentials: :class:`ConfigError`)
    refuses to start: ClickException, exit 1. An unreachable one (:class:`StoreError`, no answer in
    ``timeout`` s) starts with a warning naming the store and the fail mode: decisions follow ``--fail``
    until it answers (an unreachable regional store: the escrow counts as empty)."""
    try:
        await asyncio.wait_for((store or service.store).aping(), timeout)
    except ConfigError as exc:
        await service.aclose()
        raise click.ClickException(f"the {backend} store answered but cannot be used: {exc}") from None
    except (StoreError, asyncio.TimeoutError, OSError) as exc:
        why = f"no answer within {timeout:g} s" if isinstance(exc, asyncio.TimeoutError) else loggable(exc)
        effect = (
            "the federated policies lease from the coordinator directly until it is"
            if store is not None
            else f"decisions fail {service.fail} until it is"
        )
        _say(f"warning: the {backend} store is not reachable yet ({why}); {effect}")


def _start_capture(cfg: Any, service: Any) -> Any:
    """Decision capture per the config's ``capture:`` block (None when off): the recorder on the
    service's decision tap, the 5 s flush started, the banner on stderr."""
    if cfg.capture is None:
        return None
    from ..forensics import attach_capture, banner

    flusher = attach_capture(service, cfg)
    click.echo(banner(cfg.capture), err=True)
    assert flusher is not None
    flusher.start()
    return flusher


def _start_replay(cfg: Any, service: Any) -> Any:
    """What-If Replay shadows per the config's ``replay:`` block (None when off), on the service's
    decision tap. Headless: SIGUSR1 prints the configured what-if and the shadows' status as one
    ``replay: {json}`` line on stderr (the replay runs in a worker thread, off the event loop)."""
    if cfg.replay is None:
        return None
    import json

    from ..forensics import attach_replay

    shadows = attach_replay(service, cfg)
    assert shadows is not None
    loop = asyncio.get_running_loop()
    running: list[asyncio.Task[None]] = []

    async def report() -> None:
        try:
            out = await asyncio.to_thread(shadows.run)
            click.echo("replay: " + json.dumps(out, separators=(",", ":")), err=True)
        finally:
            running.clear()

    def on_usr1() -> None:
        if not running:  # one report at a time
            running.append(loop.create_task(report()))

    if hasattr(signal, "SIGUSR1"):
        loop.add_signal_handler(signal.SIGUSR1, on_usr1)
    n = len(shadows.shadows)
    click.echo(
        f"replay: {n} shadow{'s' if n != 1 else ''} recording ({', '.join(shadows.shadows) or 'none'}); "
        f"maxSteps {cfg.replay.max_steps}; send SIGUSR1 for the what-if",
        err=True,
    )
    return shadows


_F = TypeVar("_F", bound=Callable[..., Any])


def _say(message: str) -> None:
    """An operator message of the serve command (warnings, signals), through the log so that
    ``--log-format json`` keeps stderr one JSON object per line."""
    log.warning("%s", message)


def _host_option(help: str) -> Callable[[_F], _F]:
    """``--host``: one default and one variable for the server and its probe, so the two cannot drift."""
    return click.option(
        "--host", default="127.0.0.1", show_default=True, envvar="THROTTLEKIT_HOST", help=help
    )


def _port_option(lowest: int, help: str) -> Callable[[_F], _F]:
    """``-p/--port``, shared like :func:`_host_option` (the server accepts 0 = any free port)."""
    return click.option(
        "-p",
        "--port",
        default=50051,
        show_default=True,
        envvar="THROTTLEKIT_PORT",
        type=click.IntRange(lowest, 65535),
        help=help,
    )


@click.command()
@click.option(
    "-c",
    "--config",
    "config_path",
    required=True,
    envvar="THROTTLEKIT_CONFIG",
    type=click.Path(dir_okay=False),
    help="Policy file (YAML or JSON).",
)
@_host_option("Bind host (0.0.0.0 for every interface).")
@_port_option(0, "Bind port (0 = any free port).")
@click.option(
    "--store",
    type=click.Choice(["memory", "redis", "postgres", "dynamodb"]),
    help="Store backend (default: inferred from --redis, --postgres-url or --dynamodb-table, else memory; "
    "environment variables never choose it).",
)
@click.option(
    "--redis",
    "redis_url",
    help="Redis URL (implies --store redis); with --store redis and no --redis, $THROTTLEKIT_REDIS_URL.",
)
@click.option("--redis-prefix", default="", help="Store-wide key prefix on Redis.")
@click.option(
    "--postgres-url",
    help="Postgres URL (implies --store postgres); with --store postgres and no --postgres-url, "
    "$THROTTLEKIT_POSTGRES_URL.",
)
@click.option("--postgres-table", default="throttlekit", show_default=True, help="Postgres state table.")
@click.option("--postgres-prefix", default="", help="Store-wide key prefix on Postgres.")
@click.option(
    "--memory-max-keys",
    type=click.IntRange(1, 9007199254740991),
    default=None,
    help="Keys the memory store holds before it evicts the least recently used (default 1,000,000; "
    "worst-case bytes per key per strategy: docs/stores.md). Evictions are logged once a minute.",
)
@click.option("--dynamodb-table", help="DynamoDB table (implies --store dynamodb).")
@click.option("--dynamodb-region", envvar="AWS_REGION", help="DynamoDB region (default: the SDK chain).")
@click.option("--dynamodb-endpoint", help="DynamoDB endpoint, e.g. http://localhost:8000 (DynamoDB Local).")
@click.option("--dynamodb-prefix", default="", help="Store-wide key prefix on DynamoDB.")
@click.option(
    "--dynamodb-create-table",
    is_flag=True,
    help="Create the table if absent (partition key pk, on-demand) and wait for it (<= 30 s).",
)
@click.option(
    "--fail",
    type=click.Choice(["open", "closed"]),
    default="open",
    show_default=True,
    help="Decision while the store is down: admit (open) or deny (closed).",
)
@click.option(
    "--tls-cert",
    envvar="THROTTLEKIT_TLS_CERT",
    type=click.Path(exists=True, dir_okay=False),
    help="PEM server certificate chain.",
)
@click.option(
    "--tls-key",
    envvar="THROTTLEKIT_TLS_KEY",
    type=click.Path(exists=True, dir_okay=False),
    help="PEM server private key.",
)
@click.option(
    "--tls-ca",
    envvar="THROTTLEKIT_TLS_CA",
    type=click.Path(exists=True, dir_okay=False),
    help="PEM CA: require and verify client certificates (mTLS).",
)
@click.option(
    "--drain-grace",
    type=click.FloatRange(0, 3600),
    default=5.0,
    show_default=True,
    envvar="THROTTLEKIT_DRAIN_GRACE",
    help="Seconds after SIGTERM during which health reports NOT_SERVING while the port still serves, so "
    "load balancers stop routing here first; then the port closes and calls in flight finish. A second "
    "signal skips the rest.",
)
@click.option(
    "--node-id",
    envvar="TK_NODE_ID",
    default=None,
    help="This server's id in distributedConcurrency fleets (unique per process) [default: <hostname>#<pid>].",
)
@click.option(
    "--lease-ttl-ms",
    type=click.IntRange(1, 86_400_000),
    default=2000,
    show_default=True,
    envvar="THROTTLEKIT_LEASE_TTL_MS",
    help="Admit lease TTL: a holder that neither releases nor heartbeats loses its slot after this long "
    "(reclaimed by a sweep every second, as dropped).",
)
@click.option(
    "--fleet-secret",
    envvar="THROTTLEKIT_FLEET_SECRET",
    default=None,
    help="Shared secret of the Fleet door (served when a federated: policy exists): callers present it "
    "as x-fleet-secret or authorization: Bearer; without it only loopback callers may Reserve "
    "($THROTTLEKIT_FLEET_SECRET).",
)
@click.option(
    "--region",
    default="default",
    show_default=True,
    envvar="TK_REGION",
    help="This instance's region, for federated: and federatedFairEscrow: policies that do not name "
    "their own ($TK_REGION).",
)
@click.option(
    "--regional-store",
    envvar="TK_REGIONAL_STORE",
    default=None,
    help="The region's own store (redis://... or postgresql://..., shared by this region's instances) "
    "holding the federated: policies' regional escrows: instances lease from it first and the region "
    "leases escrowBatch units at a time from the coordinator; with onCoordinatorOutage regional-only "
    "the region keeps serving from it while the coordinator is down ($TK_REGIONAL_STORE).",
)
@click.option(
    "--watch-config",
    is_flag=True,
    help="Reload the policy file when it changes (as on SIGHUP): validated first, swapped atomically, a "
    "bad file keeps the current policies.",
)
@click.option(
    "--monitor",
    type=click.Choice(["on", "off"]),
    default="on",
    show_default=True,
    help="The Monitor door (throttlekit.v1.Monitor: snapshot and live denials) and its telemetry hub.",
)
@click.option(
    "--monitor-secret",
    envvar="THROTTLEKIT_MONITOR_SECRET",
    help="Serve the Monitor beyond loopback to callers presenting this secret (x-monitor-secret or "
    "authorization: Bearer); then required from every caller. Without it: loopback callers only.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=None,
    envvar="THROTTLEKIT_METRICS_PORT",
    help="Serve Prometheus /metrics, /healthz and /ready on this port (0 = any free port; off by default).",
)
@click.option(
    "--metrics-host",
    default="127.0.0.1",
    show_default=True,
    envvar="THROTTLEKIT_METRICS_HOST",
    help="Bind host of --metrics-port (the series are aggregate, but unauthenticated).",
)
@click.option(
    "--tui",
    is_flag=True,
    help="Lens, the live terminal dashboard (the tui extra), on this terminal while serving; q quits and "
    "drains. Needs a terminal on stdin and stdout; without one the server warns and serves without it.",
)
@click.option(
    "--plan-candidate",
    type=click.Path(exists=True, dir_okay=False),
    help="A candidate policy file for Lens' Plan view (P): replayed over the live What-If shadows "
    "(needs --tui and a replay: block).",
)
@click.option(
    "--log-level", default="info", show_default=True, type=click.Choice(["debug", "info", "warning", "error"])
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    envvar="THROTTLEKIT_WORKERS",
    help="Server processes sharing the port (SO_REUSEPORT) under one supervisor; needs a shared store "
    "(Redis, Postgres, DynamoDB). With --metrics-port the supervisor serves every worker's metrics.",
)
@click.option("--worker-index", type=click.IntRange(0, 63), default=None, hidden=True)
@click.option(
    "--loop",
    "loop_name",
    type=click.Choice(["auto", "asyncio", "uvloop"]),
    default="auto",
    show_default=True,
    envvar="THROTTLEKIT_LOOP",
    help="The event loop: uvloop (the `uvloop` extra: about 30% fewer instructions per Check, measured "
    "with callgrind) or the standard asyncio loop; auto takes uvloop when it is installed.",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    envvar="THROTTLEKIT_LOG_FORMAT",
    help="Log lines as text, or one JSON object per line (time, level, logger, event, fields).",
)
def serve(
    config_path: str,
    host: str,
    port: int,
    store: str | None,
    redis_url: str | None,
    redis_prefix: str,
    fail: str,
    tls_cert: str | None,
    tls_key: str | None,
    tls_ca: str | None,
    drain_grace: float,
    node_id: str | None,
    lease_ttl_ms: int,
    fleet_secret: str | None,
    region: str,
    regional_store: str | None,
    watch_config: bool,
    monitor: str,
    monitor_secret: str | None,
    metrics_port: int | None,
    metrics_host: str,
    tui: bool,
    plan_candidate: str | None,
    log_level: str,
    workers: int,
    worker_index: int | None,
    log_format: str,
    loop_name: str,
    **shared: Any,
) -> None:
    """Serve the policies of a config file over gRPC (throttlekit.v1.RateLimiter, Monitor, health,
    reflection). SIGHUP reloads the policy file; SIGTERM drains and stops.

    Other commands: throttlekit-server health | lua | config | bench | policy ... (each with --help);
    throttlekit-server --version.
    """
    from ..server import RateLimiterService, server_credentials
    from ..server._logs import configure_logging

    configure_logging(log_level, log_format)
    loop_factory, loop_tag = _event_loop(loop_name)
    redis_url = _env_url(store, "redis", redis_url)
    shared["postgres_url"] = _env_url(store, "postgres", shared["postgres_url"])
    backend = _store(store, redis_url, shared["postgres_url"], shared["dynamodb_table"])
    if shared.get("memory_max_keys") is not None and backend != "memory":
        raise click.UsageError(f"--memory-max-keys applies to the memory store, not --store {backend}")
    try:
        shared_store = _shared_store(backend, shared, redis_url, redis_prefix)
    except ConfigError as exc:  # a missing driver (install hint) or a bad option
        raise click.ClickException(str(exc)) from None
    security = _security(tls_cert, tls_key, tls_ca)
    try:
        loaded_state = _file_state(config_path)
        cfg = load_config_file(config_path)
    except PolicyConfigError as exc:
        raise click.ClickException(str(exc)) from None
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        credentials = server_credentials(tls_cert, tls_key, tls_ca) if tls_cert and tls_key else None
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if security == "insecure" and not is_loopback(host):
        _say(
            f"warning: serving insecure gRPC on {host}: anyone who can reach it can spend every budget; "
            "use --tls-cert/--tls-key (and --tls-ca for mTLS) or bind 127.0.0.1"
        )

    if monitor == "off" and monitor_secret:
        _say("warning: --monitor-secret is ignored with --monitor off")
    if monitor == "on" and not monitor_secret and not is_loopback(host):
        _say(
            f"warning: the Monitor door is loopback-only: remote Monitor calls to {host} will be "
            "UNAUTHENTICATED; set --monitor-secret (or THROTTLEKIT_MONITOR_SECRET) to expose it"
        )
    if workers > 1:
        if backend == "memory":
            raise click.UsageError(
                f"--workers {workers} needs a shared store (--redis, --postgres-url or --dynamodb-table): on "
                "the memory store each worker would keep its own counters, and a client would get up to "
                f"{workers} times every limit depending on which worker took its connection"
            )
        from ._workers import run_supervisor

        sys.exit(run_supervisor(sys.argv[1:], workers, host, port, metrics_port, metrics_host, drain_grace))
    monitor_tag = "off" if monitor == "off" else "secret" if monitor_secret else "loopback"
    options: dict[str, Any] = {
        "monitor": monitor == "on",
        "monitor_secret": monitor_secret or None,
        "fleet_secret": fleet_secret or None,
    }
    if worker_index is not None:
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        options.update(
            reuse_port=True,
            node_id=f"{where}#w{worker_index}",
            info={"node": f"{where}#w{worker_index}", "worker": str(worker_index)},
        )
    if metrics_port is not None:
        options.update(metrics_port=metrics_port, metrics_host=metrics_host)
        if not is_loopback(metrics_host):
            _say(
                f"warning: /metrics is served on {metrics_host}:{metrics_port} without authentication "
                "(aggregate series, no client keys); bind 127.0.0.1 or firewall it"
            )
    dashboard = tui and _dashboard_possible()
    if plan_candidate is not None and not dashboard:
        _say("warning: --plan-candidate is for the --tui Plan view; ignored")
    options["telemetry"] = dashboard  # the dashboard reads the hub, even with --monitor off

    async def main() -> None:
        the_store: Any = shared_store
        try:
            owned = True if shared_store is not None else None
            service = RateLimiterService(
                cfg,
                store=the_store,
                fail=fail,  # type: ignore[arg-type]
                close_store=owned,
                lease_ttl_ms=lease_ttl_ms,
                node_id=node_id,
                region=region,
                regional_store=regional_store or None,
            )
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None
        await check_store(service, backend)
        if service.regional_store is not None:
            await check_store(service, "regional", store=service.regional_store)
        capture = _start_capture(cfg, service)
        shadows = _start_replay(cfg, service)
        if shadows is not None:  # the Monitor snapshot's raw_json carries the shadows and the last what-if
            options["sections"] = {"replay": shadows.snapshot}
        panels = None
        if dashboard:
            from ..lens._panels import ReplayPanels

            panels = ReplayPanels(shadows, config_path, plan_candidate)
        fleet_tag = ""
        if service.federated():
            fleet_tag = f", fleet:{'secret' if fleet_secret else 'loopback'}"
            if not fleet_secret and not is_loopback(host):
                _say(
                    f"warning: the Fleet door is loopback-only: remote Reserve calls to {host} will be "
                    "UNAUTHENTICATED; set --fleet-secret (or THROTTLEKIT_FLEET_SECRET) to serve them"
                )
        try:
            tag = f"{backend}, {security}, fail={fail}, monitor:{monitor_tag}{fleet_tag}, loop:{loop_tag}"
            await _run(
                service,
                host,
                port,
                credentials,
                tag,
                drain_grace,
                options,
                config_path,
                WATCH_CONFIG_S if watch_config else None,
                loaded_state,
                panels,
            )
        except OSError as exc:
            await service.aclose()
            raise click.ClickException(str(exc)) from None
        finally:
            if capture is not None:  # after the drain: the decisions of calls in flight are in it
                await capture.aclose()

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main())


def _event_loop(name: str) -> tuple[Callable[[], asyncio.AbstractEventLoop] | None, str]:
    """``(loop factory for asyncio.Runner, its name)`` for ``--loop``: uvloop when asked for or, with
    ``auto``, when it is installed (the ``uvloop`` extra); else the standard loop (factory None)."""
    if name != "asyncio":
        try:
            import uvloop
        except ImportError:
            if name == "uvloop":
                raise click.UsageError(
                    "--loop uvloop needs uvloop: pip install 'throttlekit-server[uvloop]'"
                ) from None
        else:
            return uvloop.new_event_loop, "uvloop"
    return None, "asyncio"


def _dashboard_possible() -> bool:
    """``--tui`` needs a terminal on stdin and stdout and the ``tui`` extra; otherwise warn and serve."""
    if not (os.isatty(0) and os.isatty(1)):
        _say("warning: --tui needs a terminal on stdin and stdout; serving without the dashboard")
        return False
    try:
        import textual  # noqa: F401
    except ImportError:
        _say(
            "warning: --tui needs the tui extra (pip install 'throttlekit-server[tui]'); serving without "
            "the dashboard"
        )
        return False
    return True


def _dial_host(host: str) -> str:
    """The address a local probe dials for a server bound on ``host`` (any-address binds -> loopback)."""
    host = host.strip("[]")
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def _name_override(cert_pem: bytes, dial: str) -> str | None:
    """The TLS name to verify the server's certificate against when dialling ``dial``: None when the
    certificate names ``dial`` itself, else its first DNS name (or its common name)."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    leaf = x509.load_pem_x509_certificates(cert_pem)[0]
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    if san is not None:
        ips = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
        dns = san.get_values_for_type(x509.DNSName)
        if dial in ips or dial in dns:
            return None
        if dns:
            return dns[0]
    cn = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(cn[0].value) if cn else None


def probe(
    host: str,
    port: int,
    *,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    tls_ca: str | None = None,
    tls_root: str | None = None,
    client_cert: str | None = None,
    client_key: str | None = None,
    service: str = "",
    timeout: float = 2.0,
) -> tuple[bool, str]:
    """Ask the health service of the server bound on ``host:port`` with the server's own TLS settings;
    returns (SERVING?, what was seen). Under TLS the server's certificate is verified against ``tls_root``
    (default: the certificate file itself, which holds for a self-signed certificate or a chain file that
    ends in its root); under mTLS (``tls_ca``) the probe presents ``client_cert``/``client_key``, by
    default the server's own pair (valid when the client CA signed it for client use)."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from ..server import check_tls_files

    dial = _dial_host(host)
    target = f"[{dial}]:{port}" if ":" in dial else f"{dial}:{port}"
    if tls_cert:
        cert_pem, key_pem, _ = check_tls_files(tls_cert, tls_key or tls_cert)
        root = Path(tls_root).read_bytes() if tls_root else cert_pem
        pair: tuple[bytes | None, bytes | None] = (None, None)
        if client_cert or tls_ca:
            pair = (
                (Path(client_key).read_bytes(), Path(client_cert).read_bytes())
                if client_cert and client_key
                else (key_pem, cert_pem)
            )
        creds = grpc.ssl_channel_credentials(root, pair[0], pair[1])
        name = _name_override(cert_pem, dial)
        options = [("grpc.ssl_target_name_override", name)] if name else []
        channel = grpc.secure_channel(target, creds, options=options)
    else:
        channel = grpc.insecure_channel(target)
    with channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError as exc:
            return False, f"{target}: {exc.code().name}: {exc.details()}"
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    return reply.status == health_pb2.HealthCheckResponse.SERVING, f"{target}: {status}"


@click.command()
@_host_option("The server's --host.")
@_port_option(1, "The server's --port.")
@click.option("--tls-cert", envvar="THROTTLEKIT_TLS_CERT", help="The server's --tls-cert (then TLS).")
@click.option("--tls-key", envvar="THROTTLEKIT_TLS_KEY", help="The server's --tls-key.")
@click.option("--tls-ca", envvar="THROTTLEKIT_TLS_CA", help="The server's --tls-ca (then mTLS).")
@click.option(
    "--tls-root",
    envvar="THROTTLEKIT_TLS_ROOT",
    help="PEM root that signed the server's certificate (default: the --tls-cert file itself).",
)
@click.option(
    "--client-cert",
    envvar="THROTTLEKIT_PROBE_CERT",
    help="Client certificate under mTLS (default: the server's own pair).",
)
@click.option("--client-key", envvar="THROTTLEKIT_PROBE_KEY", help="Client key under mTLS.")
@click.option("--service", default="", help="Health service name ('' = the whole server).")
@click.option("--timeout", default=2.0, show_default=True, type=click.FloatRange(0.1, 60), help="Seconds.")
def health(
    host: str,
    port: int,
    tls_cert: str | None,
    tls_key: str | None,
    tls_ca: str | None,
    tls_root: str | None,
    client_cert: str | None,
    client_key: str | None,
    service: str,
    timeout: float,
) -> None:
    """Probe a running server's gRPC health with the same address and TLS settings (flags or the same
    THROTTLEKIT_* variables) as ``serve``: exit 0 when SERVING, 1 otherwise (NOT_SERVING while it
    drains, unreachable, a TLS failure). The container's HEALTHCHECK."""
    try:
        ok, seen = probe(
            host,
            port,
            tls_cert=tls_cert,
            tls_key=tls_key,
            tls_ca=tls_ca,
            tls_root=tls_root,
            client_cert=client_cert,
            client_key=client_key,
            service=service,
            timeout=timeout,
        )
    except (ConfigError, OSError) as exc:
        raise click.ClickException(f"health probe: {exc}") from None
    click.echo(seen, err=not ok)
    if not ok:
        sys.exit(1)
