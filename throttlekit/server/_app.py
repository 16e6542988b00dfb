"""Run a :class:`RateLimiterService` as a grpc.aio server: health, reflection, TLS, graceful shutdown.

``await start(service, host, port)`` serves on the running event loop and returns an
:class:`AsyncServerHandle`; ``serve(service, host, port)`` runs the same in a background thread with
its own loop and returns a :class:`ServerHandle` whose ``close()`` drains and stops it (for sync code
and tests). Port 0 picks a free port (``handle.port``).

Health (``grpc.health.v1.Health``) reports SERVING for ``""`` and each served service, NOT_FOUND for
any other name, and NOT_SERVING for all of them from the moment shutdown starts.

Telemetry: unless ``monitor=False`` the server attaches a :class:`TelemetryHub` to the service's decision
tap (``handle.hub``) and serves the Monitor door (``throttlekit.v1.Monitor``) over it: loopback peers
only, or every peer presenting ``monitor_secret``. ``metrics_port`` serves Prometheus ``/metrics``,
``/healthz`` and ``/ready`` from the same hub (attached for metrics even when the Monitor is off).

Store readiness: every :data:`READY_EVERY_S` the server pings its store (bounded by
:data:`READY_TIMEOUT_S`) and reports the result as the health service ``throttlekit.store`` (SERVING or
NOT_SERVING) and on ``/ready``; the server itself stays SERVING during an outage (the fail mode answers).

Shutdown (``aclose(grace, drain=...)``) runs in two phases: first the **drain**: health says NOT_SERVING
while the port keeps answering every call, for ``drain`` seconds, so a load balancer that probes health
sees it and stops routing here before anything is refused; then the **stop**: the port stops accepting,
and calls already received finish (up to ``grace`` seconds) before the store is closed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable, Coroutine, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

from .._errors import ConfigError
from .._proto import throttlekit_pb2 as pb
from ..config import PolicyConfig
from ._door import RateLimiterDoor, add_to_server
from ._fleet import FLEET, FleetDoor, add_fleet_to_server
from ._metrics import MetricsServer, collector_registry
from ._monitor import MONITOR, MonitorDoor, add_monitor
from ._service import RateLimiterService, ReloadReport
from ._telemetry import TelemetryHub

__all__ = [
    "DRAIN_S",
    "GRACE_S",
    "AsyncServerHandle",
    "ServerHandle",
    "check_tls_files",
    "serve",
    "server_credentials",
    "start",
]

log = logging.getLogger("throttlekit.server")


async def _retire(runtimes: tuple[Any, ...], after_s: float | None = None) -> None:
    """Close runtimes a reload replaced, once requests in flight with them are done (or at once when the
    wait is cancelled: a shutdown closes them before the loop ends, never leaving a pending task)."""
    try:
        await asyncio.sleep(GRACE_S if after_s is None else after_s)
    finally:
        for rt in runtimes:
            try:
                await rt.aclose()
            except Exception as exc:
                log.warning(
                    "closing a replaced policy runtime failed: %s: %s", type(exc).__name__, str(exc)[:200]
                )


_T = TypeVar("_T")
RATE_LIMITER = pb.DESCRIPTOR.services_by_name["RateLimiter"].full_name
#: Default seconds a shutdown waits for in-flight calls.
GRACE_S = 5.0
#: Default seconds ``throttlekit-server`` reports NOT_SERVING while still serving, after SIGTERM. Two
#: health probes at a 2 s interval fit in it, and drain plus in-flight grace stay within ``docker stop``'s
#: 10 s and Kubernetes' 30 s default before SIGKILL.
DRAIN_S = 5.0
#: The health service name whose status is the store's readiness.
STORE_HEALTH = "throttlekit.store"
#: Seconds between two readiness pings of the store, and the bound on one ping.
READY_EVERY_S = 5.0
READY_TIMEOUT_S = 2.0


class _GenericOnly:
    """The registration face of a grpc.aio server for generated ``add_*_to_server`` functions: generic
    handlers only. For each *registered* method grpc.aio keeps a pending request task and waits on all of
    them for every call (an ``asyncio.wait`` over 15 tasks per Check with the 14 methods of our services
    registered: about a fifth of the server's instructions per Check, measured with callgrind); a generic
    handler is one dict lookup per call. Our own doors register generic handlers only, too."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        self._server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(self, service: str, handlers: Any) -> None:
        """Dropped on purpose (see the class docstring)."""


_OPTIONS = (
    ("grpc.so_reuseport", 0),
    ("grpc.max_receive_message_length", 4 * 1024 * 1024),
)


def server_credentials(
    cert: str | Path, key: str | Path, ca: str | Path | None = None
) -> grpc.ServerCredentials:
    """TLS credentials from PEM files; with ``ca``, clients must present a certificate signed by it (mTLS).

    The files are checked first (:func:`check_tls_files`): a :class:`ConfigError` names the file that is
    wrong and why, instead of grpc's "cannot bind" later."""
    cert_pem, key_pem, ca_pem = check_tls_files(cert, key, ca)
    return grpc.ssl_server_credentials(
        [(key_pem, cert_pem)], root_certificates=ca_pem, require_client_auth=ca_pem is not None
    )


def check_tls_files(
    cert: str | Path, key: str | Path, ca: str | Path | None = None, *, now: datetime | None = None
) -> tuple[bytes, bytes, bytes | None]:
    """Read and validate the server's PEM files; returns their bytes ``(cert, key, ca)``.

    Raises :class:`ConfigError` naming the flag and file when one cannot be read, holds no PEM
    certificate (``--tls-cert``, ``--tls-ca``) or private key (``--tls-key``; an encrypted key is refused:
    the server has no passphrase to give), when the key is not the certificate's, or when the
    certificate is expired or not yet valid."""
    from cryptography import x509
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    def read(label: str, path: str | Path) -> bytes:
        try:
            return Path(path).read_bytes()
        except OSError as exc:
            raise ConfigError(f"--tls-{label}: cannot read {path}: {exc.strerror or exc}") from exc

    def certificates(label: str, path: str | Path, data: bytes) -> list[x509.Certificate]:
        try:
            certs = x509.load_pem_x509_certificates(data)
        except ValueError as exc:
            raise ConfigError(
                f"--tls-{label} {path}: not a PEM certificate ({_reason(exc)}); expected "
                "'-----BEGIN CERTIFICATE-----' blocks"
            ) from None
        return certs

    cert_pem, key_pem = read("cert", cert), read("key", key)
    ca_pem = read("ca", ca) if ca is not None else None
    chain = certificates("cert", cert, cert_pem)
    try:
        private = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise ConfigError(
            f"--tls-key {key}: the private key is encrypted; give the server an unencrypted PEM key"
        ) from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ConfigError(
            f"--tls-key {key}: not a PEM private key ({_reason(exc)}); expected a "
            "'-----BEGIN PRIVATE KEY-----' (or RSA/EC PRIVATE KEY) block"
        ) from None
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    leaf = chain[0]
    if leaf.public_key().public_bytes(der, spki) != private.public_key().public_bytes(der, spki):
        raise ConfigError(
            f"--tls-key {key} does not match --tls-cert {cert}: the key is not the private key of the "
            f"certificate's public key (subject {leaf.subject.rfc4514_string()})"
        )
    at = now or datetime.now(timezone.utc)
    if at > leaf.not_valid_after_utc:
        raise ConfigError(
            f"--tls-cert {cert}: the certificate expired on {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
        )
    if at < leaf.not_valid_before_utc:
        raise ConfigError(
            f"--tls-cert {cert}: the certificate is not valid before "
            f"{leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
        )
    if ca is not None and ca_pem is not None:
        certificates("ca", ca, ca_pem)
    return cert_pem, key_pem, ca_pem


def _reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


class Health(HealthServicer):  # type: ignore[misc]
    """grpc's asyncio health servicer, plus :meth:`forget`: a service that stops being served (the Fleet
    door after a reload removed the last federated policy) is unknown again (Check: NOT_FOUND; Watch:
    SERVICE_UNKNOWN), as if it had never been registered."""

    async def forget(self, service: str) -> None:
        if service not in self._server_status:
            return
        condition = self._server_watchers.get(service) if service in self._server_watchers else None
        if condition is None:
            del self._server_status[service]
            return
        async with condition:
            del self._server_status[service]
            condition.notify_all()


class AsyncServerHandle:
    """A running server on the current event loop. ``await aclose()`` drains and stops it."""

    def __init__(
        self,
        server: grpc.aio.Server,
        service: RateLimiterService,
        health: Health,
        host: str,
        port: int,
        secure: bool,
        hub: TelemetryHub | None = None,
        monitor: MonitorDoor | None = None,
        metrics: MetricsServer | None = None,
    ) -> None:
        self.server = server
        self.service = service
        self.health = health
        self.host = host
        self.port = port
        self.secure = secure
        #: The telemetry hub on the service's tap (None with ``monitor=False``).
        self.hub = hub
        #: The Monitor door (None when not served).
        self.monitor = monitor
        #: The metrics HTTP server (None without ``metrics_port``) and its bound port.
        self.metrics = metrics
        self.metrics_port = metrics.port if metrics is not None else 0
        self.ready: tuple[bool, dict[str, object]] = (True, {"store": service.store_name, "ready": True})
        self._readiness: asyncio.Task[None] | None = None
        self._retiring: set[asyncio.Task[None]] = set()
        self._closing: asyncio.Task[None] | None = None
        self._draining: asyncio.Event | None = None

    @property
    def address(self) -> str:
        """``host:port`` as a client would dial it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    async def aclose(self, grace: float = GRACE_S, *, drain: float = 0.0) -> None:
        """Report NOT_SERVING and keep serving for ``drain`` s, then stop accepting, let in-flight calls
        finish (up to ``grace`` s) and close the service's store. Idempotent; concurrent calls wait for
        the same shutdown (see :meth:`skip_drain`)."""
        if self._closing is None:
            self._draining = asyncio.Event()
            self._closing = asyncio.ensure_future(self._shutdown(grace, drain, self._draining))
        await asyncio.shield(self._closing)

    def skip_drain(self) -> None:
        """End a drain in progress now (a second signal: the operator wants the port closed)."""
        if self._draining is not None:
            self._draining.set()

    async def check_ready(self) -> tuple[bool, dict[str, object]]:
        """Ping the store now (bounded); record and return (ready?, detail)."""
        from .._errors import loggable

        detail: dict[str, object] = {"store": self.service.store_name}
        try:
            await asyncio.wait_for(self.service.store.aping(), READY_TIMEOUT_S)
            ok = True
        except asyncio.TimeoutError:
            ok, detail["error"] = False, f"no answer within {READY_TIMEOUT_S:g} s"
        except Exception as exc:
            ok, detail["error"] = False, loggable(exc)
        detail["ready"] = ok
        if ok != self.ready[0] and self._closing is None:
            status = (
                health_pb2.HealthCheckResponse.SERVING if ok else health_pb2.HealthCheckResponse.NOT_SERVING
            )
            await self.health.set(STORE_HEALTH, status)
        self.ready = (ok, detail)
        return self.ready

    async def _watch_ready(self, every_s: float) -> None:
        while True:
            await self.check_ready()
            await asyncio.sleep(every_s)

    async def _shutdown(self, grace: float, drain: float, skip: asyncio.Event) -> None:
        if self._readiness is not None:
            self._readiness.cancel()
        await self.health.enter_graceful_shutdown()
        if drain > 0:
            try:
                await asyncio.wait_for(skip.wait(), drain)
            except asyncio.TimeoutError:
                pass
        await self.server.stop(grace)
        retiring = list(self._retiring)  # no request is in flight any more: close replaced runtimes now
        for task in retiring:
            task.cancel()
        await asyncio.gather(*retiring, return_exceptions=True)
        if self.metrics is not None:
            await self.metrics.aclose()
        await self.service.aclose()

    async def reload(self, config: PolicyConfig) -> ReloadReport:
        """Swap in ``config`` (see :meth:`RateLimiterService.reload`), re-track the hub's policies and
        close the retired runtimes after :data:`GRACE_S` (requests in flight finish with them)."""
        report = self.service.reload(config)
        await self.service.astart_built(report)
        await self._sync_fleet_health()
        if self.hub is not None:
            self.hub.sync_policies(self.service)
        if report.retired:
            task = asyncio.ensure_future(_retire(report.retired))
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)
        return report

    async def _sync_fleet_health(self) -> None:
        """Health lists ``throttlekit.v1.Fleet`` iff the Fleet door serves (a federated policy exists)."""
        if self._closing is not None:
            return
        if self.service.federated():
            await self.health.set(FLEET, health_pb2.HealthCheckResponse.SERVING)
        else:
            await self.health.forget(FLEET)

    async def reload_file(self, path: str | Path) -> bool:
        """Load ``path`` (in a thread: a large file does not stall the loop) and :meth:`reload` it. Any
        error keeps the current policies and is logged with the reason (and counted); returns success."""
        from ..config import load_config_file

        try:
            config = await asyncio.to_thread(load_config_file, path)
        except ConfigError as exc:  # the file: unreadable or invalid (every problem listed)
            self.service.reloads["error"] += 1
            return self._reload_failed(path, exc)
        try:
            report = await self.reload(config)
        except ConfigError as exc:  # refused by the service (counted there)
            return self._reload_failed(path, exc)
        log.warning(
            "config reloaded from %s: %d policies (%s)", path, len(self.service.names), report.describe()
        )
        return True

    def _reload_failed(self, path: str | Path, exc: ConfigError) -> bool:
        log.error(
            "config reload from %s failed; still serving the %d current policies: %s",
            path,
            len(self.service.names),
            exc,
        )
        return False

    async def wait_closed(self) -> None:
        """Return when the server has stopped."""
        await self.server.wait_for_termination()


async def start(
    service: RateLimiterService,
    host: str = "127.0.0.1",
    port: int = 50051,
    credentials: grpc.ServerCredentials | None = None,
    *,
    monitor: bool = True,
    monitor_secret: str | None = None,
    node_id: str | None = None,
    metrics_port: int | None = None,
    metrics_host: str = "127.0.0.1",
    info: dict[str, str] | None = None,
    reuse_port: bool = False,
    telemetry: bool = False,
    fleet_secret: str | None = None,
    sections: Mapping[str, Callable[[], Any]] | None = None,
) -> AsyncServerHandle:
    """Serve ``service`` on ``host:port`` (0 = any free port) on the running loop. ``monitor``: attach
    the telemetry hub and serve the Monitor door (``monitor_secret``: required from every caller; None:
    loopback callers only). ``node_id``: the snapshot's ``meta.nodeId`` (default ``host:port``).
    ``metrics_port`` (0 = any free port) on ``metrics_host``: Prometheus and readiness over HTTP;
    ``info``: the labels of ``throttlekit_server_info``. ``reuse_port``: bind with SO_REUSEPORT (the
    workers of ``--workers`` share one port). ``telemetry``: attach the hub even without the Monitor
    door or metrics (``--tui --monitor off``). The Fleet door is served when the service has a
    ``federated:`` policy (loopback callers only, unless ``fleet_secret`` is set: then every caller must
    present it). ``sections``: extra top-level snapshot sections (name -> callable returning JSON-ready
    data) the hub adds to ``raw_json`` (``replay``: the What-If shadows)."""
    options = (*(o for o in _OPTIONS if o[0] != "grpc.so_reuseport"), ("grpc.so_reuseport", 1))
    server = grpc.aio.server(options=options if reuse_port else _OPTIONS)
    add_to_server(RateLimiterDoor(service), server)
    fleet = bool(service.federated())
    add_fleet_to_server(FleetDoor(service, fleet_secret), server)  # served while a federated policy exists
    hub: TelemetryHub | None = None
    door: MonitorDoor | None = None
    if monitor or metrics_port is not None or telemetry:
        hub = TelemetryHub(
            backend=service.store_name,
            fail_mode=service.fail,
            now_ms=service.clock.now_ms if service.clock is not None else None,
        )
        hub.attach(service)
        hub.sections.update(sections or {})
    if monitor and hub is not None:
        door = MonitorDoor(hub, monitor_secret)
        add_monitor(door, server)
    health = Health()
    health_pb2_grpc.add_HealthServicer_to_server(health, _GenericOnly(server))
    served = (RATE_LIMITER, *((MONITOR,) if monitor else ()), *((FLEET,) if fleet else ()))
    names = (
        *served,
        health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
        reflection.SERVICE_NAME,
    )
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(
        reflection.aio.ReflectionServicer(names), _GenericOnly(server)
    )
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = (
            server.add_secure_port(target, credentials)
            if credentials is not None
            else server.add_insecure_port(target)
        )
    except RuntimeError as exc:
        raise OSError(f"cannot bind {target}: {exc}") from exc
    if bound == 0:
        raise OSError(f"cannot bind {target} (address in use or not available)")
    await server.start()
    try:
        await service.astart()
    except BaseException:
        await server.stop(0)
        raise
    for name in ("", *served, STORE_HEALTH):
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    handle = AsyncServerHandle(server, service, health, host, bound, credentials is not None, hub, door)
    if hub is not None:
        hub.node_id = node_id if node_id is not None else handle.address
    if metrics_port is not None and hub is not None:

        async def snapshot() -> dict[str, Any]:
            return hub.snapshot() if hub is not None else {}

        metrics = MetricsServer(
            collector_registry(hub, service, info or {"node": hub.node_id}), handle.check_ready, snapshot
        )
        try:
            await metrics.start(metrics_host, metrics_port)
        except OSError as exc:
            await server.stop(0)
            raise OSError(
                f"cannot bind the metrics port {metrics_host}:{metrics_port}: {exc.strerror or exc}"
            ) from exc
        handle.metrics, handle.metrics_port = metrics, metrics.port
    handle._readiness = asyncio.ensure_future(handle._watch_ready(READY_EVERY_S))
    return handle


class ServerHandle:
    """A server running on its own thread and event loop. ``close()`` drains and stops it."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, thread: threading.Thread, inner: AsyncServerHandle
    ) -> None:
        self._loop = loop
        self._thread = thread
        self.inner = inner
        self.port = inner.port
        self.host = inner.host
        self.address = inner.address
        self.service = inner.service
        self.hub = inner.hub
        self.metrics_port = inner.metrics_port

    def reload(self, config: PolicyConfig, timeout: float = 60.0) -> ReloadReport:
        """Swap in ``config`` on the server's loop (see :meth:`AsyncServerHandle.reload`)."""
        return asyncio.run_coroutine_threadsafe(self.inner.reload(config), self._loop).result(timeout)

    def submit(self, coro: Coroutine[Any, Any, _T]) -> concurrent.futures.Future[_T]:
        """Run ``coro`` on the server's event loop (where decisions and their observers run)."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def close(self, grace: float = GRACE_S, *, drain: float = 0.0) -> None:
        """Drain (NOT_SERVING for ``drain`` s while serving) and stop (idempotent)."""
        if not self._thread.is_alive():
            return
        fut = asyncio.run_coroutine_threadsafe(self.inner.aclose(grace, drain=drain), self._loop)
        try:
            fut.result(timeout=drain + grace + 10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve(
    service: RateLimiterService,
    host: str = "127.0.0.1",
    port: int = 50051,
    credentials: grpc.ServerCredentials | None = None,
    **options: Any,
) -> ServerHandle:
    """Embedding API: serve ``service`` from a background thread; returns once the port is bound.
    ``options``: :func:`start`'s keyword options (``monitor``, ``monitor_secret``, ``node_id``)."""
    loop = asyncio.new_event_loop()
    ready: dict[str, Any] = {}
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            ready["handle"] = loop.run_until_complete(start(service, host, port, credentials, **options))
        except BaseException as exc:
            ready["error"] = exc
            started.set()
            loop.close()
            return
        started.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    thread = threading.Thread(target=run, name=f"throttlekit-server:{port}", daemon=True)
    thread.start()
    started.wait()
    if "error" in ready:
        raise ready["error"]
    return ServerHandle(loop, thread, ready["handle"])
