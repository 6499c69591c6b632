"""The operations console (/console) in a real headless Chromium against `ossa up`.

Agents are real `ossa agent serve` processes; workflows run through the REST API. The page is
opened once per role with `/console#token=...` and watched, never reloaded, while things change.
A screenshot of each run is saved under test-artifacts/ (its path is printed).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.agents import agents, platform_token, run_workflow, wait_execution
from tests.e2e.browser import (
    A11Y_JS,
    FOCUSABLE_JS,
    chromium,
    chromium_missing,
    click,
    page_text,
    tab_through,
    wait_js,
)
from tests.e2e.platform import Platform, request

pytestmark = pytest.mark.e2e
needs_chromium = pytest.mark.skipif(chromium_missing() is not None, reason=chromium_missing() or "")

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def screenshot(driver: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    print(f"console screenshot: {path}")
    return path


def open_console(driver: Any, platform: Platform, token: str) -> None:
    driver.get(f"http://{platform.gateway}/console#token={token}&poll=500")
    wait_js(driver, "return !document.getElementById('app').hidden")
    # Set once; a reload would lose it, so the assertions below prove the page updated in place.
    driver.execute_script("window.__sameDocument = true;")


def same_document(driver: Any) -> bool:
    return bool(driver.execute_script("return window.__sameDocument === true"))


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium() as driver:
        yield driver


# Static files (no browser needed) -----------------------------------------------------------


def test_console_is_served_by_envoy_with_cacheable_assets(platform: Platform) -> None:
    status, headers, body = request(platform.gateway, "GET", "/console", token="")
    assert status == 200 and headers["content-type"].startswith("text/html"), (status, headers)
    assert headers["cache-control"] == "no-cache"
    assert "default-src 'none'" in headers["content-security-policy"]
    assert headers["referrer-policy"] == "no-referrer"
    assert request(platform.gateway, "GET", "/console/", token="")[0] == 200
    scripts = [part.split('"')[0] for part in body.split('src="')[1:]]
    styles = [part.split('"')[0] for part in body.split('<link rel="stylesheet" href="')[1:]]
    assert scripts and styles and all(u.startswith("/console/assets/") for u in scripts + styles), body
    status, headers, js = request(platform.gateway, "GET", scripts[0], token="")
    assert status == 200 and headers["content-type"].startswith("text/javascript")
    assert "immutable" in headers["cache-control"] and "import" in js
    status, headers, _ = request(platform.gateway, "GET", styles[0], token="")
    assert status == 200 and headers["content-type"].startswith("text/css")
    # Anything else under /console is the platform's usual 404, and the console is read-only.
    status, _, missing = request(platform.gateway, "GET", "/console/assets/nope/app.js", token="")
    assert status == 404 and missing["code"] == 5
    status, _, _ = request(platform.gateway, "POST", "/console", {}, token="")
    assert status == 404


# In the browser ------------------------------------------------------------------------------


@needs_chromium
def test_admin_watches_agents_and_an_execution_complete_live(platform: Platform, browser: Any, tmp_path: Path) -> None:
    capability = f"console-{secrets.token_hex(3)}"
    with agents(platform, tmp_path, (capability, "echo", 2), (f"{capability}-slow", "sleep", 1)) as started:
        open_console(browser, platform, platform.admin_token)
        # The token left the address bar at once and lives in this tab's sessionStorage only.
        assert "token" not in browser.current_url
        assert browser.execute_script("return sessionStorage.getItem('ossa.console.token')") == platform.admin_token
        names = [a.name for a in started]
        wait_js(
            browser,
            "return arguments[0].every((n) => [...document.querySelectorAll('#agents-data .agent-name')]"
            ".some((e) => e.textContent === n))",
            names,
            timeout=60,
        )
        assert browser.execute_script("return document.querySelector('#who .role').textContent") == "admin"

        steps: list[dict[str, Any]] = [
            {"id": "fetch", "capability": capability, "input": {"text": "hello"}},
            {"id": "think", "capability": f"{capability}-slow", "depends_on": ["fetch"], "input": {"seconds": 2}},
            {"id": "report", "capability": capability, "depends_on": ["think", "fetch"]},
        ]
        _, execution_id = run_workflow(platform, steps, context={"from": "console"})
        click(browser, "#tab-executions")
        click(browser, f'#executions-data button[data-key="ex-{execution_id}"]')
        # While `think` sleeps the DAG shows it leased and `report` not started; the agents
        # table (polled) lists the task the slow agent holds.
        wait_js(
            browser,
            "const n = document.querySelector('#execution-detail [data-step=think]');"
            "return n && ['assigned', 'running'].includes(n.dataset.state)",
        )
        assert same_document(browser)
        wait_js(
            browser, "return document.querySelector('#execution-status')?.dataset.status === 'completed'", timeout=60
        )
        states = browser.execute_script(
            "return [...document.querySelectorAll('#execution-detail [data-step]')].map((n) => n.dataset.state)"
        )
        assert states == ["completed"] * 3, states
        text = page_text(browser)
        assert "Tasks and attempts" in text and "think #1" in text and '"from": "console"' in text
        assert same_document(browser)
        assert wait_execution(platform, execution_id, "completed")["status"] == "completed"
        screenshot(browser, "console-execution-completed")

        # Accessibility basics on the execution view, then on the other tabs.
        assert browser.execute_script(A11Y_JS) == []
        for tab, data in (("agents", "agents-data"), ("workflows", "workflows-data"), ("queue", "health-data")):
            click(browser, f"#tab-{tab}")
            wait_js(browser, f"return document.querySelector('#{data} table')")
            assert browser.execute_script(A11Y_JS) == [], tab
        screenshot(browser, "console-queue-health")


@needs_chromium
def test_keyboard_reaches_every_control(platform: Platform, browser: Any, tmp_path: Path) -> None:
    capability = f"console-kb-{secrets.token_hex(3)}"
    with agents(platform, tmp_path, (capability, "echo", 1)):
        _, execution_id = run_workflow(platform, [{"id": "only", "capability": capability}])
        wait_execution(platform, execution_id, "completed")
        open_console(browser, platform, platform.admin_token)
        click(browser, "#tab-executions")
        click(browser, f'#executions-data button[data-key="ex-{execution_id}"]')
        wait_js(browser, "return document.querySelector('#execution-status')?.dataset.status === 'completed'")
        expected = set(browser.execute_script(FOCUSABLE_JS))
        reached = tab_through(browser, len(expected) + 5)
        missing = expected - {r["key"] for r in reached}
        assert not missing, f"not reachable with Tab: {missing}"
        # The focused control is visibly marked.
        assert all(r["outline"] != "none" for r in reached if r["key"] != "main"), reached
        # Tabs follow the WAI-ARIA pattern: arrow keys move between them and select.
        from selenium.webdriver.common.keys import Keys

        browser.find_element("id", "tab-executions").send_keys(Keys.ARROW_RIGHT)
        wait_js(
            browser,
            "return document.activeElement.id === 'tab-queue' && !document.getElementById('panel-queue').hidden",
        )


@needs_chromium
def test_operator_cancels_an_execution(platform: Platform, browser: Any) -> None:
    # No agent has this capability: the execution waits until it is cancelled.
    _, execution_id = run_workflow(platform, [{"id": "stuck", "capability": f"nobody-{secrets.token_hex(3)}"}])
    operator = platform_token(platform, "operator", "console-operator")
    open_console(browser, platform, operator)
    assert browser.execute_script("return document.querySelector('#who .role').textContent") == "operator"
    click(browser, "#tab-executions")
    click(browser, f'#executions-data button[data-key="ex-{execution_id}"]')
    wait_js(
        browser, "return document.querySelector('#execution-detail [data-step=stuck]')?.dataset.state === 'pending'"
    )
    click(browser, "#cancel-execution")
    wait_js(browser, "return document.querySelector('#execution-status')?.dataset.status === 'cancelled'")
    assert not browser.find_elements("id", "cancel-execution")
    assert same_document(browser)
    status, _, execution = request(platform.gateway, "GET", f"/api/v1/executions/{execution_id}")
    assert status == 200 and execution["status"] == "cancelled"


@needs_chromium
def test_viewer_sees_no_execute_buttons(platform: Platform, browser: Any) -> None:
    workflow_id, execution_id = run_workflow(platform, [{"id": "wait", "capability": f"nobody-{secrets.token_hex(3)}"}])
    viewer = platform_token(platform, "viewer", "console-viewer")
    open_console(browser, platform, viewer)
    assert browser.execute_script("return document.querySelector('#who .role').textContent") == "viewer"
    click(browser, "#tab-workflows")
    click(browser, f'#workflows-data button[data-key="wf-{workflow_id}"]')
    wait_js(browser, "return document.querySelector('#workflow-detail svg.dag')")
    assert not browser.find_elements("id", "run-workflow")
    click(browser, "#tab-executions")
    click(browser, f'#executions-data button[data-key="ex-{execution_id}"]')
    wait_js(browser, "return document.querySelector('#execution-status')?.dataset.status === 'pending'")
    assert not browser.find_elements("id", "cancel-execution")
    screenshot(browser, "console-viewer")
    # The same pages as an admin do show both buttons (the test above is not vacuous).
    browser.execute_script("sessionStorage.clear()")
    open_console(browser, platform, platform.admin_token)
    click(browser, "#tab-workflows")
    click(browser, f'#workflows-data button[data-key="wf-{workflow_id}"]')
    # Run it from the page: the new execution opens, and Cancel ends it (no agent can take it).
    click(browser, "#run-workflow")
    started = wait_js(
        browser,
        "const s = document.querySelector('#execution-status');"
        "return !document.getElementById('panel-executions').hidden && s && s.dataset.status === 'pending'"
        " && document.querySelector('#execution-detail h3').textContent",
    )
    status, _, listed = request(platform.gateway, "GET", f"/api/v1/executions?workflow_id={workflow_id}")
    assert status == 200 and len(listed) == 2, listed
    new_id = next(e["id"] for e in listed if e["id"] != execution_id)
    assert new_id[:8] in started
    click(browser, "#cancel-execution")
    wait_js(browser, "return document.querySelector('#execution-status')?.dataset.status === 'cancelled'")
    request(platform.gateway, "POST", f"/api/v1/executions/{execution_id}/cancel", {})


@needs_chromium
def test_sign_in_with_an_api_key_and_out(platform: Platform, browser: Any) -> None:
    status, _, created = request(
        platform.gateway, "POST", "/api/v1/auth/api-keys", {"name": f"console-{secrets.token_hex(3)}", "role": "viewer"}
    )
    assert status == 201, created
    browser.get(f"http://{platform.gateway}/console")
    wait_js(browser, "return !document.getElementById('signin').hidden")
    assert browser.execute_script(A11Y_JS) == []
    # The checks are not vacuous: an unlabelled field and grey-on-white text are reported.
    browser.execute_script(
        "const f = document.createElement('form'); f.id = 'bad';"
        "const i = document.createElement('input'); i.id = 'nolabel';"
        "const p = document.createElement('p'); p.textContent = 'faint'; p.style.color = '#bbb';"
        "f.append(i, p, document.createElement('button'));"
        "document.getElementById('signin').append(f);"
    )
    problems = browser.execute_script(A11Y_JS)
    assert len(problems) == 3 and any("input#nolabel" in p for p in problems), problems
    browser.execute_script("document.getElementById('bad').remove()")
    browser.find_element("id", "key-input").send_keys("ossa_not-a-key")
    click(browser, "#key-form button")
    wait_js(browser, "return document.getElementById('signin-error').textContent.startsWith('Login failed')")
    field = browser.find_element("id", "key-input")
    field.clear()
    field.send_keys(created["key"])
    click(browser, "#key-form button")
    wait_js(browser, "return document.querySelector('#who .role')?.textContent === 'viewer'")
    token = browser.execute_script("return sessionStorage.getItem('ossa.console.token')")
    assert request(platform.gateway, "GET", "/api/v1/agents", token=token)[0] == 200
    click(browser, "#sign-out")
    wait_js(browser, "return !document.getElementById('signin').hidden")
    assert browser.execute_script("return sessionStorage.getItem('ossa.console.token')") is None
    # Signing out ended the session: its token is revoked (services trust "not revoked" ~1 s).
    deadline = time.monotonic() + 10
    while request(platform.gateway, "GET", "/api/v1/agents", token=token)[0] != 401:
        assert time.monotonic() < deadline, "the session's token still works after signing out"
        time.sleep(0.2)


@needs_chromium
def test_queue_tab_charts_the_orchestrators_series(platform: Platform, browser: Any, tmp_path: Path) -> None:
    """The orchestrator feeds ossa.tasks.* and ossa.queue.depth.priority.* to the monitoring
    service (orchestrator_svc/monitor_feed.py); the Queue tab charts them."""
    capability = f"console-chart-{secrets.token_hex(3)}"
    with agents(platform, tmp_path, (capability, "echo", 1)):
        _, execution_id = run_workflow(platform, [{"id": "one", "capability": capability}])
        wait_execution(platform, execution_id, "completed")
    deadline = time.monotonic() + 90
    series: dict[str, Any] = {}
    while time.monotonic() < deadline:
        for name, agg in (("ossa.tasks.finished", "sum"), ("ossa.tasks.duration_seconds", "p95")):
            status, _, buckets = request(platform.gateway, "GET", f"/api/v1/metrics?metric_name={name}&agg={agg}")
            assert status == 200, buckets
            series[name] = buckets
        status, _, depth = request(platform.gateway, "GET", "/api/v1/metrics?metric_name=ossa.queue.depth.priority.5")
        series["depth"] = depth
        if all(series.values()):
            break
        time.sleep(1)
    assert all(series.values()), series
    assert sum(float(b["value"]) for b in series["ossa.tasks.finished"]) >= 1
    open_console(browser, platform, platform.admin_token)
    click(browser, "#tab-queue")
    wait_js(
        browser,
        "const boxes = [...document.querySelectorAll('#queue-charts figure')];"
        "return boxes.length === 3 && boxes.every((b) => b.querySelector('path.line'))",
        timeout=60,
    )
    labels = browser.execute_script(
        "return [...document.querySelectorAll('#queue-charts svg')].map((s) => s.getAttribute('aria-label'))"
    )
    assert all("latest" in label for label in labels), labels
    screenshot(browser, "console-queue-charts")
