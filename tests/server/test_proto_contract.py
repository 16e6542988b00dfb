"""The wire contract only grows: the compiled descriptor keeps every released message, field (name,
number, type, label), enum value, reserved range and RPC. Also: the checked-in stubs match the proto."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from tests._support.proto import breaking_changes, current, released, reserved_of

ROOT = Path(__file__).resolve().parents[2]


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
    assert reserved_of(reserve) == (set(range(2, 16)), {"owner_redirect"})
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
