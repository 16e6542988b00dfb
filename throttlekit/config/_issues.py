"""Config errors: every problem of a file is collected as a :class:`ConfigIssue`, then raised at once."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .._errors import NO_VALUE, ConfigError, quote
from .._validate import did_you_mean, nearest

__all__ = ["MISSING", "ConfigIssue", "Issues", "PolicyConfigError", "did_you_mean", "nearest"]

#: Marks an issue about a value that is absent (so ``None`` can still be reported as a bad value).
MISSING: Any = NO_VALUE
#: Longest path shown in an issue, in characters.
_PATH_LIMIT = 200


@dataclass(frozen=True)
class ConfigIssue:
    """One problem: the file, the dotted path (``limiters.<policy>.<field>``), what is wrong, the bad
    value (:data:`MISSING` when absent), what is allowed and a hint (a suggested spelling)."""

    source: str
    path: str
    message: str
    value: Any = MISSING
    allowed: str = ""
    hint: str = ""

    @property
    def policy(self) -> str | None:
        """The policy the issue belongs to, when it is inside ``limiters``."""
        parts = self.path.split(".", 2)
        return parts[1] if parts[0] == "limiters" and len(parts) > 1 else None

    def __str__(self) -> str:
        text = f"{self.source}: {self.path}: {self.message}"
        if self.value is not MISSING:
            text += f" (got {quote(self.value)})"
        if self.allowed:
            text += f"; allowed: {self.allowed}"
        if self.hint:
            text += f"; {self.hint}"
        return text


class PolicyConfigError(ConfigError):
    """A policy file is invalid. ``issues`` lists every problem found in it, in file order."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = list(issues)
        source = issues[0].source if issues else "<config>"
        head = f"{source}: {len(issues)} error{'s' if len(issues) != 1 else ''}"
        super().__init__(head + "".join(f"\n  {i}" for i in issues))


class Issues:
    """Collects the issues of one file."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[ConfigIssue] = []

    def add(self, path: str, message: str, value: Any = MISSING, allowed: str = "", hint: str = "") -> None:
        if len(path) > _PATH_LIMIT:  # a path holds keys from the file, which may be huge
            path = path[: _PATH_LIMIT - 1] + "\u2026"
        self.items.append(ConfigIssue(self.source, path, message, value, allowed, hint))

    def add_error(self, path: str, error: ConfigError, fields: dict[str, str] | None = None) -> None:
        """One issue per problem a validator found (``error.errors``), under ``path``; ``fields`` renames
        a validator's field to the key the file used (``{"windowMs": "period"}``)."""
        for e in error.errors:
            field = (fields or {}).get(e.field, e.field)
            self.add(f"{path}.{field}" if field else path, e.problem, e.value, e.allowed, e.hint)

    def unknown_key(self, path: str, key: Any, valid: Iterable[str], *, where: str) -> None:
        """Report an unknown key, suggesting the nearest valid one."""
        valid = sorted(set(valid))
        self.add(
            f"{path}.{key}" if path else str(key),
            f"unknown key in {where}",
            allowed=", ".join(valid),
            hint=did_you_mean(str(key), valid),
        )

    def raise_if_any(self) -> None:
        if self.items:
            raise PolicyConfigError(self.items)
