"""Config errors: every problem of a file is collected as a :class:`ConfigIssue`, then raised at once."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .._errors import ConfigError

__all__ = ["MISSING", "ConfigIssue", "Issues", "PolicyConfigError", "did_you_mean", "nearest"]


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


#: Marks an issue about a value that is absent (so ``None`` can still be reported as a bad value).
MISSING: Any = _Missing()


def nearest(word: str, candidates: Iterable[str]) -> str | None:
    """The closest candidate to a misspelt key (difflib ratio >= 0.6), or None."""
    pool = list(candidates)
    match = difflib.get_close_matches(word, pool, n=1, cutoff=0.6)
    if not match:
        match = [c for c in pool if c.lower() == word.lower()]
    return match[0] if match else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """``'did you mean "x"?'`` for the nearest candidate, or ``""``."""
    guess = nearest(word, candidates)
    return f'did you mean "{guess}"?' if guess else ""


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
            text += f" (got {self.value!r})"
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
        self.items.append(ConfigIssue(self.source, path, message, value, allowed, hint))

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
