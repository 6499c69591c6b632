"""The errors the `ossa` commands share, and how they reach the user: one line on stderr, an exit code.

- `UsageError`: bad settings or arguments, a busy port or data directory; exit code 2. `ossa`'s
  entry point (ossa_cli.main) turns one raised by a command into `ossa: error: ...`.
- `TokenError`: a token or admin-token problem (`ossa token`, `ossa reindex`), with its exit code.
- `error(message, code)`: print `ossa: error: <message>` and return `code`, for commands that
  return their exit code instead of raising.
"""

from __future__ import annotations

import sys

PROG = "ossa"


class UsageError(Exception):
    """A one-line error for the user; exit code 2."""


class TokenError(Exception):
    """A one-line error for the user; `code` is the exit code."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def error(message: str, code: int) -> int:
    """Print `ossa: error: <message>` on stderr; returns `code` (the command's exit code)."""
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code
