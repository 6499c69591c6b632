"""Exceptions of the agent SDK."""

from __future__ import annotations


class PermanentError(Exception):
    """Raise from a handler when retrying cannot help: the task fails with `retryable=False`."""


class HandlerError(ValueError):
    """A handler spec (`echo`, `module:function`) cannot be resolved; the message is one line."""


class RegistrationError(RuntimeError):
    """The registry refused the agent for good (e.g. an invalid name or version); retrying cannot help."""


class OutputError(PermanentError):
    """A handler returned something that is not JSON (a set, NaN, an object...)."""
