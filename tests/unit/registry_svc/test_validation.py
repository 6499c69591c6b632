"""registry_svc.validation: every bad field is named; good input is normalised."""

from __future__ import annotations

import pytest

from ossa.registry.v1 import registry_pb2 as pb
from ossa_runtime.errors import InvalidArgument
from registry_svc import validation


def fields_of(err: pytest.ExceptionInfo[InvalidArgument]) -> list[str]:
    return [v.field for v in err.value.violations]


def good(**changes: object) -> pb.CreateAgentRequest:
    request = pb.CreateAgentRequest(name="summarizer-1", type=pb.AgentType.worker, version="1.2.3")
    for key, value in changes.items():
        if key == "capabilities":
            request.capabilities.extend(value)  # type: ignore[call-overload]
        else:
            setattr(request, key, value)
    return request


def test_valid_agent_is_parsed() -> None:
    request = good(capabilities=["summarize", "translate"])
    request.config.update({"model": "small", "temperature": 0.2})
    new = validation.parse_new_agent(request)
    assert new.type == "worker"
    assert new.capabilities == ["summarize", "translate"]
    assert new.config == {"model": "small", "temperature": 0.2}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 256}, "name"),
        ({"name": " padded"}, "name"),
        ({"name": "bad\nname"}, "name"),
        ({"type": 0}, "type"),
        ({"type": 99}, "type"),
        ({"version": ""}, "version"),
        ({"version": "1.0"}, "version"),
        ({"version": "v1.0.0"}, "version"),
        ({"version": "1.0.0-" + "a" * 20}, "version"),
        ({"capabilities": ["ok", ""]}, "capabilities[1]"),
        ({"capabilities": ["dup", "dup"]}, "capabilities[1]"),
    ],
)
def test_bad_field_is_named(changes: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        validation.parse_new_agent(good(**changes))
    assert fields_of(err) == [field]
    assert field in err.value.message


def test_every_bad_field_is_reported_at_once() -> None:
    with pytest.raises(InvalidArgument) as err:
        validation.parse_new_agent(pb.CreateAgentRequest())
    assert fields_of(err) == ["name", "type", "version"]


def test_oversized_config_is_rejected() -> None:
    request = good()
    request.config.update({"blob": "x" * (validation.MAX_DOCUMENT_BYTES + 1)})
    with pytest.raises(InvalidArgument) as err:
        validation.parse_new_agent(request)
    assert fields_of(err) == ["config"]


@pytest.mark.parametrize("version", ["0.0.1", "1.2.3-alpha.1", "10.20.30+build.5", "0.1.9-alpha.1"])
def test_semver_accepted(version: str) -> None:
    assert validation.parse_new_agent(good(version=version)).version == version


def test_agent_id_must_be_uuid() -> None:
    assert validation.parse_agent_id("E8AF59F7-4606-4F6C-A100-A164200EB8DA") == "e8af59f7-4606-4f6c-a100-a164200eb8da"
    for raw in ("", "nope", "123", "e8af59f7-4606-4f6c-a100"):
        with pytest.raises(InvalidArgument) as err:
            validation.parse_agent_id(raw)
        assert fields_of(err) == ["agent_id"]


def test_filter_defaults_and_limits() -> None:
    f = validation.parse_filter(pb.ListAgentsRequest(type=pb.AgentType.critic))
    assert (f.type, f.status, f.limit, f.offset) == ("critic", None, validation.DEFAULT_LIMIT, 0)
    for bad, field in (
        (pb.ListAgentsRequest(limit=1001), "limit"),
        (pb.ListAgentsRequest(limit=-1), "limit"),
        (pb.ListAgentsRequest(offset=-5), "offset"),
        (pb.ListAgentsRequest(status=42), "status"),  # type: ignore[arg-type]
    ):
        with pytest.raises(InvalidArgument) as err:
            validation.parse_filter(bad)
        assert fields_of(err) == [field]


def test_beat_status_and_load() -> None:
    assert validation.parse_beat_status(pb.AgentStatus.status_unspecified) == "idle"
    assert validation.parse_beat_status(pb.AgentStatus.busy) == "busy"
    with pytest.raises(InvalidArgument):
        validation.parse_beat_status(pb.AgentStatus.offline)
    assert validation.check_load(pb.HeartbeatRequest()) is None
    assert validation.check_load(pb.HeartbeatRequest(load=0.5)) == 0.5
    for load in (-0.1, 1.5, float("nan")):
        with pytest.raises(InvalidArgument):
            validation.check_load(pb.HeartbeatRequest(load=load))
