"""Key material for JWTs: the HS256 secret, RS256/ES256 public keys from a JWKS file or URL, and
the private key `mint_token` signs asymmetric tokens with.

A JWKS file is read once; a JWKS URL goes through PyJWT's `PyJWKClient` (keys cached, refetched
when an unknown `kid` shows up). Configuration mistakes raise `AuthConfigError` at start-up,
naming the setting, so a service never starts with auth on and no way to verify a token.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jwt

from ossa_runtime.errors import Unauthenticated, Unavailable
from ossa_runtime.settings import Settings, SettingsError

SYMMETRIC = frozenset({"HS256", "HS384", "HS512"})
ASYMMETRIC = frozenset({"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512"})


MIN_SECRET_BYTES = 32  # RFC 7518 3.2: an HS256 key at least as long as the hash


class AuthConfigError(SettingsError):
    """The auth settings cannot work; the message names the OSSA_* variable."""


def _check_secret(secret: str) -> None:
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise AuthConfigError(
            f"OSSA_JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes (e.g. `openssl rand -base64 48`)"
        )


def algorithms(settings: Settings) -> tuple[str, ...]:
    """The accepted algorithms (`OSSA_JWT_ALGORITHMS`), validated: never `none`."""
    names = tuple(a.strip() for a in settings.jwt_algorithms.split(",") if a.strip())
    if not names:
        raise AuthConfigError("OSSA_JWT_ALGORITHMS is empty: use e.g. HS256 or RS256,ES256")
    for name in names:
        if name not in SYMMETRIC | ASYMMETRIC:
            raise AuthConfigError(
                f"OSSA_JWT_ALGORITHMS: {name!r} is not supported (use {', '.join(sorted(SYMMETRIC | ASYMMETRIC))})"
            )
    return names


def _read_pem(value: str, var: str) -> str:
    if value.lstrip().startswith("-----BEGIN"):
        return value
    try:
        return Path(value).expanduser().read_text()
    except OSError as err:
        raise AuthConfigError(f"{var}={value}: cannot read the key file: {err.strerror or err}") from None


class VerificationKeys:
    """Finds the key that verifies one token, given its header's `alg` and `kid`."""

    def __init__(self, settings: Settings) -> None:
        self.algorithms = algorithms(settings)
        self.secret = settings.jwt_secret
        self._jwks: jwt.PyJWKSet | None = None
        self._client: jwt.PyJWKClient | None = None
        source = settings.jwt_jwks.strip()
        if any(a in SYMMETRIC for a in self.algorithms) and not self.secret:
            raise AuthConfigError("OSSA_JWT_SECRET (or OSSA_JWT_SECRET_FILE) is required for HS256 tokens")
        if self.secret:
            _check_secret(self.secret)
        if any(a in ASYMMETRIC for a in self.algorithms) and not source:
            raise AuthConfigError("OSSA_JWT_JWKS (a JWKS file or URL) is required for RS256/ES256 tokens")
        if source.startswith(("http://", "https://")):
            self._client = jwt.PyJWKClient(source, cache_keys=True, timeout=5)
        elif source:
            self._jwks = _load_jwks_file(source)

    @property
    def remote(self) -> bool:
        """Whether finding a key may need network I/O (a JWKS URL)."""
        return self._client is not None

    def key_for(self, alg: str, kid: str | None) -> Any:
        if alg in SYMMETRIC:
            return self.secret
        if self._client is not None:
            try:
                if kid:
                    return self._client.get_signing_key(kid).key
                keys = self._client.get_signing_keys()
            except jwt.PyJWKClientConnectionError as err:
                raise Unavailable(f"cannot fetch the JWKS to verify the token: {err}") from None
            except jwt.PyJWKClientError as err:
                raise Unauthenticated(f"invalid token: no signing key for kid {kid!r} ({err})") from None
            return _only_key(keys, alg, kid)
        assert self._jwks is not None
        if kid:
            try:
                return self._jwks[kid].key
            except KeyError:
                raise Unauthenticated(f"invalid token: no signing key with kid {kid!r}") from None
        return _only_key(list(self._jwks.keys), alg, kid)


def _only_key(keys: list[jwt.PyJWK], alg: str, kid: str | None) -> Any:
    family = alg[:2]
    matching = [k for k in keys if (k.algorithm_name or "")[:2] in (family, "")]
    if len(matching) != 1:
        raise Unauthenticated(f"invalid token: no 'kid' header and {len(matching)} candidate {alg} keys in the JWKS")
    return matching[0].key


def _load_jwks_file(path: str) -> jwt.PyJWKSet:
    try:
        data = json.loads(Path(path).expanduser().read_text())
    except OSError as err:
        raise AuthConfigError(f"OSSA_JWT_JWKS={path}: cannot read the JWKS file: {err.strerror or err}") from None
    except ValueError as err:
        raise AuthConfigError(f"OSSA_JWT_JWKS={path}: not JSON: {err}") from None
    try:
        return jwt.PyJWKSet.from_dict(data)
    except jwt.PyJWTError as err:
        raise AuthConfigError(f"OSSA_JWT_JWKS={path}: not a usable JWKS: {err}") from None


def signing_key(settings: Settings) -> tuple[str, Any, dict[str, str]]:
    """(algorithm, key, extra headers) that `mint_token` signs with.

    With `OSSA_JWT_PRIVATE_KEY` (a PEM file or PEM text) the first asymmetric algorithm of
    `OSSA_JWT_ALGORITHMS` is used (with `OSSA_JWT_KEY_ID` as `kid`); otherwise HS256 with the secret.
    """
    names = algorithms(settings)
    if settings.jwt_private_key:
        alg = next((a for a in names if a in ASYMMETRIC), None)
        if alg is None:
            raise AuthConfigError("OSSA_JWT_PRIVATE_KEY is set but OSSA_JWT_ALGORITHMS names no RS*/ES* algorithm")
        headers = {"kid": settings.jwt_key_id} if settings.jwt_key_id else {}
        return alg, _read_pem(settings.jwt_private_key, "OSSA_JWT_PRIVATE_KEY"), headers
    if not settings.jwt_secret:
        raise AuthConfigError("OSSA_JWT_SECRET (or OSSA_JWT_SECRET_FILE) is required to mint tokens")
    _check_secret(settings.jwt_secret)
    alg = next((a for a in names if a in SYMMETRIC), None)
    if alg is None:
        raise AuthConfigError("OSSA_JWT_ALGORITHMS accepts no HS* algorithm: set OSSA_JWT_PRIVATE_KEY to mint tokens")
    return alg, settings.jwt_secret, {}
