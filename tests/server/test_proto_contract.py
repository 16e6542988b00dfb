"""The wire contract only grows: the compiled descriptor keeps every released message, field (name,
number, type, label), enum value, reserved range and RPC. Also: the checked-in stubs match the proto."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from throttlekit._proto import throttlekit_pb2

ROOT = Path(__file__).resolve().parents[2]
RELEASED = ROOT / "proto" / "throttlekit" / "v1" / "released.binpb"


def current() -> descriptor_pb2.FileDescriptorProto:
    fd = descriptor_pb2.FileDescriptorProto()
    throttlekit_pb2.DESCRIPTOR.CopyToProto(fd)
    return fd


def released() -> descriptor_pb2.FileDescriptorProto:
    fds = descriptor_pb2.FileDescriptorSet.FromString(RELEASED.read_bytes())
    (fd,) = [f for f in fds.file if f.package == "throttlekit.v1"]
    return fd


def _reserved(msg: descriptor_pb2.DescriptorProto) -> tuple[set[int], set[str]]:
    numbers = {n for r in msg.reserved_range for n in range(r.start, r.end)}
    return numbers, set(msg.reserved_name)


def breaking_changes(
    old: descriptor_pb2.FileDescriptorProto, new: descriptor_pb2.FileDescriptorProto
) -> list[str]:
    """Every way ``new`` breaks clients of ``old`` (empty when ``new`` only adds)."""
    problems: list[str] = []
    if old.package != new.package:
        problems.append(f"package changed: {old.package} -> {new.package}")
    new_msgs = {m.name: m for m in new.message_type}
    for m in old.message_type:
        n = new_msgs.get(m.name)
        if n is None:
            problems.append(f"message {m.name} removed")
            continue
        fields = {f.number: f for f in n.field}
        numbers, names = _reserved(n)
        old_numbers, old_names = _reserved(m)
        for f in m.field:
            g = fields.get(f.number)
            if g is None:
                if f.number not in numbers:
                    problems.append(f"{m.name}.{f.name} (#{f.number}) removed without reserving its number")
                continue
            for attr in ("name", "type", "label", "type_name"):
                if getattr(f, attr) != getattr(g, attr):
                    problems.append(
                        f"{m.name} field #{f.number} {attr} changed: "
                        f"{getattr(f, attr)!r} -> {getattr(g, attr)!r}"
                    )
        for number in old_numbers:
            if number not in numbers:
                problems.append(f"{m.name}: reserved number {number} released")
            if number in fields:
                problems.append(f"{m.name}: reserved number {number} reused by {fields[number].name}")
        for name in old_names - names:
            problems.append(f"{m.name}: reserved name {name!r} released")
    new_enums = {e.name: e for e in new.enum_type}
    for e in old.enum_type:
        ne = new_enums.get(e.name)
        if ne is None:
            problems.append(f"enum {e.name} removed")
            continue
        values = {v.number: v.name for v in ne.value}
        for v in e.value:
            if values.get(v.number) != v.name:
                problems.append(f"enum {e.name} value {v.name}={v.number} changed or removed")
    new_services = {s.name: s for s in new.service}
    for s in old.service:
        ns = new_services.get(s.name)
        if ns is None:
            problems.append(f"service {s.name} removed")
            continue
        methods = {x.name: x for x in ns.method}
        for x in s.method:
            y = methods.get(x.name)
            sig = ("input_type", "output_type", "client_streaming", "server_streaming")
            if y is None or any(getattr(x, a) != getattr(y, a) for a in sig):
                problems.append(f"rpc {s.name}.{x.name} removed or its signature changed")
    return problems


def test_working_tree_contract_only_grows() -> None:
    assert breaking_changes(released(), current()) == []


def test_the_checker_catches_breaking_edits() -> None:
    new = current()
    decision = next(m for m in new.message_type if m.name == "Decision")
    decision.field[1].number = 22  # renumber limit
    decision.field[2].type = descriptor_pb2.FieldDescriptorProto.TYPE_INT32  # retype remaining
    del decision.reserved_range[:]
    check = next(m for m in new.message_type if m.name == "CheckRequest")
    del check.field[2]  # drop cost without reserving 3
    new.service[0].method.pop()  # drop Heartbeat
    problems = breaking_changes(released(), new)
    assert "CheckRequest.cost (#3) removed without reserving its number" in problems
    assert any("Decision field #3 type changed" in p for p in problems)
    assert any("Decision.limit (#2) removed" in p for p in problems)
    assert any("reserved number 6 released" in p for p in problems)
    assert "rpc RateLimiter.Heartbeat removed or its signature changed" in problems


def test_additive_change_and_retiring_with_reserved_are_allowed() -> None:
    new = current()
    check = next(m for m in new.message_type if m.name == "CheckRequest")
    check.field.add(
        name="tenant",
        number=4,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
        label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
    )
    forecast = next(m for m in new.message_type if m.name == "ForecastRequest")
    del forecast.field[2]
    forecast.reserved_range.add(start=3, end=4)
    new.message_type.add(name="NewThing")
    assert breaking_changes(released(), new) == []


def test_the_contract_matches_the_wire_table() -> None:
    fd = current()
    msgs = {m.name: {f.name: (f.number, f.type, f.label) for f in m.field} for m in fd.message_type}
    T = descriptor_pb2.FieldDescriptorProto
    assert msgs["Decision"] == {
        "allowed": (1, T.TYPE_BOOL, T.LABEL_OPTIONAL),
        "limit": (2, T.TYPE_INT64, T.LABEL_OPTIONAL),
        "remaining": (3, T.TYPE_INT64, T.LABEL_OPTIONAL),
        "reset_at": (4, T.TYPE_INT64, T.LABEL_OPTIONAL),
        "retry_after_ms": (5, T.TYPE_INT64, T.LABEL_OPTIONAL),
    }
    assert msgs["CheckManyRequest"]["keys"] == (2, T.TYPE_STRING, T.LABEL_REPEATED)
    assert msgs["AdmitResponse"]["policy_denied"] == (5, T.TYPE_BOOL, T.LABEL_OPTIONAL)
    assert msgs["ReserveRequest"]["axis"] == (6, T.TYPE_ENUM, T.LABEL_OPTIONAL)
    reserve = next(m for m in fd.message_type if m.name == "ReserveResponse")
    assert _reserved(reserve) == (set(range(2, 16)), {"owner_redirect"})
    services = {s.name: [x.name for x in s.method] for s in fd.service}
    assert services == {
        "RateLimiter": ["Check", "CheckMany", "Peek", "Forecast", "Debit", "Admit", "Release", "Heartbeat"],
        "Monitor": ["GetSnapshot", "Watch"],
        "Fleet": ["Reserve"],
    }
    assert fd.package == "throttlekit.v1"


@pytest.mark.skipif(
    importlib.util.find_spec("grpc_tools") is None, reason="grpcio-tools (dev extra) not installed"
)
def test_checked_in_stubs_match_the_proto() -> None:
    spec = importlib.util.spec_from_file_location("gen_proto", ROOT / "scripts" / "gen_proto.py")
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    out = ROOT / "throttlekit" / "_proto"
    for name, text in gen.generate(out).items():
        assert (out / name).read_text() == text, f"{name} is stale: run python scripts/gen_proto.py"
    fds = descriptor_pb2.FileDescriptorSet.FromString(gen.descriptor_set())
    assert breaking_changes(released(), fds.file[0]) == []
