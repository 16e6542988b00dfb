"""``throttlekit-server replay --config FILE (--corpus F | --from-capture)``: the configured What-If
(``replay.candidate``) without a TUI, over recorded traffic.

The corpus arrivals of each shadowed policy are fed through the same shadows a live server keeps (keys
redacted per ``replay.redaction``, ``maxSteps`` bound, collision poisoning), then the candidate runs over
them. A live server prints the same document for its own shadows on SIGUSR1 (``replay: {...}`` on
stderr). Exit 0 with the JSON result on stdout; ``error: <reason>`` and exit 1 otherwise.
"""

from __future__ import annotations

import json
from typing import Any

import click

from .._errors import ConfigError, ThrottleKitError
from ._strict import Fail, StrictCommand

__all__ = ["replay"]


@click.command(cls=StrictCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-c", "--config", "config_path", help="The policy file with the replay block.")
@click.option("--corpus", help="Recorded traffic: JSON {policy: trace | [trace, ...]}.")
@click.option("--from-capture", is_flag=True, help="Use the capture segments of --config.")
@click.option(
    "--credential", help="Capture operator credential (visible in process listings; prefer the env)."
)
@click.option("--principal", default="operator", show_default=True, help="Who runs it (audit log).")
def replay(
    config_path: str | None, corpus: str | None, from_capture: bool, credential: str | None, principal: str
) -> None:
    """Run the config's What-If candidate (replay.candidate) over recorded traffic; print the result."""
    from ..config import PolicyConfigError, load_config_file
    from ..forensics import ReplayShadows, load_corpus, merge

    if not config_path:
        raise Fail("--config is required for replay")
    if (corpus is None) == (not from_capture):
        raise Fail("pass exactly one corpus source: --corpus <file> or --from-capture")
    try:
        cfg = load_config_file(config_path)
    except PolicyConfigError as exc:
        raise Fail("; ".join(str(i) for i in exc.issues)) from exc
    except ConfigError as exc:
        raise Fail(str(exc)) from exc
    if cfg.replay is None:
        raise Fail("replay is not enabled in this config (set replay.enabled: true)")
    try:
        if corpus is not None:
            traces: Any = load_corpus(corpus)
        else:
            from .policy import _capture_corpus

            traces = _capture_corpus(config_path, credential, principal)
        shadows = ReplayShadows(cfg.replay, cfg)
        try:
            for name, shadow in shadows.shadows.items():
                arrivals, truncated = merge(traces.get(name, []))
                for key, cost, at in arrivals:
                    ref = shadows.redact(key)
                    if ref is None:
                        shadow.poisoned = True
                        break
                    shadow.feed(ref, cost, at)
                if truncated and shadow.steps:
                    shadow.truncated = True
            out = shadows.run()
        finally:
            shadows.close()
    except ThrottleKitError as exc:
        raise Fail(str(exc)) from exc
    click.echo(json.dumps(out, indent=2, ensure_ascii=False))
