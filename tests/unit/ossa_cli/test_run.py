"""`ossa run`'s context arguments and the operator commands' shared parts (output, remote)."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import grpc
import pytest

from ossa.orchestrator.v1 import orchestrator_pb2 as pb
from ossa_cli import output
from ossa_cli.remote import DENIED, NOT_FOUND, USAGE, CommandError, Remote, refused
from ossa_cli.run import parse_context
from ossa_cli.workflow import load_file, version_key


def test_context_values_are_json_when_they_parse_and_strings_otherwise(tmp_path: Path) -> None:
    base = tmp_path / "c.json"
    base.write_text(json.dumps({"n": 1, "keep": True}))
    context = parse_context(["n=3", "who=ops", 'tags=["a"]', 'quoted="007"', "eq=a=b"], base)
    assert context == {"n": 3, "keep": True, "who": "ops", "tags": ["a"], "quoted": "007", "eq": "a=b"}


@pytest.mark.parametrize("entry", ["novalue", "=x", " =x"])
def test_bad_context_entries_are_named(entry: str) -> None:
    with pytest.raises(CommandError) as err:
        parse_context([entry], None)
    assert err.value.code == USAGE and repr(entry) in str(err.value)


def test_a_context_file_must_hold_an_object(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text("[1]")
    with pytest.raises(CommandError, match="expected a JSON object"):
        parse_context([], path)


def test_workflow_files_are_checked_before_any_call(tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_text("name: digest\nversion: 1.0.0\ndefinition:\n  steps: [{id: a, capability: c}]\n")
    assert load_file(path)["definition"] == {"steps": [{"id": "a", "capability": "c"}]}
    path.write_text("name: digest\nversion: 1.0.0\ndefinition: {}\nstepz: []\n")
    with pytest.raises(CommandError, match="unknown field 'stepz'"):
        load_file(path)
    path.write_text("- a list\n")
    with pytest.raises(CommandError, match="expected an object"):
        load_file(path)


def test_versions_sort_numerically() -> None:
    assert sorted(["1.10.0", "1.9.0", "2.0.0-rc.1", "1.9.10"], key=version_key) == [
        "1.9.0",
        "1.9.10",
        "1.10.0",
        "2.0.0-rc.1",
    ]


def test_tables_and_json() -> None:
    rows = [pb.Execution(id="e1", status=pb.ExecutionStatus.running), pb.Execution(id="e22", status="completed")]
    columns: list[output.Column] = [("id", output.field("id")), ("status", output.field("status"))]
    out = io.StringIO()
    output.emit(rows, columns, "table", out)
    assert out.getvalue().splitlines() == ["ID   STATUS", "e1   running", "e22  completed"]
    out = io.StringIO()
    output.emit(rows[0], columns, None, out)  # not a terminal: json
    assert json.loads(out.getvalue()) == {"id": "e1", "status": "running"}


class _Refusal(grpc.aio.AioRpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


def test_refusals_become_one_line_and_an_exit_code() -> None:
    err = refused(
        _Refusal(grpc.StatusCode.PERMISSION_DENIED, "permission denied: x requires workflow:execute"), "run w"
    )
    assert str(err) == "run w: 403 PERMISSION_DENIED: permission denied: x requires workflow:execute"
    assert err.code == DENIED
    assert refused(_Refusal(grpc.StatusCode.NOT_FOUND, "no execution"), "get").code == NOT_FOUND


def _args(**values: object) -> argparse.Namespace:
    return argparse.Namespace(**{"url": None, "token": None, "data_dir": None, "tls_ca": None, **values})


def test_remote_resolution_order(tmp_path: Path) -> None:
    (tmp_path / "admin.token").write_text("from-file\n")
    env = {"OSSA_DATA_DIR": str(tmp_path)}
    remote = Remote.from_args(_args(), env)
    assert (remote.target, remote.token, remote.use_tls) == ("127.0.0.1:3100", "from-file", False)
    remote = Remote.from_args(_args(), {**env, "OSSA_URL": "https://gw:443", "OSSA_TOKEN": "env"})
    assert (remote.target, remote.token, remote.use_tls) == ("gw:443", "env", True)
    remote = Remote.from_args(_args(url="h:1", token="flag"), {**env, "OSSA_URL": "x:2", "OSSA_TOKEN": "env"})
    assert (remote.target, remote.token) == ("h:1", "flag")
    with pytest.raises(CommandError) as err:
        Remote.from_args(_args(), {"OSSA_DATA_DIR": str(tmp_path / "empty")})
    assert err.value.code == DENIED and "no token" in str(err.value)
    with pytest.raises(CommandError, match="--url"):
        Remote.from_args(_args(url="nohost"), env)
