"""Text to data: JSON when the text starts with ``{`` or ``[``, else YAML (PyYAML's safe loader).

Stricter than a plain ``yaml.safe_load``: a key repeated in one mapping is an error (YAML and JSON
both keep the last one silently), and exponent floats without a dot (``1e6``) are numbers, as in
YAML 1.2 and JSON, rather than strings.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from ._issues import Issues

__all__ = ["parse_text"]


class _StrictLoader(yaml.SafeLoader):
    """Safe loader that rejects duplicate keys."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if isinstance(key, (str, int, float, bool)) and key in seen:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                f"duplicate key {key!r} (first at line {seen[key] + 1})",
                key_node.start_mark,
            )
        if isinstance(key, (str, int, float, bool)):
            seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9]+(?:\.[0-9]*)?[eE][-+]?[0-9]+$"), list("-+0123456789")
)


def _json_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def parse_text(text: str, issues: Issues) -> Any:
    """Parse ``text``; on a syntax error record one issue (with its line) and return None."""
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            return json.loads(text, object_pairs_hook=_json_pairs)
        except json.JSONDecodeError as exc:
            issues.add(f"line {exc.lineno}", f"JSON parse error: {exc.msg}")
        except ValueError as exc:
            issues.add("(top level)", f"JSON parse error: {exc}")
        return None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}" if mark is not None else "(top level)"
        issues.add(where, f"YAML parse error: {exc.problem or exc.context}")
    except yaml.YAMLError as exc:
        issues.add("(top level)", f"YAML parse error: {exc}")
    return None
