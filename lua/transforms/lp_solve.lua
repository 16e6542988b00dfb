--[[ lp_solve: the joint-LP duals of a workload (spec 10.5 solveFluidLp; lib/fluid_lp has the method).
No keys: a pure computation (run at construction; the duals then price every admit in jointlp_bid).
ARGV[1]  now_ms       number  the argument convention (unused)
ARGV[2]  types        string  "cost,value,weight[,hold];..." one entry per type (1..64), each number
                              finite >= 0; a hold on every type iff conc_budget >= 0. Numbers cross as
                              text: the caller writes Python's repr (shortest round trip), which strtod
                              reads back to the same double in Redis and in lupa.
ARGV[3]  rate_budget  number  R > 0 (finite)
ARGV[4]  cost_budget  number  C > 0 (finite)
ARGV[5]  conc_budget  number  K finite >= 0 (three budgets); -1 = none (two budgets)
Reply    {p_rate, p_cost, p_conc, rate_per_arrival, cost_per_arrival}, every one a '%.17g' string (a
         Redis reply would truncate a number to an integer): the duals (p_conc "0" with two budgets)
         and the per-arrival budgets R/sum(weight), C/sum(weight) ("-1" when every weight is 0) that
         the adaptive learner of jointlp_bid re-solves with.
Errors   a malformed or out-of-range input is an error naming the field and the value.
]]
--- @include "lib/fmt17"
--- @include "lib/fluid_lp"
--- @include "lib/lp_input"
local types, R, C, K = lp_input(ARGV[2], ARGV[3], ARGV[4], ARGV[5])
local pR, pC, pK = solve_fluid_lp(types, R, C, K)
local ws = 0
for i = 1, #types do ws = ws + types[i].w end
local ra, ca = -1, -1
if ws > 0 then ra, ca = R / ws, C / ws end
return {fmt17(pR), fmt17(pC), fmt17(pK), fmt17(ra), fmt17(ca)}
