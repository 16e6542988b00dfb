"""The Fleet door, ``throttlekit.v1.Fleet/Reserve``: a client leases a chunk of a ``federated:`` policy's
window budget and spends it locally (:class:`~throttlekit.LeaseSpender`), round-tripping only to refresh.

Handling order (spec server-behaviour 4.5): the caller is admitted (:class:`DoorGuard`: loopback only,
unless ``--fleet-secret`` is set and presented) else ``UNAUTHENTICATED``; the policy must be a federated
one else ``NOT_FOUND``; the concurrency axis is ``UNIMPLEMENTED`` (rate, token budget and unspecified
lease the same window budget); the lease key is ``caller.domain``, or the policy name when empty (a Check
of that key draws from the same budget); ``wants`` <= 0 means 1. The grant comes from the policy's
coordinator (``fed_lease``) on the store's clock: ``capacity`` may be below ``wants`` (0 is a refusal, a
normal reply), ``expiry_ms`` is the window's end, ``refresh_interval_ms`` the time left to it,
``safe_capacity`` equals ``capacity``, ``retry_after_ms`` is the time to the window's end when refused,
``limit`` the key's budget per window. ``has``, ``used``, ``client_id``, ``region`` and ``priority`` are
ignored (v1). A coordinator outage is ``UNAVAILABLE`` (the client's own fail policy applies; a grant is
never synthesized).
"""

from __future__ import annotations

import logging
from typing import Any

import grpc

from .._errors import StoreError, loggable
from .._proto import throttlekit_pb2 as pb
from ..strategies import MAX_COST
from ._auth import DoorGuard
from ._door import MAX_KEY_BYTES, _decoder, _Malformed
from ._service import RateLimiterService

__all__ = ["FLEET", "FleetDoor", "add_fleet_to_server"]

log = logging.getLogger("throttlekit.server")

#: The Fleet service's full name (gRPC health lists it when served).
FLEET = pb.DESCRIPTOR.services_by_name["Fleet"].full_name


class FleetDoor:
    """``throttlekit.v1.Fleet`` over the federated policies of a :class:`RateLimiterService`."""

    def __init__(self, service: RateLimiterService, secret: str | None = None) -> None:
        self.service = service
        self.guard = DoorGuard("fleet", "x-fleet-secret", "--fleet-secret", secret)

    async def Reserve(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        refusal = self.guard.refusal(context.peer(), context.invocation_metadata())
        if refusal is not None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, refusal)
        if isinstance(request, _Malformed):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.problem)
        name = request.policy
        rt = self.service.federated().get(name)
        if rt is None:
            await context.abort(
                grpc.StatusCode.NOT_FOUND,
                f'fleet: no leasable policy "{name}" (Reserve serves federated: policies)',
            )
        if request.axis == pb.AXIS_CONCURRENCY:
            await context.abort(
                grpc.StatusCode.UNIMPLEMENTED,
                "fleet: the concurrency axis is not leasable in v1 (lease AXIS_RATE or AXIS_TOKEN_BUDGET; "
                "concurrency is admitted with Admit/Release)",
            )
        key = request.caller.domain or name
        if len(key) > MAX_KEY_BYTES // 4 and len(key.encode("utf-8")) > MAX_KEY_BYTES:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"caller.domain is longer than {MAX_KEY_BYTES} bytes"
            )
        wants = request.wants
        if wants > MAX_COST:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"wants must be at most {MAX_COST}, got {wants}"
            )
        assert rt is not None  # abort raised
        try:
            g = await rt.reserve(key, max(1, wants))
        except StoreError as exc:
            await context.abort(
                grpc.StatusCode.UNAVAILABLE,
                f'fleet: policy "{name}": the coordinator store is unavailable ({loggable(exc)})',
            )
        except Exception as exc:
            self.service.errors.report(
                f"fleet:{type(exc).__name__}:{name}",
                f'fleet: policy "{name}": reserve failed: {loggable(exc)}',
            )
            await context.abort(
                grpc.StatusCode.INTERNAL,
                f'fleet: policy "{name}": internal error; the server log has the detail',
            )
        d = g.decision
        return pb.ReserveResponse(
            lease=pb.Lease(
                capacity=g.granted,
                expiry_ms=g.expires_at,
                refresh_interval_ms=g.ttl_ms,
                safe_capacity=g.granted,
                retry_after_ms=0 if g.granted > 0 else d.retry_after_ms,
                limit=d.limit,
            )
        )


class _FleetHandler(grpc.GenericRpcHandler):  # type: ignore[misc]
    """Routes ``throttlekit.v1.Fleet`` calls to the door while the service has a federated policy; without
    one it answers None, so gRPC replies UNIMPLEMENTED exactly as for a service never registered. Checked
    per call: a reload that adds the first federated policy opens the door, one that removes the last
    closes it (spec server-behaviour 4.3: Fleet with no federated policy is not served)."""

    def __init__(self, door: FleetDoor, handlers: dict[str, grpc.RpcMethodHandler]) -> None:
        self.door = door
        self.handlers = handlers

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        handler = self.handlers.get(handler_call_details.method)
        if handler is None or not self.door.service.federated():
            return None
        return handler


def add_fleet_to_server(door: FleetDoor, server: grpc.aio.Server) -> None:
    """Register ``door``'s handler for ``throttlekit.v1.Fleet/Reserve``: served while the door's service
    has a federated policy (decided per call, so a reload opens or closes the door)."""
    service = pb.DESCRIPTOR.services_by_name["Fleet"]
    handlers = {
        f"/{service.full_name}/{m.name}": grpc.unary_unary_rpc_method_handler(
            getattr(door, m.name),
            request_deserializer=_decoder(getattr(pb, m.input_type.name)),
            response_serializer=getattr(pb, m.output_type.name).SerializeToString,
        )
        for m in service.methods
    }
    server.add_generic_rpc_handlers((_FleetHandler(door, handlers),))
