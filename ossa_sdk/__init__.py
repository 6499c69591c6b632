"""OSSA agent SDK: write an agent as a function of its task input.

    from ossa_sdk import Agent

    agent = Agent(name="summarizer-1", capabilities=["summarize"], slots=4, gateway="127.0.0.1:3100")

    @agent.handler
    async def summarize(task_input: dict) -> dict:
        return {"summary": task_input["params"]["text"][:100]}

    agent.run()

Callers start workflows and wait for them without polling (ossa_sdk/client.py):

    async with Client(gateway="127.0.0.1:3100") as client:
        execution = await client.run_and_wait(workflow_name="summarise", workflow_version="1.0.0")

The agent registers with the registry (reusing its id after a restart), heartbeats, holds the
orchestrator's Work stream, runs up to `slots` handlers at once, renews their leases, and reports
each output as a completion, or an exception as a failure (retryable unless PermanentError): on
the Work stream, coalesced, when the orchestrator batches it; else with RenewLease, CompleteTask
and FailTask.
"""

from ossa_sdk.agent import DEFAULT_GATEWAY, Agent
from ossa_sdk.backoff import Backoff
from ossa_sdk.client import Client, run_and_wait
from ossa_sdk.errors import HandlerError, OutputError, PermanentError, RegistrationError
from ossa_sdk.handlers import BUILTIN_HANDLERS, Handler, TaskInput, TaskOutput, TaskResult, resolve_handler, to_output

__all__ = [
    "BUILTIN_HANDLERS",
    "DEFAULT_GATEWAY",
    "Agent",
    "Backoff",
    "Client",
    "Handler",
    "HandlerError",
    "OutputError",
    "PermanentError",
    "RegistrationError",
    "TaskInput",
    "TaskOutput",
    "TaskResult",
    "resolve_handler",
    "run_and_wait",
    "to_output",
]
