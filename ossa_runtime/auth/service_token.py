"""Tokens a service uses to call another service (e.g. the orchestrator asking the registry).

A `ServiceToken` is a callable for `bearer_interceptors`: it mints a short-lived `service` token
with only the scopes the caller needs, and mints a new one when half its lifetime has passed.
When the service cannot mint (keys come from a JWKS without a private key) it forwards the token
of the RPC being served instead; with authentication off it returns "" (nothing is sent).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from ossa_runtime.auth.principal import caller_token
from ossa_runtime.auth.signing import AuthConfigError
from ossa_runtime.auth.tokens import mint_token
from ossa_runtime.settings import Settings

log = logging.getLogger("ossa.auth")


class ServiceToken:
    def __init__(self, settings: Settings, service: str, scopes: Sequence[str], ttl_seconds: int = 3600) -> None:
        self.settings = settings
        self.sub = f"ossa-{service}"
        self.scopes = tuple(scopes)
        self.ttl = ttl_seconds
        self._token = ""
        self._renew_at = 0.0
        self.enabled = settings.auth_enabled
        self.can_mint = self.enabled
        if self.can_mint:
            try:
                self()
            except AuthConfigError as err:
                log.info(
                    "service token not available; forwarding callers' tokens", extra={"metadata": {"why": str(err)}}
                )
                self.can_mint = False

    def __call__(self) -> str:
        if not self.can_mint:
            return caller_token() if self.enabled else ""
        now = time.monotonic()
        if now >= self._renew_at:
            self._token, _ = mint_token(
                self.settings, sub=self.sub, scopes=self.scopes, type="service", ttl_seconds=self.ttl
            )
            self._renew_at = now + self.ttl / 2
        return self._token
