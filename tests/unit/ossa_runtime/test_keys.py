"""ossa_runtime.keys: the spec's Redis key layout, spelled in one place."""

from __future__ import annotations

from ossa_runtime import keys


def test_keys_match_the_spec() -> None:
    assert keys.AGENTS_REGISTRY == "ossa:agents:registry"
    assert keys.agent_info("a1") == "ossa:agent:a1:info"
    assert keys.agent_status("a1") == "ossa:agent:a1:status"
    assert keys.agent_heartbeat("a1") == "ossa:agent:a1:heartbeat"
    assert keys.TASKS_PENDING == "ossa:tasks:pending"
    assert keys.TASKS_PRIORITY == "ossa:tasks:priority"
    assert keys.task_data("t") == "ossa:task:t:data"
    assert keys.task_lock("t") == "ossa:task:t:lock"
    assert keys.workflow_state("w") == "ossa:workflow:w:state"
    assert keys.workflow_steps("w") == "ossa:workflow:w:steps"
    assert keys.workflow_variables("w") == "ossa:workflow:w:variables"
    assert keys.METRICS_BUFFER == "ossa:metrics:buffer"
    assert keys.metrics_aggregates("cpu", "1m") == "ossa:metrics:aggregates:cpu:1m"
    assert keys.session("s") == "ossa:session:s"
    assert keys.user_sessions("u") == "ossa:user:u:sessions"
    assert keys.ratelimit("c", "e") == "ossa:ratelimit:c:e"
