"""Bearer JWTs: the spec's claims, minting, and verification with a clear reason for every refusal.

Claims (the spec's `JWTPayload`): `sub, iss, aud[], exp, iat, jti, scope[], type` (+ optional
`nbf`). HS256 with `OSSA_JWT_SECRET` by default; RS256/ES256 keys from `OSSA_JWT_JWKS`
(ossa_runtime.auth.signing). Every bad token raises `Unauthenticated` (401) naming what is wrong;
revocation is checked by `TokenVerifier.authenticate` against ossa_runtime.auth.revocation.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import jwt

from ossa_runtime.auth.permissions import PERMISSIONS, scopes_for_role
from ossa_runtime.auth.signing import VerificationKeys, signing_key
from ossa_runtime.errors import Unauthenticated
from ossa_runtime.settings import Settings

if TYPE_CHECKING:
    from ossa_runtime.auth.revocation import RevocationStore

TOKEN_TYPES = ("user", "agent", "service")
REQUIRED_CLAIMS = ("sub", "iss", "aud", "exp", "iat", "jti", "scope", "type")
CLOCK_SKEW_SECONDS = 5  # leeway for exp/nbf/iat between hosts
VERIFIED_TTL_SECONDS, VERIFIED_CACHE_SIZE = 60.0, 4096  # TokenVerifier's cache of verified tokens


@dataclass(frozen=True)
class Claims:
    """A verified (or freshly minted) token's claims."""

    sub: str
    iss: str
    aud: tuple[str, ...]
    exp: int
    iat: int
    jti: str
    scope: tuple[str, ...]
    type: str
    nbf: int | None = None

    def to_payload(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "sub": self.sub,
            "iss": self.iss,
            "aud": list(self.aud),
            "exp": self.exp,
            "iat": self.iat,
            "jti": self.jti,
            "scope": list(self.scope),
            "type": self.type,
        }
        if self.nbf is not None:
            out["nbf"] = self.nbf
        return out


def mint_token(
    settings: Settings,
    *,
    sub: str,
    role: str | None = None,
    scopes: Sequence[str] = (),
    type: str = "user",
    ttl_seconds: int,
    jti: str | None = None,
) -> tuple[str, Claims]:
    """Sign a token for `sub` with the role's permissions plus `scopes`; ValueError on bad input."""
    if not sub or not sub.strip():
        raise ValueError("sub: must not be empty")
    if type not in TOKEN_TYPES:
        raise ValueError(f"type: {type!r} is not one of {', '.join(TOKEN_TYPES)}")
    if ttl_seconds <= 0:
        raise ValueError(f"ttl_seconds: must be positive, got {ttl_seconds}")
    granted = list(scopes_for_role(role)) if role else []
    for scope in scopes:
        if scope not in PERMISSIONS:
            raise ValueError(f"scopes: unknown permission {scope!r} (use {', '.join(PERMISSIONS)})")
        if scope not in granted:
            granted.append(scope)
    now = int(time.time())
    claims = Claims(
        sub=sub,
        iss=settings.jwt_issuer,
        aud=(settings.jwt_audience,),
        exp=now + ttl_seconds,
        iat=now,
        jti=jti or secrets.token_hex(16),
        scope=tuple(granted),
        type=type,
    )
    alg, key, headers = signing_key(settings)
    return jwt.encode(claims.to_payload(), key, algorithm=alg, headers=headers or None), claims


def _when(value: Any) -> str:
    try:
        return datetime.fromtimestamp(float(value), UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    except (TypeError, ValueError, OverflowError, OSError):
        return repr(value)


class TokenVerifier:
    """Verifies bearer tokens against the settings' keys, issuer and audience (and revocations)."""

    def __init__(self, settings: Settings, revocations: RevocationStore | None = None) -> None:
        self.settings = settings
        self.keys = VerificationKeys(settings)
        self.revocations = revocations
        # Tokens already verified (a client sends the same one on every call): their claims, for at
        # most VERIFIED_TTL_SECONDS and never past `exp`. Revocation is still checked on every call.
        self._verified: OrderedDict[str, tuple[Claims, float]] = OrderedDict()

    def verify(self, token: str) -> Claims:
        """The token's claims, or `Unauthenticated` saying why it is refused (no revocation check)."""
        now = time.time()
        hit = self._verified.get(token)
        if hit is not None:
            claims, at = hit
            if now - at < VERIFIED_TTL_SECONDS and now < claims.exp + CLOCK_SKEW_SECONDS:
                self._verified.move_to_end(token)
                return claims
            del self._verified[token]
        claims = self._verify(token)
        self._verified[token] = (claims, now)
        if len(self._verified) > VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)
        return claims

    def _verify(self, token: str) -> Claims:
        if not token or not token.strip():
            raise Unauthenticated("missing bearer token: send the header 'authorization: Bearer <jwt>'")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("malformed token: not a JWT (header.payload.signature)") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg.lower() == "none":
            raise Unauthenticated("unsigned token: algorithm 'none' is not accepted")
        if alg not in self.keys.algorithms:
            raise Unauthenticated(
                f"token algorithm {alg!r} is not accepted (accepted: {', '.join(self.keys.algorithms)})"
            )
        kid = header.get("kid")
        key = self.keys.key_for(alg, kid if isinstance(kid, str) else None)
        payload = self._decode(token, key, alg)
        return _claims(payload)

    async def authenticate(self, token: str) -> Claims:
        """`verify`, off the event loop when keys come from a URL, then refuse a revoked `jti`."""
        claims = await asyncio.to_thread(self.verify, token) if self.keys.remote else self.verify(token)
        if self.revocations is not None and await self.revocations.is_revoked(claims.jti):
            raise Unauthenticated(f"token {claims.jti} has been revoked")
        return claims

    def _decode(self, token: str, key: Any, alg: str) -> dict[str, Any]:
        s = self.settings
        try:
            payload: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=s.jwt_audience,
                issuer=s.jwt_issuer,
                leeway=CLOCK_SKEW_SECONDS,
                options={"require": list(REQUIRED_CLAIMS), "verify_sub": False, "verify_jti": False},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated(f"token expired at {_when(_peek(token).get('exp'))}") from None
        except jwt.ImmatureSignatureError:
            peek = _peek(token)
            claim = "nbf" if "nbf" in peek else "iat"
            raise Unauthenticated(f"token not valid yet ({claim} {_when(peek.get(claim))})") from None
        except jwt.MissingRequiredClaimError as err:
            raise Unauthenticated(f"token lacks the required claim {err.claim!r}") from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated(f"token issuer {_peek(token).get('iss')!r} is not {s.jwt_issuer!r}") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated(
                f"token audience {_peek(token).get('aud')!r} does not include {s.jwt_audience!r}"
            ) from None
        except jwt.InvalidSignatureError:
            raise Unauthenticated("invalid token signature") from None
        except jwt.InvalidKeyError:
            raise Unauthenticated(f"invalid token: its key does not fit algorithm {alg}") from None
        except jwt.DecodeError:
            raise Unauthenticated("malformed token: its payload or signature cannot be decoded") from None
        except jwt.PyJWTError as err:
            raise Unauthenticated(f"invalid token: {err}") from None
        return payload


def _peek(token: str) -> dict[str, Any]:
    try:
        out: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return {}
    return out


def _text(payload: Mapping[str, Any], name: str) -> str:
    value = payload[name]
    if not isinstance(value, str) or not value.strip():
        raise Unauthenticated(f"token claim {name!r} must be a non-empty string")
    return value


def _strings(payload: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = payload[name]
    if isinstance(value, str):  # RFC 8693 style: space-separated
        return tuple(value.split())
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise Unauthenticated(f"token claim {name!r} must be a list of strings")
    return tuple(value)


def _number(payload: Mapping[str, Any], name: str) -> int:
    value = payload[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Unauthenticated(f"token claim {name!r} must be a number")
    return int(value)


def _claims(payload: Mapping[str, Any]) -> Claims:
    kind = _text(payload, "type")
    if kind not in TOKEN_TYPES:
        raise Unauthenticated(f"unknown token type {kind!r} (expected {', '.join(TOKEN_TYPES)})")
    return Claims(
        sub=_text(payload, "sub"),
        iss=_text(payload, "iss"),
        aud=_strings(payload, "aud"),
        exp=_number(payload, "exp"),
        iat=_number(payload, "iat"),
        jti=_text(payload, "jti"),
        scope=_strings(payload, "scope"),
        type=kind,
        nbf=_number(payload, "nbf") if payload.get("nbf") is not None else None,
    )
