"""The exception tree. Over-limit is never an exception: a denial is a normal ``Decision``.

::

    ThrottleKitError                 every error this package raises
    ├── ConfigError                  bad strategy parameters, config files, store URLs (also ValueError)
    ├── ScriptError                  a Lua transform failed or a script file is broken
    │   ├── LoaderError              include cycle, missing include, malformed manifest
    │   └── WrongTypeError           a key holds another kind of value (``.keys`` names it)
    ├── ServiceUnavailableError      the limiter's backend could not be reached in time (server or store)
    │   └── StoreError               the store could not be reached or answered a transport error
    │       └── ConcurrentUpdateError  optimistic concurrency retries exhausted for a key
    ├── NotSupportedError            the operation does not exist for this strategy or store
    │   └── OperationNotSupportedError  the server said so (gRPC ``UNIMPLEMENTED``)
    ├── PolicyNotFoundError          the server has no policy of that name (also LookupError)
    └── InvalidRequestError          the server rejected a request as malformed (also ValueError)

The client errors carry throttlekit-py's names (public module :mod:`throttlekit.errors`), so code written
against that client catches the same faults here; a store outage is a :class:`ServiceUnavailableError`
too, so one ``except ServiceUnavailableError`` settles an outage of any limiter (embedded store, Redis,
server).
"""

from __future__ import annotations

import reprlib
from collections.abc import Sequence
from typing import Any

#: Longest error text :func:`loggable` returns.
LOGGABLE_CHARS = 300


class ThrottleKitError(Exception):
    """Root of every error raised by throttlekit."""

    code = "throttlekit_error"


class _NoValue:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


#: Marks an error about a value that is absent (so ``None`` can still be reported as a bad value).
NO_VALUE: Any = _NoValue()

#: Longest quoted value in an error message, in characters (longer ones end in an ellipsis).
QUOTE_LIMIT = 80
_REPR = reprlib.Repr()
_REPR.maxlevel = 3
_REPR.maxstring = QUOTE_LIMIT
_REPR.maxother = QUOTE_LIMIT
_REPR.maxlong = 40
_REPR.maxdict = _REPR.maxlist = _REPR.maxtuple = _REPR.maxset = _REPR.maxfrozenset = 4


def quote(value: Any, limit: int = QUOTE_LIMIT) -> str:
    """``repr(value)`` cut to ``limit`` characters with an ellipsis, in bounded work even for huge or
    deeply shared values (a YAML alias bomb): containers are walked at most 3 levels and 4 items deep."""
    text = _REPR.repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


class ConfigError(ThrottleKitError, ValueError):
    """A parameter, config file or URL is invalid. The message names the field, value and what is allowed.

    Raised by a validator, it is structured: ``field`` (the parameter's name), ``value`` (the offending
    value; messages quote it up to :data:`QUOTE_LIMIT` characters), ``problem``, ``allowed``, ``hint`` and
    ``scope`` (what the field belongs to, e.g. ``"gcra"``). ``errors`` lists every problem found in one
    call (this error alone when there was one), so a caller can report each without parsing text.
    """

    code = "config_invalid"

    def __init__(
        self,
        message: str = "",
        *,
        field: str = "",
        value: Any = NO_VALUE,
        problem: str = "",
        allowed: str = "",
        hint: str = "",
        errors: Sequence[ConfigError] = (),
    ) -> None:
        super().__init__(message)
        self.field = field
        self.value = value
        self.problem = problem or message
        self.allowed = allowed
        self.hint = hint
        self.scope = ""
        self.errors: tuple[ConfigError, ...] = tuple(errors) or (self,)
        self._message = message

    @classmethod
    def group(cls, errors: Sequence[ConfigError]) -> ConfigError:
        """One error standing for several: its text and ``field`` are the first's, ``errors`` all."""
        first = errors[0]
        group = cls(field=first.field, value=first.value, problem=first.problem, allowed=first.allowed,
                    hint=first.hint, errors=errors)  # fmt: skip
        group.scope = first.scope
        group._message = first._message
        if len(errors) > 1:
            group._more = len(errors) - 1
        return group

    _more = 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    def __str__(self) -> str:
        if self._message:
            text = self._message
        else:
            name = f"{self.scope}.{self.field}" if self.scope and self.field else self.scope or self.field
            text = f"{name}{':' if not self.field else ''} {self.problem}" if name else self.problem
            if self.value is not NO_VALUE:
                text += f", got {quote(self.value)}"
            if self.allowed:
                text += f"; allowed: {self.allowed}"
            if self.hint:
                text += f"; {self.hint}"
        if self._more:
            text += f" (and {self._more} more: {'; '.join(str(e) for e in self.errors[1:])})"
        return text


class ScriptError(ThrottleKitError):
    """A Lua transform raised. Carries the transform name, its SHA1 and the Lua message."""

    code = "script_error"

    def __init__(self, transform: str, sha: str, message: str) -> None:
        super().__init__(f"transform {transform!r} (sha {sha[:12]}) failed: {message}")
        self.transform = transform
        self.sha = sha
        self.lua_message = message


def as_script_error(transform: str, sha: str, exc: BaseException) -> ThrottleKitError:
    """``exc`` raised by an unguarded bound call (:meth:`ScriptStore.bind` with ``guarded=False``) as the
    package's error: a :class:`ThrottleKitError` as it is, anything else (the Lua runtime's own error for
    a script fault) as a :class:`ScriptError` carrying the Lua message without its traceback."""
    if isinstance(exc, ThrottleKitError):
        return exc
    return ScriptError(transform, sha, str(exc).split("\nstack traceback:", 1)[0])


class LoaderError(ScriptError):
    """The Lua sources could not be assembled (missing include, cycle, bad manifest)."""

    code = "loader_error"

    def __init__(self, message: str) -> None:
        ThrottleKitError.__init__(self, message)
        self.transform = ""
        self.sha = ""
        self.lua_message = message


class WrongTypeError(ScriptError):
    """A key the transform touched holds a value of another type (Redis ``WRONGTYPE``): another policy's
    state or a foreign key. ``keys`` are the full keys of the call (``key`` the first), ``transform`` the
    transform's name, so a caller can name the key's owner."""

    code = "wrong_type"

    def __init__(self, transform: str, sha: str, message: str, keys: tuple[str, ...]) -> None:
        super().__init__(transform, sha, message)
        self.keys = keys
        self.key = keys[0] if keys else ""


class ServiceUnavailableError(ThrottleKitError):
    """The limiter's backend could not be reached in time: the server (gRPC ``UNAVAILABLE`` or
    ``DEADLINE_EXCEEDED``) or, as :class:`StoreError`, the store. The caller settles fail open or closed."""

    code = "service_unavailable"


class PolicyNotFoundError(ThrottleKitError, LookupError):
    """The server has no policy of that name (gRPC ``NOT_FOUND``); the message lists the configured ones."""

    code = "not_found"


class InvalidRequestError(ThrottleKitError, ValueError):
    """The server rejected the request as malformed (gRPC ``INVALID_ARGUMENT``)."""

    code = "invalid_argument"


class StoreError(ServiceUnavailableError):
    """The store failed (unreachable, timed out, protocol error). ``store_error`` keeps the cause."""

    code = "store_unavailable"

    def __init__(self, message: str, store_error: BaseException | None = None) -> None:
        super().__init__(message)
        self.store_error = store_error


class ConcurrentUpdateError(StoreError):
    """Compare-and-set retries for one key were exhausted."""

    def __init__(self, key: str, attempts: int) -> None:
        super().__init__(f"optimistic concurrency exhausted {attempts} attempts for key {key!r}")
        self.key = key
        self.attempts = attempts


class NotSupportedError(ThrottleKitError):
    """The strategy or store does not offer this operation."""

    code = "not_implemented"


class OperationNotSupportedError(NotSupportedError):
    """The policy's kind does not offer this operation (gRPC ``UNIMPLEMENTED``)."""


def loggable(exc: BaseException) -> str:
    """``exc``'s message fit for a log line: the client keys it carries (``key``/``keys`` attributes)
    replaced by ``<key>``, control characters escaped, at most :data:`LOGGABLE_CHARS` characters."""
    text = str(exc)
    keys = [getattr(exc, "key", None), *(getattr(exc, "keys", None) or ())]
    for key in sorted((k for k in keys if isinstance(k, str) and k), key=len, reverse=True):
        text = text.replace(repr(key), "<key>").replace(key, "<key>")
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    if len(text) > LOGGABLE_CHARS:
        text = text[: LOGGABLE_CHARS - 1] + "…"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
