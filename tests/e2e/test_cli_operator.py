"""The operator commands against `ossa up` with real agents: `ossa workflow apply`, `ossa run --wait`,
`ossa executions`, `ossa agents`, `ossa health`, their output formats, errors and exit codes."""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.agents import agents, platform_token
from tests.e2e.platform import Platform, ossa_executable

pytestmark = pytest.mark.e2e


def ossa(
    platform: Platform, *args: str, token: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run `ossa ARGS` against the platform's gateway (its admin token unless `token` is given)."""
    env = {**platform.env, "OSSA_URL": platform.gateway, "OSSA_TOKEN": platform.admin_token if token is None else token}
    return subprocess.run(
        [ossa_executable(), *args], env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


def write_workflow(tmp_path: Path, steps: list[dict[str, Any]], *, name: str = "", suffix: str = ".yaml") -> Path:
    doc = {"name": name or f"cli-{secrets.token_hex(4)}", "version": "1.0.0", "definition": {"steps": steps}}
    path = tmp_path / f"{doc['name']}{suffix}"
    path.write_text(yaml.safe_dump(doc) if suffix == ".yaml" else json.dumps(doc))
    return path


def applied(platform: Platform, path: Path) -> dict[str, Any]:
    out = ossa(platform, "workflow", "apply", "-f", str(path), "--publish", "-o", "json")
    assert out.returncode == 0, out.stderr
    workflow: dict[str, Any] = json.loads(out.stdout)
    assert workflow["status"] == "published"
    return workflow


def test_apply_is_idempotent_and_refuses_a_changed_version(platform: Platform, tmp_path: Path) -> None:
    path = write_workflow(tmp_path, [{"id": "only", "capability": "cli.none"}], suffix=".json")
    first = ossa(platform, "workflow", "apply", "-f", str(path), "-o", "json")
    assert first.returncode == 0 and "as a draft" in first.stderr, first.stderr
    created = json.loads(first.stdout)
    again = ossa(platform, "workflow", "apply", "-f", str(path), "-o", "json")
    assert again.returncode == 0 and "unchanged" in again.stderr and json.loads(again.stdout)["id"] == created["id"]
    doc = json.loads(path.read_text())
    doc["definition"]["steps"][0]["capability"] = "cli.other"
    path.write_text(json.dumps(doc))
    changed = ossa(platform, "workflow", "apply", "-f", str(path))
    assert changed.returncode == 5 and "409 ALREADY_EXISTS" in changed.stderr and "new version" in changed.stderr
    assert changed.stderr.count("\n") == 1  # one line
    listed = ossa(platform, "workflow", "list", "--name", created["name"], "-o", "json")
    assert listed.returncode == 0 and [w["id"] for w in json.loads(listed.stdout)] == [created["id"]]
    table = ossa(platform, "workflow", "get", created["name"], "-o", "table")
    assert table.returncode == 0 and table.stdout.splitlines()[0].split()[:3] == ["ID", "NAME", "VERSION"]
    assert created["id"] in table.stdout
    published = ossa(platform, "workflow", "publish", f"{created['name']}@1.0.0", "-o", "json")
    assert published.returncode == 0 and json.loads(published.stdout)["status"] == "published"
    deprecated = ossa(platform, "workflow", "deprecate", created["id"], "-o", "json")
    assert deprecated.returncode == 0 and json.loads(deprecated.stdout)["status"] == "deprecated"


def test_bad_workflow_files_name_the_problem(platform: Platform, tmp_path: Path) -> None:
    missing = ossa(platform, "workflow", "apply", "-f", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2 and "nope.yaml" in missing.stderr
    no_version = tmp_path / "v.yaml"
    no_version.write_text("name: x\ndefinition: {steps: []}\n")
    out = ossa(platform, "workflow", "apply", "-f", str(no_version))
    assert out.returncode == 2 and "version: is required" in out.stderr
    bad_step = write_workflow(tmp_path, [{"id": "a"}])  # no capability: the orchestrator refuses it
    out = ossa(platform, "workflow", "apply", "-f", str(bad_step))
    assert out.returncode == 2 and "400 INVALID_ARGUMENT" in out.stderr and "capability" in out.stderr


def test_run_wait_shows_progress_and_prints_the_results(platform: Platform, tmp_path: Path) -> None:
    steps = [
        {"id": "extract", "capability": "cli.echo", "input": {"doc": "d"}},
        {"id": "summarize", "capability": "cli.echo", "depends_on": ["extract"]},
    ]
    workflow = applied(platform, write_workflow(tmp_path, steps))
    with agents(platform, tmp_path, ("cli.echo", "echo", 2)) as started:
        out = ossa(platform, "run", workflow["name"], "--context", "n=3", "--context", "who=ops", "--wait", timeout=90)
    assert out.returncode == 0, out.stderr
    results = json.loads(out.stdout)
    assert results["extract"] == {"params": {"doc": "d"}, "context": {"n": 3, "who": "ops"}, "upstream": {}}
    assert results["summarize"]["upstream"] == {"extract": results["extract"]}
    lines = out.stderr.splitlines()
    assert lines[0].startswith("execution ")
    for step in ("extract", "summarize"):
        assert f"{step}: queued" in lines or any(line.startswith(f"{step}: leased to") for line in lines)
        leased = [line for line in lines if line.startswith(f"{step}: leased to")]
        assert leased and started[0].name in leased[0] and leased[0].endswith("attempt 1"), lines
        assert f"{step}: done" in lines
    assert "\r" not in out.stderr  # not a terminal: plain lines, no bar


def test_a_failing_run_exits_1_with_its_error(platform: Platform, tmp_path: Path) -> None:
    steps = [{"id": "boom", "capability": "cli.fail", "input": {"message": "it broke"}, "max_retries": 0}]
    workflow = applied(platform, write_workflow(tmp_path, steps))
    with agents(platform, tmp_path, ("cli.fail", "fail", 1)):
        out = ossa(platform, "run", f"{workflow['name']}@1.0.0", "--wait", timeout=90)
    assert out.returncode == 1, out.stderr
    assert "boom: failed: " in out.stderr and "it broke" in out.stderr
    assert out.stderr.splitlines()[-1].startswith("ossa: error: execution ") and " failed" in out.stderr
    assert out.stdout == ""


def test_cancel_ends_a_waiting_run(platform: Platform, tmp_path: Path) -> None:
    workflow = applied(platform, write_workflow(tmp_path, [{"id": "never", "capability": "cli.nobody"}]))
    env_token = platform.admin_token
    waiting = subprocess.Popen(
        [ossa_executable(), "run", workflow["id"], "--wait", "--idempotency-key", "cancel-me"],
        env={**platform.env, "OSSA_URL": platform.gateway, "OSSA_TOKEN": env_token},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        execution_id = ""
        while not execution_id and time.monotonic() < deadline:
            listed = ossa(platform, "executions", "list", "--workflow", workflow["id"], "-o", "json")
            ids = [e["id"] for e in json.loads(listed.stdout)] if listed.returncode == 0 else []
            execution_id = ids[0] if ids else ""
            time.sleep(0.2)
        assert execution_id
        tasks = ossa(platform, "executions", "tasks", execution_id, "-o", "json")
        assert tasks.returncode == 0 and [t["name"] for t in json.loads(tasks.stdout)] == ["never"]
        cancelled = ossa(platform, "executions", "cancel", execution_id, "-o", "json")
        assert cancelled.returncode == 0 and json.loads(cancelled.stdout)["status"] == "cancelled"
        stdout, stderr = waiting.communicate(timeout=30)
    finally:
        waiting.kill()
    assert waiting.returncode == 1, stderr
    assert f"execution {execution_id} cancelled" in stderr and stdout == ""
    shown = ossa(platform, "executions", "get", execution_id, "-o", "json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["status"] == "cancelled"


def test_json_output_parses_and_errors_are_one_line_with_exit_codes(platform: Platform, tmp_path: Path) -> None:
    with agents(platform, tmp_path, ("cli.listed", "echo", 1)) as started:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            listed = ossa(platform, "agents", "list", "--name", started[0].name, "-o", "json")
            if listed.returncode == 0 and json.loads(listed.stdout):
                break
            time.sleep(0.2)
        agent = json.loads(listed.stdout)[0]
        got = ossa(platform, "agents", "get", agent["id"], "-o", "json")
        assert got.returncode == 0 and json.loads(got.stdout)["capabilities"] == ["cli.listed"]
    health = ossa(platform, "health", "-o", "json")
    assert health.returncode == 0 and json.loads(health.stdout)["status"] == "healthy"
    assert isinstance(json.loads(ossa(platform, "executions", "list", "--limit", "5").stdout), list)  # json off a TTY
    missing = ossa(platform, "executions", "get", "00000000-0000-4000-8000-000000000000")
    assert missing.returncode == 4 and "404 NOT_FOUND" in missing.stderr and missing.stderr.count("\n") == 1
    bad = ossa(platform, "executions", "get", "not-a-uuid")
    assert bad.returncode == 2 and "400 INVALID_ARGUMENT" in bad.stderr and "execution_id" in bad.stderr
    nobody = ossa(platform, "agents", "list", token="not.a.token")
    assert nobody.returncode == 3 and "401 UNAUTHENTICATED" in nobody.stderr
    unreachable = ossa(platform, "health", "--url", "127.0.0.1:1")
    assert unreachable.returncode == 6 and "unreachable" in unreachable.stderr


def test_a_viewer_token_is_refused_for_run_with_the_missing_permission(platform: Platform, tmp_path: Path) -> None:
    workflow = applied(platform, write_workflow(tmp_path, [{"id": "only", "capability": "cli.none"}]))
    viewer = platform_token(platform, "viewer", "cli-viewer")
    out = ossa(platform, "run", workflow["id"], token=viewer)
    assert out.returncode == 3, out.stderr
    assert out.stderr.count("\n") == 1 and "403 PERMISSION_DENIED" in out.stderr and "workflow:execute" in out.stderr
    listed = ossa(platform, "workflow", "list", "--name", workflow["name"], "-o", "json", token=viewer)
    assert listed.returncode == 0  # viewers may read
