"""The gateway's REST read cache against the whole platform (`ossa up`): Envoy, the services, Redis
and PostgreSQL, through :3100 as a client sees it (gateway_http/envoy_config/cache.py).

Repeated GETs are answered by Envoy (`x-ossa-cache`, the cache's hit counter on the admin port); a change is
seen by others within the 1 s bound and at once by the writer that sends back its consistency
token; a credential never gets a reply cached for another; a revoked token is refused within the
same bound (the services drop their "not revoked" cache when the revocation is published); no
credential stays 401; credentials never reach Envoy's access log although they are part of the
cache key.
"""

from __future__ import annotations

import re
import time
import urllib.request
import uuid

import jwt
import pytest

from gateway_http.envoy_config.cache import CACHE_HIT, CACHE_STATUS_HEADER, CONSISTENCY_HEADER, MAX_AGE_SECONDS
from ossa_runtime.auth.permissions import METRICS_READ
from ossa_runtime.auth.tokens import mint_token
from ossa_runtime.settings import Settings
from tests.e2e.agents import admin_token
from tests.e2e.platform import Platform, request

pytestmark = pytest.mark.e2e
# What a busy shared machine may add to the bound (scheduling, not the cache).
MARGIN = 0.5
# A revocation reaches every service over Redis pub/sub in milliseconds: what a busy machine may add
# to the cache's bound for it and one request's round trip (ossa_runtime/auth/revocation.py).
REVOCATION_MARGIN = 0.3


def hit(headers: dict[str, str]) -> bool:
    """Answered from Envoy's cache (`age` is on every cacheable reply, so it does not tell)."""
    return headers.get(CACHE_STATUS_HEADER) == CACHE_HIT


def fresh_second() -> None:
    """Just after a wall-clock second starts: an entry cached now lives ~1 s (Date has 1 s resolution)."""
    time.sleep(1.02 - time.time() % 1)


def create_agent(platform: Platform, token: str | None = None) -> tuple[str, str]:
    """(agent id, the write's consistency token)."""
    body = {"name": f"cache-{uuid.uuid4().hex[:10]}", "type": "worker", "version": "1.0.0", "capabilities": ["c"]}
    status, headers, reply = request(platform.gateway, "POST", "/api/v1/agents", body, token=token)
    assert status == 201, reply
    return str(reply["id"]), headers[CONSISTENCY_HEADER]


def cache_hits(platform: Platform) -> int:
    url = f"http://127.0.0.1:{platform.port('envoy_admin')}/stats?filter=cache_v2_simple.event_type.hit"
    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    return sum(int(n) for n in re.findall(r"event_type\.hit: (\d+)", text))


def metrics_only_token(platform: Platform) -> str:
    """A valid token without agent:read: GET /api/v1/agents is 403 for it, 200 for an admin."""
    secret = (platform.data_dir / "jwt.secret").read_text().strip()
    token, _ = mint_token(
        Settings.from_env({}, jwt_secret=secret), sub="cache-metrics", scopes=[METRICS_READ], ttl_seconds=600
    )
    return token


def test_repeated_reads_are_answered_by_envoy(platform: Platform) -> None:
    agent_id, _ = create_agent(platform)
    fresh_second()
    status, headers, first = request(platform.gateway, "GET", f"/api/v1/agents/{agent_id}")
    assert status == 200 and first["id"] == agent_id
    assert headers["cache-control"] == f"max-age={MAX_AGE_SECONDS}"
    hits = cache_hits(platform)
    status, headers, again = request(platform.gateway, "GET", f"/api/v1/agents/{agent_id}")
    assert status == 200 and again == first and hit(headers)
    assert cache_hits(platform) == hits + 1
    # Lists with filters, workflows and executions are cached the same way.
    for path in ("/api/v1/agents?type=worker&limit=5", "/api/v1/workflows?limit=5", "/api/v1/executions?limit=5"):
        fresh_second()
        assert request(platform.gateway, "GET", path)[0] == 200
        status, headers, _ = request(platform.gateway, "GET", path)
        assert status == 200 and hit(headers), path


def test_changes_show_within_the_bound_and_the_writer_reads_its_write(platform: Platform) -> None:
    agent_id, _ = create_agent(platform)
    path = f"/api/v1/agents/{agent_id}"
    fresh_second()
    assert request(platform.gateway, "GET", path)[0] == 200  # cached for this credential
    status, headers, _ = request(platform.gateway, "DELETE", path)
    deleted_at = time.monotonic()
    assert status == 204
    token = headers[CONSISTENCY_HEADER]
    # The writer, sending its token back, never reads what it had before its write.
    status, headers, _ = request(platform.gateway, "GET", path, headers={CONSISTENCY_HEADER: token})
    assert status == 404 and not hit(headers)
    # Nor does a client asking the cache to revalidate.
    assert request(platform.gateway, "GET", path, headers={"cache-control": "no-cache"})[0] == 404
    # Everyone else (the same credential without the token included) within the bound.
    while (status := request(platform.gateway, "GET", path)[0]) != 404:
        assert status == 200
        assert time.monotonic() - deleted_at < MAX_AGE_SECONDS + MARGIN, "a stale reply outlived the bound"
        time.sleep(0.02)


def test_a_credential_never_gets_a_reply_cached_for_another(platform: Platform) -> None:
    path = f"/api/v1/agents?limit=3&name=cache-{uuid.uuid4().hex[:6]}"
    fresh_second()
    assert request(platform.gateway, "GET", path)[0] == 200
    status, headers, _ = request(platform.gateway, "GET", path)
    assert status == 200 and hit(headers)  # the admin's reply is cached...
    other = metrics_only_token(platform)
    for _ in range(2):  # ...and never given to a credential without agent:read
        status, headers, body = request(platform.gateway, "GET", path, token=other)
        assert status == 403 and body["code"] == 7 and not hit(headers), body


def test_a_revoked_token_is_refused_within_the_bound(platform: Platform) -> None:
    victim = admin_token(platform)
    agent_id, _ = create_agent(platform, token=victim)
    path = f"/api/v1/agents/{agent_id}"
    fresh_second()
    assert request(platform.gateway, "GET", path, token=victim)[0] == 200  # the registry trusts it ~1 s
    assert hit(request(platform.gateway, "GET", path, token=victim)[1])
    jti = jwt.decode(victim, options={"verify_signature": False})["jti"]
    status, _, _ = request(platform.gateway, "POST", f"/api/v1/auth/tokens/{jti}/revoke", {})
    revoked_at = time.monotonic()
    assert status == 204

    def refused_within(bound: float, headers: dict[str, str] | None = None) -> None:
        while (status := request(platform.gateway, "GET", path, token=victim, headers=headers)[0]) != 401:
            assert status == 200
            assert time.monotonic() - revoked_at < bound, "a revoked token was still served"
            time.sleep(0.02)

    # What the cache does not hold is refused at once: the revocation was published and the registry
    # dropped its "not revoked" answer (else it would be trusted, and cached again, for ~1 s more).
    refused_within(REVOCATION_MARGIN, headers={CONSISTENCY_HEADER: "bypass"})
    # A reply cached before the revocation: the cache's bound, not the bound plus the services' cache.
    refused_within(MAX_AGE_SECONDS + REVOCATION_MARGIN)


def test_no_credential_stays_401_and_credentials_are_not_logged(platform: Platform) -> None:
    for _ in range(2):
        status, headers, body = request(platform.gateway, "GET", "/api/v1/agents", token="")
        assert status == 401 and not hit(headers) and body["code"] == 16
    # A client cannot pick a cache entry through the key's own query parameter or private header.
    forged = f"/api/v1/agents?ossa_credential=Bearer%20{platform.admin_token}"
    assert request(platform.gateway, "GET", forged, token="")[0] == 401
    assert request(platform.gateway, "GET", "/api/v1/agents", token="", headers={"x-ossa-credential": "x"})[0] == 401
    token = admin_token(platform)
    fresh_second()
    for _ in range(2):
        assert request(platform.gateway, "GET", "/api/v1/agents?limit=1", token=token)[0] == 200
    time.sleep(0.5)  # the access log is flushed on Envoy's timer
    log = (platform.data_dir / "logs" / "envoy.log").read_text(errors="replace")
    assert token not in log and platform.admin_token not in log
