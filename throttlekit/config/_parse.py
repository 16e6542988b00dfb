"""Text to data: JSON when the text starts with ``{`` or ``[``, else YAML (PyYAML's safe loader, on
libyaml's parser when PyYAML has it).

Stricter than a plain ``yaml.safe_load``: a key repeated in one mapping is an error (YAML and JSON
both keep the last one silently), aliases (``*name``) and nesting deeper than 64 levels are refused (so
a small file cannot expand into an exponential amount of work), and exponent floats without a dot
(``1e6``) are numbers, as in YAML 1.2 and JSON, rather than strings.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from ._issues import Issues

__all__ = ["parse_text"]


#: Deepest nesting of mappings and lists a policy file may use (as the upstream's parser).
MAX_DEPTH = 64


#: Resolved tags of short scalars by (text, implicit flags); cleared when it reaches _TAGS_MAX entries.
_TAGS: dict[tuple[str, Any], str] = {}
_TAGS_MAX = 4096
_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser when installed


class _StrictLoader(_Base):  # type: ignore[misc]
    """Safe loader that rejects duplicate keys, aliases and nesting deeper than :data:`MAX_DEPTH`.

    Aliases are refused because one alias can stand for a whole subtree, so a small file could make the
    loader (and every error message quoting a value) walk an exponential number of nodes; the upstream
    server does not accept them either. The composed node graph is checked before anything is built.
    """

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        # The parser asks for every scalar's tag; a policy file repeats a few dozen distinct scalars
        # (keys, strategy names, durations) thousands of times, so remember the answers (bounded).
        if kind is not yaml.ScalarNode or len(value) > 64:
            return super().resolve(kind, value, implicit)
        key = (value, implicit)
        tag = _TAGS.get(key)
        if tag is None:
            tag = super().resolve(kind, value, implicit)
            if len(_TAGS) >= _TAGS_MAX:
                _TAGS.clear()
            _TAGS[key] = tag
        return tag

    def get_single_data(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        _check_tree(node)
        return self.construct_document(node)


def _check_tree(root: yaml.Node) -> None:
    """Refuse a node reached twice (an alias) or nested deeper than MAX_DEPTH; linear in the nodes."""
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if id(node) in seen:
            raise yaml.composer.ComposerError(
                None,
                None,
                "aliases (*name) are not supported in policy files; write the value out",
                node.start_mark,
            )
        seen.add(id(node))
        if isinstance(node, yaml.CollectionNode):
            if depth >= MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nesting deeper than {MAX_DEPTH} levels", node.start_mark
                )
            if isinstance(node, yaml.MappingNode):
                for key, value in node.value:
                    stack.append((key, depth + 1))
                    stack.append((value, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in node.value)


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
    mapping: dict[Any, Any] = loader.construct_mapping(node, deep=deep)
    return mapping


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
        except RecursionError:
            issues.add("(top level)", "JSON parse error: nesting too deep")
        return None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a (C)SafeLoader subclass
    except RecursionError:
        issues.add("(top level)", f"YAML parse error: nesting deeper than {MAX_DEPTH} levels")
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}" if mark is not None else "(top level)"
        issues.add(where, f"YAML parse error: {exc.problem or exc.context}")
    except yaml.YAMLError as exc:
        issues.add("(top level)", f"YAML parse error: {exc}")
    return None
