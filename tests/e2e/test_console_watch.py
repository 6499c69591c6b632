"""The console's execution detail follows the execution's WatchExecution stream, not the polling.

The page is opened with a refresh interval far longer than the test (#poll=600000): only the
stream can bring the change made behind the page's back (a cancel over REST) onto it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.agents import run_workflow
from tests.e2e.browser import chromium, chromium_missing, click, wait_js
from tests.e2e.platform import Platform, request

pytestmark = pytest.mark.e2e
needs_chromium = pytest.mark.skipif(chromium_missing() is not None, reason=chromium_missing() or "")


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium() as driver:
        yield driver


@needs_chromium
def test_execution_detail_updates_from_the_stream(platform: Platform, browser: Any) -> None:
    _, execution_id = run_workflow(platform, [{"id": "stuck", "capability": f"nobody-{secrets.token_hex(3)}"}])
    browser.get(f"http://{platform.gateway}/console#token={platform.admin_token}&poll=600000")
    wait_js(browser, "return !document.getElementById('app').hidden")
    click(browser, "#tab-executions")
    click(browser, f'#executions-data button[data-key="ex-{execution_id}"]')
    wait_js(browser, "return document.querySelector('#execution-status')?.dataset.status === 'pending'")
    browser.execute_script("window.__sameDocument = true;")
    status, _, _ = request(platform.gateway, "POST", f"/api/v1/executions/{execution_id}/cancel", {})
    assert status == 200
    wait_js(browser, "return document.querySelector('#execution-status')?.dataset.status === 'cancelled'", timeout=15)
    assert browser.execute_script("return window.__sameDocument === true")
