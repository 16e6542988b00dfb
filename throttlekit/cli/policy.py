"""``throttlekit-server policy plan``: what a candidate policy file would change, as a CI gate.

Exit 0: the plan is within every gate. Exit 1: any error (``error: <reason>`` on stderr) or a gate
breach (the plan is still printed on stdout, then one ``rejected: <violation>`` line per violation on
stderr). No other exit codes.
"""

from __future__ import annotations

import json
from typing import Any

import click

from .._errors import ConfigError
from ._strict import Fail, StrictCommand, non_negative

__all__ = ["policy"]

_USAGE = (
    "usage: throttlekit-server policy plan --config <current> --candidate <path> "
    "(--corpus <file> | --from-capture) [--credential <c>] [--principal <who>] [--json] [--top <n>] "
    "[--max-allow-deny <n>] [--max-deny-allow <n>] [--max-flips <n>] [--max-keys <n>] [--require-replayable]"
)


@click.command(cls=StrictCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("args", nargs=-1)
@click.option("-c", "--config", "config_path", help="The current (running) policy file.")
@click.option("--candidate", help="The candidate policy file.")
@click.option("--corpus", help="Recorded traffic: JSON {policy: trace | [trace, ...]}.")
@click.option("--from-capture", is_flag=True, help="Use the capture segments of --config as the corpus.")
@click.option(
    "--credential", help="Capture operator credential (visible in process listings; prefer the env)."
)
@click.option("--principal", default="operator", show_default=True, help="Who runs it (audit log).")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.option("--top", help="Most-flipped keys shown per policy (text default 3; plan default 10).")
@click.option("--max-allow-deny", help="Gate: most allow->deny flips allowed.")
@click.option("--max-deny-allow", help="Gate: most deny->allow flips allowed.")
@click.option("--max-flips", help="Gate: most flips in total allowed.")
@click.option("--max-keys", help="Gate: most keys with a flip allowed.")
@click.option("--require-replayable", is_flag=True, help="Gate: every candidate policy must be replayable.")
def policy(
    args: tuple[str, ...],
    config_path: str | None,
    candidate: str | None,
    corpus: str | None,
    from_capture: bool,
    credential: str | None,
    principal: str,
    as_json: bool,
    top: str | None,
    max_allow_deny: str | None,
    max_deny_allow: str | None,
    max_flips: str | None,
    max_keys: str | None,
    require_replayable: bool,
) -> None:
    """Policy files: ``plan`` a candidate against the current file over recorded traffic."""
    from ..forensics import Gates, PlanError, gate, load_corpus, load_policy_set, make_plan, render_text

    if not args:
        click.echo(_USAGE, err=True)
        raise SystemExit(1)
    if args[0] != "plan":
        raise Fail(f'unknown policy action "{args[0]}" (only `plan`)')
    if len(args) > 1:
        raise Fail(f"unknown policy argument: {args[1]}")
    if not config_path:
        raise Fail("--config (the current, running config) is required")
    if not candidate:
        raise Fail("--candidate is required")
    if corpus is None and not from_capture:
        raise Fail("a corpus source is required — pass --corpus <file> or --from-capture")
    if corpus is not None and from_capture:
        raise Fail("pass only one corpus source (--corpus OR --from-capture)")
    top_n = non_negative("--top", top)
    gates = Gates(
        non_negative("--max-allow-deny", max_allow_deny),
        non_negative("--max-deny-allow", max_deny_allow),
        non_negative("--max-flips", max_flips),
        non_negative("--max-keys", max_keys),
        require_replayable,
    )
    try:
        current = load_policy_set(config_path, "current")
        cand = load_policy_set(candidate, "candidate")
        if corpus is not None:
            traces = load_corpus(corpus)
        else:
            traces = _capture_corpus(config_path, credential, principal)
        plan = make_plan(current, cand, traces, top=10 if top_n is None else top_n)
    except (PlanError, ConfigError) as exc:
        raise Fail(str(exc)) from exc
    click.echo(
        json.dumps(plan, indent=2, ensure_ascii=False)
        if as_json
        else render_text(plan, 3 if top_n is None else top_n)
    )
    violations = gate(plan, gates)
    for v in violations:
        click.echo(f"rejected: {v}", err=True)
    if violations:
        raise SystemExit(1)


def _capture_corpus(config_path: str, credential: str | None, principal: str) -> Any:
    """The corpus from the capture segments of ``config_path`` (an authorized list, then an export
    per replayable segment); provenance lines on stderr."""
    from .._errors import ThrottleKitError
    from .capture import capture_admin, operator_credential

    admin = capture_admin(config_path, "--from-capture needs")
    try:
        corpus, skipped = admin.corpus(operator_credential(credential), principal)
    except ThrottleKitError as exc:
        raise Fail(str(exc)) from exc
    for name, traces in corpus.items():
        click.echo(f"corpus: {name} ← {len(traces)} segment(s)", err=True)
    if skipped:
        click.echo(f"corpus: skipped {skipped} non-leaf-rate/unreadable segment(s)", err=True)
    return corpus
