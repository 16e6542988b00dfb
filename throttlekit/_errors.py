"""The exception tree. Over-limit is never an exception: a denial is a normal ``Decision``.

::

    ThrottleKitError                 every error this package raises
    ├── ConfigError                  bad strategy parameters, config files, store URLs (also ValueError)
    ├── ScriptError                  a Lua transform failed or a script file is broken
    │   └── LoaderError              include cycle, missing include, malformed manifest
    ├── StoreError                   the store could not be reached or answered a transport error
    │   └── ConcurrentUpdateError    optimistic concurrency retries exhausted for a key
    └── NotSupportedError            the operation does not exist for this strategy or store
"""

from __future__ import annotations


class ThrottleKitError(Exception):
    """Root of every error raised by throttlekit."""

    code = "throttlekit_error"


class ConfigError(ThrottleKitError, ValueError):
    """A parameter, config file or URL is invalid. The message names the field, value and what is allowed."""

    code = "config_invalid"


class ScriptError(ThrottleKitError):
    """A Lua transform raised. Carries the transform name, its SHA1 and the Lua message."""

    code = "script_error"

    def __init__(self, transform: str, sha: str, message: str) -> None:
        super().__init__(f"transform {transform!r} (sha {sha[:12]}) failed: {message}")
        self.transform = transform
        self.sha = sha
        self.lua_message = message


class LoaderError(ScriptError):
    """The Lua sources could not be assembled (missing include, cycle, bad manifest)."""

    code = "loader_error"

    def __init__(self, message: str) -> None:
        ThrottleKitError.__init__(self, message)
        self.transform = ""
        self.sha = ""
        self.lua_message = message


class StoreError(ThrottleKitError):
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
