"""solveFluidLp (``lp_solve``, spec 10.5) against an independent oracle, and its input validation.

The oracle solves the *primal* LP exactly (rational arithmetic) by enumerating the vertices of its
polytope: maximise sum w_i v_i x_i subject to sum w_i x_i <= R, sum w_i c_i x_i <= C (and sum w_i h_i x_i
<= K), 0 <= x_i <= 1. A vertex has at most m (2 or 3) fractional coordinates, fixed by m tight resource
rows; the others sit at 0 or 1. By LP duality the solver's duals p >= 0 are optimal iff D(p) equals the
primal optimum (D(p) >= it for every p >= 0). It shares nothing with the solver: no candidate list, no
tie rule, no floats in the oracle.
"""

from __future__ import annotations

import itertools
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import throttlekit as tk
from throttlekit._errors import ScriptError
from throttlekit.jointlp import LpType, solve_fluid_lp


@pytest.fixture(scope="module", params=["memory-luajit", "memory-lua51", "redis"])
def lp_store(request: pytest.FixtureRequest) -> Any:
    """The solver on each Lua runtime: lupa (LuaJIT, PUC Lua 5.1) and Redis (fakeredis off CI)."""
    from tests._support.stores import STORES

    factory = STORES[request.param].values[0]
    for mark in STORES[request.param].marks:
        request.applymarker(mark)
    store = factory(tk.ManualClock(0))
    yield store
    store.close()


def _solve_linear(a: list[list[Fraction]], b: list[Fraction]) -> list[Fraction] | None:
    """Gauss-Jordan on a k x k rational system; None when singular."""
    k = len(b)
    m = [[*row, b[i]] for i, row in enumerate(a)]
    for col in range(k):
        piv = next((r for r in range(col, k) if m[r][col] != 0), None)
        if piv is None:
            return None
        m[col], m[piv] = m[piv], m[col]
        for r in range(k):
            if r != col and m[r][col] != 0:
                f = m[r][col] / m[col][col]
                m[r] = [x - f * y for x, y in zip(m[r], m[col])]
    return [m[i][k] / m[i][i] for i in range(k)]


def primal_optimum(types: list[tuple[Fraction, ...]], budgets: list[Fraction]) -> Fraction:
    """max sum w v x over the polytope, by vertex enumeration (exact)."""
    n, nb = len(types), len(budgets)
    # resource rows: per type its use of each budget (rate 1, cost c, hold h), times the weight
    use = [[t[2], t[2] * t[0]] + ([t[2] * t[3]] if nb == 3 else []) for t in types]
    gain = [t[2] * t[1] for t in types]
    best = Fraction(0)  # x = 0 is feasible (budgets >= 0)
    for k in range(0, nb + 1):
        for free in itertools.combinations(range(n), k):
            fixed = [i for i in range(n) if i not in free]
            for rows in itertools.combinations(range(nb), k):
                for bits in itertools.product((0, 1), repeat=len(fixed)):
                    x = [Fraction(0)] * n
                    for i, bit in zip(fixed, bits):
                        x[i] = Fraction(bit)
                    if k:
                        a = [[use[i][r] for i in free] for r in rows]
                        rhs = [budgets[r] - sum(use[i][r] * x[i] for i in fixed) for r in rows]
                        sol = _solve_linear(a, rhs)
                        if sol is None:
                            continue
                        for i, xi in zip(free, sol):
                            x[i] = xi
                    if any(xi < 0 or xi > 1 for xi in x):
                        continue
                    if any(sum(use[i][r] * x[i] for i in range(n)) > budgets[r] for r in range(nb)):
                        continue
                    best = max(best, sum(g * xi for g, xi in zip(gain, x)))
    return best


def dual_value(types: list[tuple[Fraction, ...]], budgets: list[Fraction], p: list[Fraction]) -> Fraction:
    d = sum(b * q for b, q in zip(budgets, p))
    for t in types:
        red = t[1] - p[0] - p[1] * t[0] - (p[2] * t[3] if len(p) == 3 else 0)
        d += t[2] * max(Fraction(0), red)
    return d


small = st.integers(0, 12)
quarters = st.integers(0, 48).map(lambda q: q / 4)
type_st = st.tuples(st.one_of(small, quarters), st.one_of(small, quarters), st.integers(0, 4), small)


@st.composite
def instances(draw: Any) -> tuple[list[tuple[float, float, int, int]], float, float, float | None]:
    """A workload and budgets that are often binding: each budget is a drawn fraction (1/8 .. 9/8) of
    what admitting everything would use, so the optimum has 0, 1, 2 or 3 positive duals."""
    types = draw(st.lists(type_st, min_size=1, max_size=5))
    frac = st.integers(1, 9).map(lambda q: q / 8)
    need_r = max(1, sum(w for _, _, w, _ in types))
    need_c = max(1, sum(w * c for c, _, w, _ in types))
    need_k = max(1, sum(w * h for _, _, w, h in types))
    r = draw(st.one_of(frac.map(lambda f: need_r * f), st.integers(1, 30)))
    c = draw(st.one_of(frac.map(lambda f: need_c * f), st.integers(1, 30)))
    k = draw(st.one_of(st.none(), frac.map(lambda f: need_k * f), st.integers(0, 30).map(float)))
    return types, float(r), float(c), k


@settings(max_examples=200, deadline=None)
@given(case=instances())
def test_solver_duals_are_optimal_against_a_primal_oracle(
    case: tuple[list[tuple[float, float, int, int]], float, float, float | None], lp_store: Any
) -> None:
    types, r, c, k = case
    lp = [LpType(ct, v, w, h if k is not None else None) for ct, v, w, h in types]
    sol = solve_fluid_lp(lp, r, c, k, store=lp_store)
    d = sol.duals
    p = [d.rate, d.cost] + ([d.conc] if k is not None else [])
    assert all(x is not None and x >= 0 for x in p)
    exact = [tuple(Fraction(x) for x in t) for t in types]
    budgets = [Fraction(r), Fraction(c)] + ([Fraction(k)] if k is not None else [])
    opt = primal_optimum(exact, budgets)
    got = dual_value(exact, budgets, [Fraction(x) for x in p])  # type: ignore[arg-type]
    tol = Fraction(1, 10**6) * max(1, opt)
    assert opt - tol <= got <= opt + tol, (types, r, c, k, p, float(opt), float(got))
    weights = sum(t[2] for t in types)
    if weights:
        assert sol.rate_per_arrival == r / weights and sol.cost_per_arrival == c / weights
    else:
        assert sol.rate_per_arrival is None and sol.cost_per_arrival is None


@settings(max_examples=60, deadline=None)
@given(case=instances())
def test_every_lua_runtime_returns_the_same_bits(
    case: tuple[list[tuple[float, float, int, int]], float, float, float | None],
) -> None:
    """LuaJIT, PUC Lua 5.1 and Redis solve to the same doubles (no -0 on one and 0 on another)."""
    from tests._support.stores import STORES

    types, r, c, k = case
    lp = [LpType(ct, v, w, h if k is not None else None) for ct, v, w, h in types]
    got = set()
    for name in ("memory-luajit", "memory-lua51", "redis"):
        store = STORES[name].values[0](tk.ManualClock(0))
        try:
            d = solve_fluid_lp(lp, r, c, k, store=store).duals
        finally:
            store.close()
        got.add((repr(d.rate), repr(d.cost), repr(d.conc)))
    assert len(got) == 1, got


def test_oracle_itself_on_a_hand_case() -> None:
    f = Fraction
    # fluidLp/two-budgets op 0: revenue 12
    assert primal_optimum([(f(1), f(4), f(2)), (f(3), f(6), f(2))], [f(4), f(4)]) == 12
    assert dual_value([(f(1), f(4), f(2)), (f(3), f(6), f(2))], [f(4), f(4)], [f(0), f(2)]) == 12


def test_bounds_of_the_three_budget_solver() -> None:
    """64 types with holds (every triple of 67 planes: ~48,000 candidates) solves in bounded time."""
    import time

    from tests._support.stores import STORES

    lp = [LpType(1 + i % 7, 10 + (i * 13) % 17, 1 + i % 3, (i * 5) % 11) for i in range(64)]
    t0 = time.perf_counter()
    sol = solve_fluid_lp(lp, 40, 100, 60)
    took = time.perf_counter() - t0
    assert sol.duals.conc is not None and took < 30
    # every runtime gives the same bits (this instance once gave -0.0 on LuaJIT, 0.0 elsewhere)
    for name in ("memory-lua51", "redis"):
        store = STORES[name].values[0](tk.ManualClock(0))
        try:
            other = solve_fluid_lp(lp, 40, 100, 60, store=store).duals
        finally:
            store.close()
        assert repr(other) == repr(sol.duals), name
    with pytest.raises(tk.ConfigError, match="at most 64"):
        solve_fluid_lp([*lp, lp[0]], 40, 100, 60)


@pytest.mark.parametrize(
    ("types", "r", "c", "k", "message"),
    [
        ([], 1, 1, None, "jointLp.types must be a non-empty list"),
        ([{"cost": 1, "value": 1, "weight": 1}], 0, 1, None, "jointLp.rateBudget is out of range, got 0"),
        (
            [{"cost": 1, "value": 1, "weight": 1}],
            1,
            float("inf"),
            None,
            "jointLp.costBudget must be a finite number",
        ),
        (
            [{"cost": -1, "value": 1, "weight": 1}],
            1,
            1,
            None,
            "jointLp.types[0].cost is out of range, got -1",
        ),
        (
            [{"cost": 1, "value": float("nan"), "weight": 1}],
            1,
            1,
            None,
            "jointLp.types[0].value must be a finite",
        ),
        ([{"cost": 1, "value": 1}], 1, 1, None, "jointLp.types[0].weight is missing"),
        ([{"cost": 1, "value": 1, "weight": 1, "hold": 2}], 1, 1, None, "jointLp.concBudget is missing"),
        ([{"cost": 1, "value": 1, "weight": 1}], 1, 1, 3, "need a hold on every type"),
        (
            [{"cost": 1, "value": 1, "weight": 1, "size": 2}],
            1,
            1,
            None,
            "jointLp.types[0].size is not a type field",
        ),
        ([{"cost": 1, "value": 1, "weight": 1}], 1, 1, -2, "jointLp.concBudget is out of range, got -2"),
    ],
)
def test_solver_input_is_validated_with_clear_errors(
    types: Any, r: Any, c: Any, k: Any, message: str
) -> None:
    with pytest.raises(tk.ConfigError) as exc:
        solve_fluid_lp(types, r, c, k)
    assert message in str(exc.value)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("", 1, 1, -1), "types must not be empty"),
        (("1,2", 1, 1, -1), "types[0] needs cost,value,weight"),
        (("1,2,3,4", 1, 1, -1), "a hold needs concBudget"),
        (("1,2,3", 1, 1, 5), "concBudget is set"),
        (("1,-2,3", 1, 1, -1), "types[0].value must be >= 0, got -2"),
        (("1,x,3", 1, 1, -1), "types[0].value must be a finite number, got x"),
        (("1,2,3", 0, 1, -1), "rateBudget must be > 0"),
        (("1,2,3", 1, "nan", -1), "costBudget must be a finite number"),
        ((";".join(["1,1,1"] * 65), 1, 1, -1), "at most 64 types"),
    ],
)
def test_the_lua_solver_refuses_bad_argv_itself(argv: tuple[Any, ...], message: str, lp_store: Any) -> None:
    """Callers that reach the transform directly (another client of the same Redis) get the same rules."""
    with pytest.raises(ScriptError) as exc:
        lp_store.eval("lp_solve", (), 0, argv)
    assert message in str(exc.value)
