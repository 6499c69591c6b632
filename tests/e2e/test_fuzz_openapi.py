"""Property test of the REST surface: schemathesis generates requests from the served OpenAPI
document (valid and invalid ones) and no response may be a 5xx. Every error must use the one
documented error shape. Requests carry an admin token, so they reach the services' validation."""

from __future__ import annotations

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.e2e.agents import admin_token
from tests.e2e.platform import Platform

pytestmark = pytest.mark.e2e
EXAMPLES_PER_OPERATION = 150


def test_no_operation_answers_5xx(platform: Platform) -> None:
    base = f"http://{platform.gateway}"
    schema = schemathesis.openapi.from_url(f"{base}/api/v1/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} >= {"POST /api/v1/agents", "GET /api/v1/agents/{agent_id}"}
    failures: list[str] = []
    with requests.Session() as session:
        # Its own admin token: a fuzzed logout may revoke it without touching the other tests'.
        session.headers["authorization"] = f"Bearer {admin_token(platform)}"
        for operation in operations:
            if operation.label.endswith("/api/v1/health"):
                continue  # health answers 503 by design when a component is down
            if operation.label.endswith("/api/v1/search/reindex"):
                continue  # an empty request that re-embeds everything: tests/e2e/test_rest_search.py runs it

            strategy = operation.as_strategy(schemathesis.GenerationMode.POSITIVE) | operation.as_strategy(
                schemathesis.GenerationMode.NEGATIVE
            )

            @settings(
                max_examples=EXAMPLES_PER_OPERATION,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=strategy)
            def run(case: schemathesis.Case) -> None:
                response = case.call(base_url=base, session=session, timeout=10)
                if response.status_code >= 500:
                    failures.append(
                        f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}"
                    )
                elif response.status_code >= 400:
                    body = response.json()
                    assert set(body) == {"code", "message", "details"}, body
                    assert body["message"], body

            run()
    assert not failures, "\n".join(failures[:20])
