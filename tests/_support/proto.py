"""The wire-contract checker: the compiled descriptor of this checkout, the released one, and every way
a new descriptor breaks clients of an old one."""

from __future__ import annotations

from google.protobuf import descriptor_pb2

from throttlekit._proto import throttlekit_pb2

from .env import ROOT

RELEASED = ROOT / "proto" / "throttlekit" / "v1" / "released.binpb"


def current() -> descriptor_pb2.FileDescriptorProto:
    fd = descriptor_pb2.FileDescriptorProto()
    throttlekit_pb2.DESCRIPTOR.CopyToProto(fd)
    return fd


def released() -> descriptor_pb2.FileDescriptorProto:
    fds = descriptor_pb2.FileDescriptorSet.FromString(RELEASED.read_bytes())
    (fd,) = [f for f in fds.file if f.package == "throttlekit.v1"]
    return fd


def reserved_of(msg: descriptor_pb2.DescriptorProto) -> tuple[set[int], set[str]]:
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
        numbers, names = reserved_of(n)
        old_numbers, old_names = reserved_of(m)
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
