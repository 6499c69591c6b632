"""Agent roles in the operations console (/console), in a real headless Chromium against `ossa up`.

A person's approval gate: the execution is listed (and filtered) as waiting_approval, its gate is
drawn before the step, a viewer sees no buttons, a refused token's 403 is shown, and Approve (with
a reason) or Reject decides it from the page. A reviewed step: its rounds are drawn on the step's
node and listed with the tasks, and the budget and what was spent are shown.
Agents are real `ossa agent serve` processes; workflows start over REST.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.agents import agents, platform_token, run_workflow, start_execution, tasks, wait_execution
from tests.e2e.browser import A11Y_JS, chromium, chromium_missing, click, wait_js
from tests.e2e.platform import Platform, request
from tests.e2e.test_console import open_console, same_document, screenshot

pytestmark = pytest.mark.e2e
needs_chromium = pytest.mark.skipif(chromium_missing() is not None, reason=chromium_missing() or "")

STATUS_IS = "return document.querySelector('#execution-status')?.dataset.status === arguments[0]"
GATE_STATE = "return document.querySelector('#execution-detail svg [data-gate=deploy]')?.dataset.state === arguments[0]"


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium() as driver:
        yield driver


def open_execution(browser: Any, execution_id: str) -> None:
    click(browser, "#tab-executions")
    click(browser, f'#executions-data button[data-key="ex-{execution_id}"]')


def gate_id(platform: Platform, execution_id: str) -> str:
    wait_execution(platform, execution_id, "waiting_approval", seconds=30)
    (gate,) = [t for t in tasks(platform, execution_id) if t["name"] == "deploy~approval"]
    assert gate["status"] == "waiting_approval", gate
    return str(gate["id"])


def detail_text(browser: Any) -> str:
    return str(browser.execute_script("return document.getElementById('execution-detail').innerText"))


def type_reason(browser: Any, gate: str, reason: str) -> None:
    """Type into the gate's reason field with the keyboard (should the view be redrawn meanwhile,
    the field keeps the focus and what was typed)."""
    from selenium.webdriver.common.action_chains import ActionChains

    wait_js(
        browser,
        "const i = document.getElementById(arguments[0]); i?.focus(); return i && document.activeElement === i",
        f"reason-{gate}",
    )
    ActionChains(browser).send_keys(reason).perform()
    wait_js(
        browser,
        "return document.getElementById(arguments[0])?.value === arguments[1]",
        f"reason-{gate}",
        reason,
    )


def switch_identity(browser: Any, token: str) -> None:
    """Sign in with another token on the open page (#token=... is read on hashchange)."""
    browser.execute_script("window.location.hash = 'token=' + arguments[0]", token)
    wait_js(browser, "return !window.location.hash.includes('token=')")


@needs_chromium
def test_a_person_approves_and_rejects_a_gate_from_the_console(
    platform: Platform, browser: Any, tmp_path: Path
) -> None:
    cap = f"console-gate-{secrets.token_hex(3)}"
    steps = [
        {"id": "build", "capability": cap, "input": {"text": "built"}},
        {"id": "deploy", "capability": cap, "depends_on": ["build"], "approval": {"by": "human"}},
    ]
    operator = platform_token(platform, "operator", "console-approver")
    viewer = platform_token(platform, "viewer", "console-onlooker")
    with agents(platform, tmp_path, (cap, "echo", 1)):
        workflow_id, approved = run_workflow(platform, steps)
        rejected = start_execution(platform, workflow_id)
        approve_gate, reject_gate = gate_id(platform, approved), gate_id(platform, rejected)

        # A viewer sees the execution waiting for a person, and the gate, but no buttons.
        open_console(browser, platform, viewer)
        open_execution(browser, approved)
        wait_js(browser, STATUS_IS, "waiting_approval")
        wait_js(browser, "return document.querySelector('#approvals [data-approval=deploy]')")
        assert not browser.find_elements("css selector", "#approvals button")
        assert "Deciding needs the permission workflow:execute" in detail_text(browser)

        # The operator: the status filter offers waiting_approval and lists both executions.
        switch_identity(browser, operator)
        wait_js(browser, "return document.querySelector('#who .role')?.textContent === 'operator'")
        click(browser, "#tab-executions")
        browser.execute_script(
            "const s = document.getElementById('executions-status'); s.value = 'waiting_approval';"
            "s.dispatchEvent(new Event('change'));"
        )
        wait_js(
            browser,
            "const rows = [...document.querySelectorAll('#executions-data tbody tr')];"
            "return rows.length >= 2 && rows.every((r) => r.dataset.status === 'waiting_approval')"
            " && arguments[0].every((id) => rows.some((r) => r.dataset.executionId === id))",
            [approved, rejected],
        )
        badge = browser.execute_script(
            "const b = document.querySelector('#executions-data tbody .badge');"
            "const s = getComputedStyle(b); return [b.textContent, s.backgroundColor, s.borderTopStyle];"
        )
        assert badge[0] == "waiting_approval" and badge[1] != "rgb(236, 239, 243)" and badge[2] == "solid", badge
        open_execution(browser, approved)
        wait_js(browser, STATUS_IS, "waiting_approval")
        # The DAG: build done, the gate (a diamond before deploy) waiting, deploy not started.
        wait_js(browser, GATE_STATE, "waiting_approval")
        states = browser.execute_script(
            "return [...document.querySelectorAll('#execution-detail svg [data-step]')]"
            ".map((n) => [n.dataset.step, n.dataset.state])"
        )
        assert states == [["build", "completed"], ["deploy", "waiting"]], states
        label = browser.execute_script(
            "return document.querySelector('#execution-detail svg').getAttribute('aria-label')"
        )
        assert "approval by human waiting_approval" in label, label
        assert browser.execute_script(A11Y_JS) == []
        screenshot(browser, "console-approval-waiting")

        # The services decide, not the page: a token without workflow:execute gets the 403's message.
        browser.execute_script("sessionStorage.setItem('ossa.console.token', arguments[0])", viewer)
        click(browser, f'button[data-key="approve-{approve_gate}"]')
        refused = wait_js(
            browser, "const t = document.getElementById('execution-note').textContent; return t.length > 0 && t"
        )
        assert refused.startswith("Could not approve step deploy: permission denied") and "workflow:execute" in refused
        browser.execute_script("sessionStorage.setItem('ossa.console.token', arguments[0])", operator)

        # Approve with a reason: the gate records who and why, deploy runs, the execution completes.
        type_reason(browser, approve_gate, "change window open")
        click(browser, f'button[data-key="approve-{approve_gate}"]')
        wait_js(browser, STATUS_IS, "completed", timeout=60)
        wait_js(browser, GATE_STATE, "completed")
        assert not browser.find_elements("id", "approvals")
        assert browser.execute_script("return document.getElementById('execution-note').textContent") == ""
        assert "approved by console-approver: change window open" in detail_text(browser)
        assert same_document(browser)
        status, _, gate = request(platform.gateway, "GET", f"/api/v1/tasks/{approve_gate}")
        assert status == 200 and gate["output"] == {
            "approved": True,
            "by": "console-approver",
            "reason": "change window open",
        }, gate
        screenshot(browser, "console-approval-approved")

        # Reject the other one: it fails with the reason.
        open_execution(browser, rejected)
        wait_js(browser, STATUS_IS, "waiting_approval")
        type_reason(browser, reject_gate, "freeze")
        click(browser, f'button[data-key="reject-{reject_gate}"]')
        wait_js(browser, STATUS_IS, "failed", timeout=30)
        wait_js(browser, GATE_STATE, "rejected")
        assert "rejected by console-approver: freeze" in detail_text(browser)
        assert wait_execution(platform, rejected, "failed")["error"].endswith(": freeze")
        assert wait_execution(platform, approved, "completed")["status"] == "completed"


@needs_chromium
def test_a_reviewed_steps_rounds_and_the_budget_are_shown(platform: Platform, browser: Any, tmp_path: Path) -> None:
    cap = secrets.token_hex(3)
    steps = [
        {"id": "draft", "capability": f"write-{cap}", "input": {"topic": "agents"},
         "review": {"by": f"review-{cap}", "agent_type": "critic", "input": {"min_length": 40}}},
    ]  # fmt: skip
    with agents(
        platform, tmp_path,
        (f"write-{cap}", "ossa_sdk.roles:draft_writer", 1),
        (f"review-{cap}", "ossa_sdk.roles:length_critic", 1, "critic"),
    ):  # fmt: skip
        workflow_id, execution_id = run_workflow(platform, steps, budget={"max_tasks": 10, "max_cost": 2.5})
        open_console(browser, platform, platform.admin_token)
        open_execution(browser, execution_id)
        wait_js(browser, STATUS_IS, "completed", timeout=60)
    wait_js(
        browser,
        "const n = document.querySelector('#execution-detail svg [data-step=draft]');"
        "return n && n.dataset.state === 'completed' && n.dataset.rounds === '2'",
    )
    assert browser.execute_script("return document.querySelectorAll('#execution-detail svg [data-step]').length") == 1
    mark = browser.execute_script("return document.querySelector('#execution-detail svg .dag-mark').textContent")
    assert mark == "⟳ 2/3", mark
    label = browser.execute_script("return document.querySelector('#execution-detail svg').getAttribute('aria-label')")
    assert "draft completed in review round 2 of at most 3" in label, label
    # The rounds are tasks of their own, listed with their attempts and the critic's verdicts.
    rows = browser.execute_script(
        "return [...document.querySelectorAll('#execution-detail tbody tr')].map((r) => r.cells[0].textContent)"
    )
    assert rows == ["draft~1 #1", "draft~1.review #1", "draft~2 #1", "draft~2.review #1"], rows
    text = detail_text(browser)
    assert "verdict: reject" in text and "verdict: accept" in text
    assert "On agents: a longer draft" in text
    # The budget's bounds, and what was spent against them.
    assert browser.execute_script("return document.getElementById('execution-budget').textContent") == (
        "10 tasks · cost 2.5"
    )
    assert browser.execute_script("return document.getElementById('execution-spent').textContent") == (
        "4 of 10 tasks · cost 0 of 2.5"
    )
    assert browser.execute_script(A11Y_JS) == []
    screenshot(browser, "console-review-rounds")
    # The workflow's own DAG shows the review on the step, without states.
    click(browser, "#tab-workflows")
    click(browser, f'#workflows-data button[data-key="wf-{workflow_id}"]')
    wait_js(
        browser,
        "return document.querySelector('#workflow-detail svg .dag-mark')?.textContent === '⟳ ≤3'",
    )
