"""ossa_runtime.auth.tokens: minting, and a clear refusal for every kind of bad token."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ossa_runtime.auth.signing import AuthConfigError
from ossa_runtime.auth.tokens import Claims, TokenVerifier, mint_token
from ossa_runtime.errors import Unauthenticated
from ossa_runtime.settings import Settings

SECRET = "unit-test-secret-long-enough-for-hs256-and-even-hs512-0123456789abcdef"
SETTINGS = Settings.from_env({}, jwt_secret=SECRET)


def payload(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    out: dict[str, Any] = {
        "sub": "alice",
        "iss": "ossa",
        "aud": ["ossa-platform"],
        "exp": now + 600,
        "iat": now,
        "jti": "jti-1",
        "scope": ["agent:read"],
        "type": "user",
    }
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def hs256(body: dict[str, Any], key: str = SECRET) -> str:
    return jwt.encode(body, key, algorithm="HS256")


def refusal(token: str, verifier: TokenVerifier | None = None) -> str:
    with pytest.raises(Unauthenticated) as caught:
        (verifier or TokenVerifier(SETTINGS)).verify(token)
    return caught.value.message


# Minting -------------------------------------------------------------------------------------------


def test_minted_token_round_trips_with_the_specs_claims() -> None:
    token, claims = mint_token(SETTINGS, sub="bob", role="operator", scopes=["metrics:read"], ttl_seconds=60)
    assert claims.scope == ("agent:read", "agent:write", "workflow:read", "workflow:execute", "metrics:read")
    assert claims.iss == "ossa" and claims.aud == ("ossa-platform",) and claims.type == "user"
    assert claims.exp - claims.iat == 60 and len(claims.jti) == 32
    assert TokenVerifier(SETTINGS).verify(token) == claims
    raw = jwt.decode(token, options={"verify_signature": False})
    assert set(raw) == {"sub", "iss", "aud", "exp", "iat", "jti", "scope", "type"}
    assert isinstance(raw["aud"], list) and isinstance(raw["scope"], list)


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"sub": ""}, "sub"),
        ({"role": "root"}, "root"),
        ({"scopes": ["agent:fly"]}, "agent:fly"),
        ({"type": "robot"}, "robot"),
        ({"ttl_seconds": 0}, "ttl_seconds"),
    ],
)
def test_mint_refuses_bad_input_naming_it(kwargs: dict[str, Any], names: str) -> None:
    args: dict[str, Any] = {"sub": "x", "ttl_seconds": 60, **kwargs}
    with pytest.raises(ValueError, match=names):
        mint_token(SETTINGS, **args)


def test_mint_and_verify_need_a_key() -> None:
    keyless = Settings.from_env({})
    with pytest.raises(AuthConfigError, match="OSSA_JWT_SECRET"):
        mint_token(keyless, sub="x", ttl_seconds=60)
    with pytest.raises(AuthConfigError, match="OSSA_JWT_SECRET"):
        TokenVerifier(keyless)
    with pytest.raises(AuthConfigError, match="none"):
        TokenVerifier(SETTINGS.replace(jwt_algorithms="none"))
    with pytest.raises(AuthConfigError, match="OSSA_JWT_JWKS"):
        TokenVerifier(SETTINGS.replace(jwt_algorithms="RS256"))
    with pytest.raises(AuthConfigError, match="at least 32 bytes"):
        TokenVerifier(SETTINGS.replace(jwt_secret="short"))
    with pytest.raises(AuthConfigError, match="at least 32 bytes"):
        mint_token(SETTINGS.replace(jwt_secret="short"), sub="x", ttl_seconds=60)


# The bad-token catalogue -----------------------------------------------------------------------------


def test_missing_and_garbage_tokens() -> None:
    assert "missing bearer token" in refusal("")
    assert "malformed token" in refusal("garbage")
    assert "malformed token" in refusal("a.b.c")
    header = jwt.utils.base64url_encode(b'{"alg":"HS256","typ":"JWT"}').decode()
    assert "malformed" in refusal(f"{header}.!!!notbase64!!!.sig")


def test_alg_none_is_refused() -> None:
    unsigned = jwt.encode(payload(), "", algorithm="none")
    assert "algorithm 'none'" in refusal(unsigned)
    assert "algorithm 'none'" in refusal(unsigned + "forged-signature")


def test_wrong_signature() -> None:
    assert refusal(hs256(payload(), key="another-secret-that-is-also-long-enough!!")) == "invalid token signature"
    good = hs256(payload())
    assert refusal(good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")) == "invalid token signature"


def test_algorithm_not_accepted() -> None:
    hs512 = jwt.encode(payload(), SECRET, algorithm="HS512")
    assert "HS512" in refusal(hs512) and "accepted: HS256" in refusal(hs512)


def test_expired() -> None:
    message = refusal(hs256(payload(exp=int(time.time()) - 3600)))
    assert message.startswith("token expired at ") and message.endswith("Z")


def test_not_yet_valid() -> None:
    assert "not valid yet (nbf" in refusal(hs256(payload(nbf=int(time.time()) + 3600)))
    assert "not valid yet (iat" in refusal(hs256(payload(iat=int(time.time()) + 3600)))


def test_wrong_issuer_and_audience() -> None:
    assert refusal(hs256(payload(iss="evil"))) == "token issuer 'evil' is not 'ossa'"
    assert "does not include 'ossa-platform'" in refusal(hs256(payload(aud=["other"])))


@pytest.mark.parametrize("claim", ["sub", "iss", "aud", "exp", "iat", "jti", "scope", "type"])
def test_missing_claims(claim: str) -> None:
    assert refusal(hs256(payload(**{claim: None}))) == f"token lacks the required claim {claim!r}"


def test_unknown_type_and_bad_claim_shapes() -> None:
    assert "unknown token type 'robot'" in refusal(hs256(payload(type="robot")))
    assert "'scope' must be a list of strings" in refusal(hs256(payload(scope=[1, 2])))
    assert "'sub' must be a non-empty string" in refusal(hs256(payload(sub="")))
    assert "'jti' must be a non-empty string" in refusal(hs256(payload(jti=7)))


def test_space_separated_scope_and_string_audience_are_accepted() -> None:
    claims = TokenVerifier(SETTINGS).verify(hs256(payload(scope="agent:read metrics:read", aud="ossa-platform")))
    assert claims.scope == ("agent:read", "metrics:read") and claims.aud == ("ossa-platform",)


def test_other_issuer_and_audience_settings() -> None:
    custom = SETTINGS.replace(jwt_issuer="corp", jwt_audience="api")
    token, _ = mint_token(custom, sub="x", role="viewer", ttl_seconds=60)
    assert TokenVerifier(custom).verify(token).iss == "corp"
    assert "issuer 'corp'" in refusal(token)


# RS256 / ES256 through a JWKS ----------------------------------------------------------------------------


def pem(key: Any) -> str:
    raw: bytes = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return raw.decode()


def jwk(key: Any, kid: str, alg: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(key.public_key()))
    out.update(kid=kid, alg=alg, use="sig")
    return out


@pytest.fixture(scope="module")
def keys() -> dict[str, Any]:
    return {
        "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ec": ec.generate_private_key(ec.SECP256R1()),
        "other": rsa.generate_private_key(public_exponent=65537, key_size=2048),
    }


@pytest.fixture
def jwks_file(tmp_path: Path, keys: dict[str, Any]) -> Path:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [jwk(keys["rsa"], "r1", "RS256"), jwk(keys["ec"], "e1", "ES256")]}))
    return path


def asymmetric(jwks: str, alg: str, key: Any, kid: str) -> Settings:
    return Settings.from_env(
        {}, jwt_algorithms="RS256,ES256", jwt_jwks=jwks, jwt_private_key=pem(key), jwt_key_id=kid
    ).replace(jwt_algorithms=alg + ",RS256,ES256")


def test_rs256_and_es256_via_a_jwks_file(jwks_file: Path, keys: dict[str, Any]) -> None:
    verifier = TokenVerifier(Settings.from_env({}, jwt_algorithms="RS256,ES256", jwt_jwks=str(jwks_file)))
    for alg, key, kid in (("RS256", keys["rsa"], "r1"), ("ES256", keys["ec"], "e1")):
        token, claims = mint_token(asymmetric(str(jwks_file), alg, key, kid), sub="svc", role="admin", ttl_seconds=60)
        assert jwt.get_unverified_header(token) == {"alg": alg, "kid": kid, "typ": "JWT"}
        assert verifier.verify(token) == claims
    forged = jwt.encode(payload(), pem(keys["other"]), algorithm="RS256", headers={"kid": "r1"})
    assert refusal(forged, verifier) == "invalid token signature"
    unknown = jwt.encode(payload(), pem(keys["other"]), algorithm="RS256", headers={"kid": "zz"})
    assert "no signing key with kid 'zz'" in refusal(unknown, verifier)
    # An HS256 token signed with a public key's text (the classic confusion attack) is refused.
    confused = hs256(payload(), key="not-the-key-but-long-enough-to-pass-the-length-check")
    assert "'HS256' is not accepted" in refusal(confused, verifier)


def test_jwks_file_errors_name_the_setting(tmp_path: Path) -> None:
    with pytest.raises(AuthConfigError, match=r"OSSA_JWT_JWKS=.*cannot read"):
        TokenVerifier(Settings.from_env({}, jwt_algorithms="RS256", jwt_jwks=str(tmp_path / "nope.json")))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(AuthConfigError, match="not JSON"):
        TokenVerifier(Settings.from_env({}, jwt_algorithms="RS256", jwt_jwks=str(tmp_path / "bad.json")))


class _JwksHandler(BaseHTTPRequestHandler):
    body = b"{}"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def jwks_url(jwks_file: Path) -> Iterator[str]:
    handler = type("Handler", (_JwksHandler,), {"body": jwks_file.read_bytes()})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/.well-known/jwks.json"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_rs256_via_a_jwks_url(jwks_url: str, jwks_file: Path, keys: dict[str, Any]) -> None:
    verifier = TokenVerifier(Settings.from_env({}, jwt_algorithms="RS256,ES256", jwt_jwks=jwks_url))
    assert verifier.keys.remote
    token, claims = mint_token(asymmetric(str(jwks_file), "ES256", keys["ec"], "e1"), sub="s", ttl_seconds=60)
    assert await verifier.authenticate(token) == claims
    forged = jwt.encode(payload(), pem(keys["other"]), algorithm="RS256", headers={"kid": "r1"})
    with pytest.raises(Unauthenticated, match="invalid token signature"):
        await verifier.authenticate(forged)


def test_claims_payload_shape() -> None:
    claims = Claims("s", "ossa", ("a",), 2, 1, "j", ("agent:read",), "agent", nbf=1)
    assert claims.to_payload()["nbf"] == 1 and claims.to_payload()["aud"] == ["a"]


def test_verified_tokens_are_cached_but_not_past_their_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    verifier = TokenVerifier(SETTINGS)
    token, _ = mint_token(SETTINGS, sub="cached", role="viewer", ttl_seconds=3600)
    calls: list[str] = []
    real = verifier._verify
    monkeypatch.setattr(verifier, "_verify", lambda t: calls.append(t) or real(t))
    first = verifier.verify(token)
    assert verifier.verify(token) is first and len(calls) == 1  # the second call is a cache hit
    later = time.time() + 61  # past the cache's 60 s: verified again
    monkeypatch.setattr("ossa_runtime.auth.tokens.time.time", lambda: later)
    assert verifier.verify(token) == first and len(calls) == 2
    with pytest.raises(Unauthenticated, match="invalid token signature"):
        verifier.verify(token[:-2] + ("AA" if token[-2:] != "AA" else "BB"))  # a different string is never a hit
