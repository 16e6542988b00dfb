from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Axis(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AXIS_UNSPECIFIED: _ClassVar[Axis]
    AXIS_RATE: _ClassVar[Axis]
    AXIS_CONCURRENCY: _ClassVar[Axis]
    AXIS_TOKEN_BUDGET: _ClassVar[Axis]
AXIS_UNSPECIFIED: Axis
AXIS_RATE: Axis
AXIS_CONCURRENCY: Axis
AXIS_TOKEN_BUDGET: Axis

class Decision(_message.Message):
    __slots__ = ("allowed", "limit", "remaining", "reset_at", "retry_after_ms")
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    REMAINING_FIELD_NUMBER: _ClassVar[int]
    RESET_AT_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_MS_FIELD_NUMBER: _ClassVar[int]
    allowed: bool
    limit: int
    remaining: int
    reset_at: int
    retry_after_ms: int
    def __init__(self, allowed: _Optional[bool] = ..., limit: _Optional[int] = ..., remaining: _Optional[int] = ..., reset_at: _Optional[int] = ..., retry_after_ms: _Optional[int] = ...) -> None: ...

class CheckRequest(_message.Message):
    __slots__ = ("policy", "key", "cost")
    POLICY_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    policy: str
    key: str
    cost: int
    def __init__(self, policy: _Optional[str] = ..., key: _Optional[str] = ..., cost: _Optional[int] = ...) -> None: ...

class CheckResponse(_message.Message):
    __slots__ = ("decision",)
    DECISION_FIELD_NUMBER: _ClassVar[int]
    decision: Decision
    def __init__(self, decision: _Optional[_Union[Decision, _Mapping]] = ...) -> None: ...

class CheckManyRequest(_message.Message):
    __slots__ = ("policy", "keys", "cost")
    POLICY_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    policy: str
    keys: _containers.RepeatedScalarFieldContainer[str]
    cost: int
    def __init__(self, policy: _Optional[str] = ..., keys: _Optional[_Iterable[str]] = ..., cost: _Optional[int] = ...) -> None: ...

class CheckManyResponse(_message.Message):
    __slots__ = ("decisions",)
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    decisions: _containers.RepeatedCompositeFieldContainer[Decision]
    def __init__(self, decisions: _Optional[_Iterable[_Union[Decision, _Mapping]]] = ...) -> None: ...

class PeekRequest(_message.Message):
    __slots__ = ("policy", "key")
    POLICY_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    policy: str
    key: str
    def __init__(self, policy: _Optional[str] = ..., key: _Optional[str] = ...) -> None: ...

class PeekResponse(_message.Message):
    __slots__ = ("decision",)
    DECISION_FIELD_NUMBER: _ClassVar[int]
    decision: Decision
    def __init__(self, decision: _Optional[_Union[Decision, _Mapping]] = ...) -> None: ...

class ForecastRequest(_message.Message):
    __slots__ = ("policy", "key", "cost")
    POLICY_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    policy: str
    key: str
    cost: int
    def __init__(self, policy: _Optional[str] = ..., key: _Optional[str] = ..., cost: _Optional[int] = ...) -> None: ...

class Forecast(_message.Message):
    __slots__ = ("spendable_now", "next_replenish_at", "full_at")
    SPENDABLE_NOW_FIELD_NUMBER: _ClassVar[int]
    NEXT_REPLENISH_AT_FIELD_NUMBER: _ClassVar[int]
    FULL_AT_FIELD_NUMBER: _ClassVar[int]
    spendable_now: int
    next_replenish_at: int
    full_at: int
    def __init__(self, spendable_now: _Optional[int] = ..., next_replenish_at: _Optional[int] = ..., full_at: _Optional[int] = ...) -> None: ...

class ForecastResponse(_message.Message):
    __slots__ = ("forecast",)
    FORECAST_FIELD_NUMBER: _ClassVar[int]
    forecast: Forecast
    def __init__(self, forecast: _Optional[_Union[Forecast, _Mapping]] = ...) -> None: ...

class DebitRequest(_message.Message):
    __slots__ = ("policy", "key", "tokens")
    POLICY_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    policy: str
    key: str
    tokens: int
    def __init__(self, policy: _Optional[str] = ..., key: _Optional[str] = ..., tokens: _Optional[int] = ...) -> None: ...

class DebitResponse(_message.Message):
    __slots__ = ("decision",)
    DECISION_FIELD_NUMBER: _ClassVar[int]
    decision: Decision
    def __init__(self, decision: _Optional[_Union[Decision, _Mapping]] = ...) -> None: ...

class AdmitRequest(_message.Message):
    __slots__ = ("policy", "key", "cost", "hold", "value")
    POLICY_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    HOLD_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    policy: str
    key: str
    cost: int
    hold: int
    value: int
    def __init__(self, policy: _Optional[str] = ..., key: _Optional[str] = ..., cost: _Optional[int] = ..., hold: _Optional[int] = ..., value: _Optional[int] = ...) -> None: ...

class AdmitResponse(_message.Message):
    __slots__ = ("decision", "lease_id", "lease_expires_at", "binding_axis", "policy_denied")
    DECISION_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    BINDING_AXIS_FIELD_NUMBER: _ClassVar[int]
    POLICY_DENIED_FIELD_NUMBER: _ClassVar[int]
    decision: Decision
    lease_id: str
    lease_expires_at: int
    binding_axis: str
    policy_denied: bool
    def __init__(self, decision: _Optional[_Union[Decision, _Mapping]] = ..., lease_id: _Optional[str] = ..., lease_expires_at: _Optional[int] = ..., binding_axis: _Optional[str] = ..., policy_denied: _Optional[bool] = ...) -> None: ...

class ReleaseRequest(_message.Message):
    __slots__ = ("lease_id", "dropped")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    lease_id: str
    dropped: bool
    def __init__(self, lease_id: _Optional[str] = ..., dropped: _Optional[bool] = ...) -> None: ...

class ReleaseResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("lease_ids",)
    LEASE_IDS_FIELD_NUMBER: _ClassVar[int]
    lease_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, lease_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("live_ids", "reclaimed_ids", "next_deadline")
    LIVE_IDS_FIELD_NUMBER: _ClassVar[int]
    RECLAIMED_IDS_FIELD_NUMBER: _ClassVar[int]
    NEXT_DEADLINE_FIELD_NUMBER: _ClassVar[int]
    live_ids: _containers.RepeatedScalarFieldContainer[str]
    reclaimed_ids: _containers.RepeatedScalarFieldContainer[str]
    next_deadline: int
    def __init__(self, live_ids: _Optional[_Iterable[str]] = ..., reclaimed_ids: _Optional[_Iterable[str]] = ..., next_deadline: _Optional[int] = ...) -> None: ...

class GetSnapshotRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class MonitorMeta(_message.Message):
    __slots__ = ("generated_at", "window_ms", "mode", "lens_version", "node_id")
    GENERATED_AT_FIELD_NUMBER: _ClassVar[int]
    WINDOW_MS_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    LENS_VERSION_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    generated_at: int
    window_ms: int
    mode: str
    lens_version: str
    node_id: str
    def __init__(self, generated_at: _Optional[int] = ..., window_ms: _Optional[int] = ..., mode: _Optional[str] = ..., lens_version: _Optional[str] = ..., node_id: _Optional[str] = ...) -> None: ...

class KeyCount(_message.Message):
    __slots__ = ("key", "count")
    KEY_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    key: str
    count: int
    def __init__(self, key: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class LatencySummary(_message.Message):
    __slots__ = ("avg_ms", "p50_ms", "p99_ms", "max_ms", "n")
    AVG_MS_FIELD_NUMBER: _ClassVar[int]
    P50_MS_FIELD_NUMBER: _ClassVar[int]
    P99_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_MS_FIELD_NUMBER: _ClassVar[int]
    N_FIELD_NUMBER: _ClassVar[int]
    avg_ms: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    n: int
    def __init__(self, avg_ms: _Optional[float] = ..., p50_ms: _Optional[float] = ..., p99_ms: _Optional[float] = ..., max_ms: _Optional[float] = ..., n: _Optional[int] = ...) -> None: ...

class PolicySummary(_message.Message):
    __slots__ = ("name", "kind", "strategy", "allowed", "denied", "limit", "latency", "top_denied", "top_requested")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    DENIED_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    LATENCY_FIELD_NUMBER: _ClassVar[int]
    TOP_DENIED_FIELD_NUMBER: _ClassVar[int]
    TOP_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    strategy: str
    allowed: int
    denied: int
    limit: int
    latency: LatencySummary
    top_denied: _containers.RepeatedCompositeFieldContainer[KeyCount]
    top_requested: _containers.RepeatedCompositeFieldContainer[KeyCount]
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., strategy: _Optional[str] = ..., allowed: _Optional[int] = ..., denied: _Optional[int] = ..., limit: _Optional[int] = ..., latency: _Optional[_Union[LatencySummary, _Mapping]] = ..., top_denied: _Optional[_Iterable[_Union[KeyCount, _Mapping]]] = ..., top_requested: _Optional[_Iterable[_Union[KeyCount, _Mapping]]] = ...) -> None: ...

class GuardSummary(_message.Message):
    __slots__ = ("name", "limit", "inflight", "share", "l_global", "nodes", "fenced")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    INFLIGHT_FIELD_NUMBER: _ClassVar[int]
    SHARE_FIELD_NUMBER: _ClassVar[int]
    L_GLOBAL_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    FENCED_FIELD_NUMBER: _ClassVar[int]
    name: str
    limit: int
    inflight: int
    share: float
    l_global: int
    nodes: int
    fenced: bool
    def __init__(self, name: _Optional[str] = ..., limit: _Optional[int] = ..., inflight: _Optional[int] = ..., share: _Optional[float] = ..., l_global: _Optional[int] = ..., nodes: _Optional[int] = ..., fenced: _Optional[bool] = ...) -> None: ...

class DenialEvent(_message.Message):
    __slots__ = ("at", "policy", "key", "axis", "limit", "remaining", "retry_after_ms")
    AT_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    AXIS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    REMAINING_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_MS_FIELD_NUMBER: _ClassVar[int]
    at: int
    policy: str
    key: str
    axis: str
    limit: int
    remaining: int
    retry_after_ms: int
    def __init__(self, at: _Optional[int] = ..., policy: _Optional[str] = ..., key: _Optional[str] = ..., axis: _Optional[str] = ..., limit: _Optional[int] = ..., remaining: _Optional[int] = ..., retry_after_ms: _Optional[int] = ...) -> None: ...

class Snapshot(_message.Message):
    __slots__ = ("meta", "policies", "guards", "recent_denials", "raw_json")
    META_FIELD_NUMBER: _ClassVar[int]
    POLICIES_FIELD_NUMBER: _ClassVar[int]
    GUARDS_FIELD_NUMBER: _ClassVar[int]
    RECENT_DENIALS_FIELD_NUMBER: _ClassVar[int]
    RAW_JSON_FIELD_NUMBER: _ClassVar[int]
    meta: MonitorMeta
    policies: _containers.RepeatedCompositeFieldContainer[PolicySummary]
    guards: _containers.RepeatedCompositeFieldContainer[GuardSummary]
    recent_denials: _containers.RepeatedCompositeFieldContainer[DenialEvent]
    raw_json: str
    def __init__(self, meta: _Optional[_Union[MonitorMeta, _Mapping]] = ..., policies: _Optional[_Iterable[_Union[PolicySummary, _Mapping]]] = ..., guards: _Optional[_Iterable[_Union[GuardSummary, _Mapping]]] = ..., recent_denials: _Optional[_Iterable[_Union[DenialEvent, _Mapping]]] = ..., raw_json: _Optional[str] = ...) -> None: ...

class GetSnapshotResponse(_message.Message):
    __slots__ = ("snapshot",)
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    snapshot: Snapshot
    def __init__(self, snapshot: _Optional[_Union[Snapshot, _Mapping]] = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ("policy",)
    POLICY_FIELD_NUMBER: _ClassVar[int]
    policy: str
    def __init__(self, policy: _Optional[str] = ...) -> None: ...

class WatchResponse(_message.Message):
    __slots__ = ("denial",)
    DENIAL_FIELD_NUMBER: _ClassVar[int]
    denial: DenialEvent
    def __init__(self, denial: _Optional[_Union[DenialEvent, _Mapping]] = ...) -> None: ...

class Caller(_message.Message):
    __slots__ = ("domain", "client_id", "region", "priority")
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    domain: str
    client_id: str
    region: str
    priority: int
    def __init__(self, domain: _Optional[str] = ..., client_id: _Optional[str] = ..., region: _Optional[str] = ..., priority: _Optional[int] = ...) -> None: ...

class ReserveRequest(_message.Message):
    __slots__ = ("policy", "caller", "wants", "has", "used", "axis")
    POLICY_FIELD_NUMBER: _ClassVar[int]
    CALLER_FIELD_NUMBER: _ClassVar[int]
    WANTS_FIELD_NUMBER: _ClassVar[int]
    HAS_FIELD_NUMBER: _ClassVar[int]
    USED_FIELD_NUMBER: _ClassVar[int]
    AXIS_FIELD_NUMBER: _ClassVar[int]
    policy: str
    caller: Caller
    wants: int
    has: int
    used: int
    axis: Axis
    def __init__(self, policy: _Optional[str] = ..., caller: _Optional[_Union[Caller, _Mapping]] = ..., wants: _Optional[int] = ..., has: _Optional[int] = ..., used: _Optional[int] = ..., axis: _Optional[_Union[Axis, str]] = ...) -> None: ...

class Lease(_message.Message):
    __slots__ = ("capacity", "expiry_ms", "refresh_interval_ms", "safe_capacity", "retry_after_ms", "limit")
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    EXPIRY_MS_FIELD_NUMBER: _ClassVar[int]
    REFRESH_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    SAFE_CAPACITY_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_MS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    capacity: int
    expiry_ms: int
    refresh_interval_ms: int
    safe_capacity: int
    retry_after_ms: int
    limit: int
    def __init__(self, capacity: _Optional[int] = ..., expiry_ms: _Optional[int] = ..., refresh_interval_ms: _Optional[int] = ..., safe_capacity: _Optional[int] = ..., retry_after_ms: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class ReserveResponse(_message.Message):
    __slots__ = ("lease",)
    LEASE_FIELD_NUMBER: _ClassVar[int]
    lease: Lease
    def __init__(self, lease: _Optional[_Union[Lease, _Mapping]] = ...) -> None: ...
