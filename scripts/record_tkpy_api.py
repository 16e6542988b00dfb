"""Record the public API of an installed throttlekit-py (the PyPI client) as JSON.

Usage (the client cannot share an interpreter with this package: both import as ``throttlekit``)::

    /work/tkpy-venv/bin/python scripts/record_tkpy_api.py > tests/fixtures/tkpy-0.5.1-api.json

It reads the client's sources with :mod:`ast` rather than importing them, so the framework adapters
under ``throttlekit.contrib`` are recorded without FastAPI, Django or Flask installed. For every public
module (no leading underscore in any path part) it lists the public names: ``__all__`` when the module
has one, otherwise its public top-level definitions. Each name records what it is and, for functions and
classes, the parameters (name, kind, default) of the call and of every public method, so
``tests/test_tkpy_superset.py`` can check that ours accepts every call theirs accepts.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

DIST = "throttlekit-py"
DUNDER_METHODS = ("__call__", "__enter__", "__exit__", "__aenter__", "__aexit__")


def _default(node: ast.expr | None) -> Any:
    """A literal default as itself; anything else (a function, an expression) as ``{"expr": text}``."""
    if node is None:
        return None
    try:
        return {"value": ast.literal_eval(node)}
    except ValueError:
        return {"expr": ast.unparse(node)}


def _params(fn: ast.FunctionDef | ast.AsyncFunctionDef, *, drop_first: bool) -> list[dict[str, Any]]:
    a = fn.args
    positional = [*a.posonlyargs, *a.args]
    pos_defaults: list[ast.expr | None] = [None] * (len(positional) - len(a.defaults)) + list(a.defaults)
    out: list[dict[str, Any]] = []
    for i, (arg, default) in enumerate(zip(positional, pos_defaults)):
        kind = "positional_only" if i < len(a.posonlyargs) else "positional_or_keyword"
        out.append({"name": arg.arg, "kind": kind, "default": _default(default)})
    if a.vararg:
        out.append({"name": a.vararg.arg, "kind": "var_positional", "default": None})
    for arg, kw_default in zip(a.kwonlyargs, a.kw_defaults):
        out.append({"name": arg.arg, "kind": "keyword_only", "default": _default(kw_default)})
    if a.kwarg:
        out.append({"name": a.kwarg.arg, "kind": "var_keyword", "default": None})
    return out[1:] if drop_first else out


def _is_dataclass(cls: ast.ClassDef) -> bool:
    for deco in cls.decorator_list:
        target = deco.func if isinstance(deco, ast.Call) else deco
        if ast.unparse(target).endswith("dataclass"):
            return True
    return False


def _class(cls: ast.ClassDef) -> dict[str, Any]:
    entry: dict[str, Any] = {"type": "class", "bases": [ast.unparse(b) for b in cls.bases], "members": {}}
    init: list[dict[str, Any]] | None = None
    fields: list[dict[str, Any]] = []
    for node in cls.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            decorators = {ast.unparse(d) for d in node.decorator_list}
            if node.name == "__init__":
                init = _params(node, drop_first=True)
            elif "property" in decorators:
                entry["members"][node.name] = {"type": "property"}
            elif not node.name.startswith("_") or node.name in DUNDER_METHODS:
                static = "staticmethod" in decorators
                entry["members"][node.name] = {
                    "type": "method",
                    "async": isinstance(node, ast.AsyncFunctionDef),
                    "params": _params(node, drop_first=not static),
                }
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            name = node.target.id
            if "ClassVar" in ast.unparse(node.annotation):
                if not name.startswith("_"):
                    entry["members"][name] = {"type": "attribute"}
                continue
            fields.append({"name": name, "kind": "positional_or_keyword", "default": _default(node.value)})
            if not name.startswith("_"):
                entry["members"][name] = {"type": "attribute"}
    if init is None and _is_dataclass(cls):
        init = fields
    if init is not None:
        entry["params"] = init
    return entry


def _source(module: str, root: Path) -> Path:
    parts = module.split(".")[1:]
    base = root.joinpath(*parts)
    return base / "__init__.py" if (base / "__init__.py").exists() else base.with_suffix(".py")


def _module_names(module: str, root: Path, *, everything: bool = False) -> dict[str, Any]:
    tree = ast.parse(_source(module, root).read_text(encoding="utf-8"))
    defined: dict[str, Any] = {}
    imported: dict[str, tuple[str, str]] = {}
    exported: list[str] | None = None
    package = module if _source(module, root).name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            defined[node.name] = {
                "type": "function",
                "async": isinstance(node, ast.AsyncFunctionDef),
                "params": _params(node, drop_first=False),
            }
        elif isinstance(node, ast.ClassDef):
            defined[node.name] = _class(node)
        elif (
            isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
        ):
            name = node.targets[0].id
            if name == "__all__":
                exported = list(ast.literal_eval(node.value))
            else:
                defined[name] = {"type": "value"}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            defined[node.target.id] = {"type": "value"}
        elif isinstance(node, ast.ImportFrom) and node.level:
            source = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            if node.module:
                source = f"{source}.{node.module}"
            for alias in node.names:
                imported[alias.asname or alias.name] = (source, alias.name)
        elif isinstance(node, ast.If):  # `if TYPE_CHECKING:` imports stand for the lazy names
            for inner in node.body:
                if isinstance(inner, ast.ImportFrom) and inner.level and inner.module:
                    for alias in inner.names:
                        imported[alias.asname or alias.name] = (f"{package}.{inner.module}", alias.name)
    if everything:
        exported = list(defined)
    elif exported is None:
        exported = [n for n in defined if not n.startswith("_")]
    names: dict[str, Any] = {}
    for name in exported:
        if name == "__version__":
            names[name] = {"type": "value"}
        elif name in defined:
            names[name] = defined[name]
        elif name in imported:
            source, original = imported[name]
            found = _module_names(source, root, everything=True).get(original, {"type": "value"})
            names[name] = {**found, "from": source}
        else:
            raise SystemExit(f"{module}: cannot resolve exported name {name!r}")
    return names


def record() -> dict[str, Any]:
    spec = importlib.util.find_spec("throttlekit")
    if spec is None or spec.origin is None:
        raise SystemExit(
            "throttlekit-py is not importable by this interpreter; run it with its venv's python"
        )
    root = Path(spec.origin).parent
    version = importlib.metadata.version(DIST)
    modules: dict[str, Any] = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).with_suffix("")
        parts = [p for p in rel.parts if p != "__init__"]
        if any(p.startswith("_") for p in parts):
            continue
        module = ".".join(["throttlekit", *parts])
        modules[module] = {"names": _module_names(module, root)}
    return {"distribution": DIST, "version": version, "modules": modules}


if __name__ == "__main__":
    json.dump(record(), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
