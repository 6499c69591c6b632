"""Repository checks that CI runs with the tests: generated code is fresh, lint and types are clean."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_generated_code_matches_protos() -> None:
    """`python scripts/gen_protos.py` (buf lint + buf build + grpc_tools + OpenAPI) gives no diff."""
    out = run(sys.executable, "scripts/gen_protos.py", "--check")
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize(
    "cmd",
    [
        ("ruff", "check", "."),
        ("ruff", "format", "--check", "."),
        (
            "mypy",
            "ossa_runtime",
            "registry_svc",
            "gateway_http",
            "auth_svc",
            "ossa_cli",
            "ossa_sdk",
            "orchestrator_svc",
            "monitoring_svc",
            "search_svc",
            "ossa_search",
            "scripts",
            "benchmarks",
        ),
    ],
    ids=["ruff", "ruff-format", "mypy"],
)
def test_lint_and_types(cmd: tuple[str, ...]) -> None:
    out = run(str(BIN / cmd[0]), *cmd[1:])
    assert out.returncode == 0, out.stdout + out.stderr
