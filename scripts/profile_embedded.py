#!/usr/bin/env python3
"""Where an embedded ``Limiter(Gcra).check`` spends its time, by LuaJIT's own sampling profiler.

``jit.profile`` samples the Lua VM every millisecond and reports its state at the sample: compiled code
(a trace), the interpreter, the garbage collector, or C. "C" is also the state while the VM is not
running at all, so those samples are the time outside Lua: Python, lupa's crossing (arguments, the GIL
released and taken back, the five results) and the ``Decision``. The samples in Lua (compiled or
interpreted) are split by the Lua line they fell on, printed with its source, so the cost of each piece
of the transform and of the shim reads off directly (the ``%.17g`` format and parse of the state the
Redis layout stores, the reply table, the keyspace's GET and SET). A sample lands on the line running
when the timer fired, so a cost can show on the line after it.

Usage: ``python scripts/profile_embedded.py [--checks 1000000] [--top 12]`` (LuaJIT only: the profiler is
LuaJIT's). Samples are a statistical picture; rerun for the spread.
"""

from __future__ import annotations

import argparse
import time

import throttlekit as tk
from throttlekit._loader import load_manifest, lua_root

PROFILE = """
local profile = require('jit.profile')
local lines, states = {}, {}
profile.start('li1', function(thread, samples, vmstate)
  states[vmstate] = (states[vmstate] or 0) + samples
  if vmstate == 'N' or vmstate == 'I' then
    local where = profile.dumpstack(thread, 'pl', 1) .. (vmstate == 'I' and ' (interpreted)' or '')
    lines[where] = (lines[where] or 0) + samples
  end
end)
return function()
  profile.stop()
  return lines, states
end
"""

STATES = {
    "C": "outside Lua: Python, lupa's crossing, the Decision (and C called from Lua)",
    "N": "compiled Lua (traces)",
    "I": "interpreted Lua",
    "G": "garbage collector",
    "J": "JIT compiler",
}


def source_line(where: str) -> str:
    """The text of ``chunk:line`` (a transform's expanded source, or the shim's)."""
    chunk, _, line = where.split(" ")[0].rpartition(":")
    transforms = load_manifest()
    if chunk in transforms:
        text = transforms[chunk].source.splitlines()
    else:
        text = (lua_root() / "runtime" / "shim.lua").read_text().splitlines()
    n = int(line)
    return text[n - 1].strip() if 0 < n <= len(text) else ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checks", type=int, default=1_000_000)
    ap.add_argument("--top", type=int, default=12)
    args = ap.parse_args()
    store = tk.MemoryStore(runtime="luajit", max_keys=1000)
    check = tk.Limiter(tk.Gcra(1_000_000, "1s"), store=store).check
    for _ in range(200_000):  # traces formed before sampling starts
        check("bench-gcra")
    stop = store.engine.lua_runtime.execute(PROFILE)
    t0 = time.perf_counter()
    for _ in range(args.checks):
        check("bench-gcra")
    elapsed = time.perf_counter() - t0
    lines, states = stop()
    states, lines = dict(states), dict(lines)
    total = sum(states.values()) or 1
    per_sample = elapsed * 1e9 / args.checks / total  # one sample's share of a check, in ns
    print(f"jit.profile of Limiter(Gcra).check (luajit), {args.checks:,} checks, {elapsed * 1e9 / args.checks:.0f} ns "
          f"per check, {total} samples of 1 ms\n")  # fmt: skip
    print("| VM state | samples | share | ns per check |\n|---|--:|--:|--:|")
    for state, n in sorted(states.items(), key=lambda kv: -kv[1]):
        print(f"| {STATES.get(state, state)} | {n} | {n / total:.0%} | {n * per_sample:.0f} |")
    print(
        f"\nLua by line, compiled and interpreted (top {args.top}):\n\n| line | source | samples | ns per check |\n|---|---|--:|--:|"
    )
    for where, n in sorted(lines.items(), key=lambda kv: -kv[1])[: args.top]:
        print(f"| {where} | `{source_line(where)}` | {n} | {n * per_sample:.0f} |")


if __name__ == "__main__":
    main()
