"""Keep secrets out of logs, errors and printed settings.

Secret settings (`settings.SECRET_FIELDS`: database/Redis URLs, the JWT secret, the API key) are
declared `repr=False`; `redact_env` hides them in an `OSSA_*` mapping meant for printing;
`redact_url` hides a URL's password; and `install_log_redaction` wraps the process's log handlers
so that no line can carry a configured secret or a bearer token (a JWT), whatever logged it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import fields
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ossa_runtime.settings import PREFIX, SECRET_FIELDS, Settings

REDACTED = "***"
# A JWT: three base64url parts, the first a JSON object (`{"` encodes as `eyJ`).
JWT_PATTERN = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
# Shorter values are not redacted inside other text (they would mangle unrelated words).
MIN_SECRET_LENGTH = 6
_SECRET_QUERY_KEYS = {"password", "passwd", "pass", "secret", "token", "sslpassword"}


def secret_names() -> frozenset[str]:
    """SECRET_FIELDS plus any other field declared `repr=False`."""
    return SECRET_FIELDS | {f.name for f in fields(Settings) if not f.repr}


def redact_url(url: str) -> str:
    """`url` with its password (and password-like query parameters) replaced by ***."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return REDACTED
    netloc = parts.netloc
    if password is not None:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{REDACTED}@{hostport}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in _SECRET_QUERY_KEYS for k, _ in pairs):
            query = urlencode([(k, REDACTED if k.lower() in _SECRET_QUERY_KEYS else v) for k, v in pairs], safe="*")
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def redact_env(env: Mapping[str, str]) -> dict[str, str]:
    """A copy of `env` (e.g. `Settings.to_env()`) safe to print: secret variables are ***."""
    hidden = {PREFIX + name.upper() for name in secret_names()}
    return {k: (REDACTED if k in hidden and v else v) for k, v in env.items()}


def secret_values(settings: Settings) -> list[str]:
    """The configured secrets as they could appear in text: whole values and URL passwords."""
    out: set[str] = set()
    for name in secret_names():
        value = str(getattr(settings, name, "") or "")
        if not value:
            continue
        out.add(value)
        try:
            password = urlsplit(value).password
        except ValueError:
            password = None
        if password:
            out.add(password)
    return sorted((v for v in out if len(v) >= MIN_SECRET_LENGTH), key=len, reverse=True)


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` without the given secrets and without anything that looks like a JWT."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return JWT_PATTERN.sub(REDACTED, text)


class RedactingFormatter(logging.Formatter):
    """Formats with `inner`, then removes secrets and bearer tokens from the line."""

    def __init__(self, inner: logging.Formatter, secrets: Iterable[str]) -> None:
        super().__init__()
        self.inner = inner
        self.secrets = list(secrets)

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(self.inner.format(record), self.secrets)


def install_log_redaction(settings: Settings, logger: logging.Logger | None = None) -> None:
    """Wrap the formatter of every handler of `logger` (default: the root logger); idempotent."""
    secrets = secret_values(settings)
    for handler in (logger or logging.getLogger()).handlers:
        current = handler.formatter or logging.Formatter()
        if isinstance(current, RedactingFormatter):
            current = current.inner
        handler.setFormatter(RedactingFormatter(current, secrets))
