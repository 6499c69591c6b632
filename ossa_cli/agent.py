"""`ossa agent serve`: run one agent in the foreground until SIGINT/SIGTERM.

    ossa agent serve --name NAME --capability CAP [--capability ...] --handler echo|sleep|fail|MODULE:FUNC
                     [--type worker] [--slots N] [--gateway 127.0.0.1:3100] [--version 1.0.0]

Exit codes: 0 stopped by a signal, 2 bad arguments (a handler that cannot be imported, an agent
the registry refuses).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping
from typing import Any

from ossa_cli import argtypes
from ossa_runtime.settings import Settings, SettingsError
from ossa_sdk import Agent, HandlerError, RegistrationError, resolve_handler
from ossa_sdk.agent import AGENT_TYPES
from ossa_sdk.handlers import BUILTIN_HANDLERS

PROG = "ossa"
# Addresses Envoy binds that a client cannot connect to.
WILDCARD_HOSTS = {"", "0.0.0.0", "::", "[::]"}


SLOTS = argtypes.whole_number(1, 1000, "a slot count")


def default_gateway(env: Mapping[str, str] | None = None) -> str:
    """The gateway from OSSA_GATEWAY_HOST/OSSA_GATEWAY_PORT (a wildcard host means this machine)."""
    settings = Settings.from_env(env)
    host = settings.gateway_host
    if host in WILDCARD_HOSTS:
        host = "127.0.0.1"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{settings.gateway_port}"


def add_agent_commands(sub: Any) -> None:
    """Add `ossa agent ...` to the `ossa` parser's subcommands."""
    agent = sub.add_parser("agent", help="run agents with the SDK", description="Run agents with the OSSA SDK.")
    commands = agent.add_subparsers(title="commands", metavar="COMMAND", required=True)
    serve = commands.add_parser(
        "serve",
        help="run one agent in the foreground until Ctrl-C",
        description="Register an agent, take tasks for its capabilities and run them with a handler. "
        "Ctrl-C or SIGTERM stops it gracefully (again: at once).",
    )
    serve.add_argument("--name", required=True, help="the agent's unique name (a restart reuses its id)")
    serve.add_argument("--type", default="worker", choices=AGENT_TYPES, help="the agent's role (default: worker)")
    serve.add_argument(
        "--capability",
        dest="capabilities",
        action="append",
        required=True,
        metavar="CAP",
        help="a capability to take tasks for (repeat for more)",
    )
    serve.add_argument(
        "--handler",
        required=True,
        metavar="|".join([*BUILTIN_HANDLERS, "MODULE:FUNC"]),
        help="a built-in handler or a function to import (from the current directory too)",
    )
    serve.add_argument(
        "--slots",
        type=argtypes.whole_number(1, 1000, "a slot count"),
        default=1,
        metavar="N",
        help="tasks run at once (default: 1)",
    )
    serve.add_argument(
        "--gateway",
        metavar="HOST:PORT",
        help="the platform's gRPC address (default: $OSSA_GATEWAY_HOST:$OSSA_GATEWAY_PORT or 127.0.0.1:3100)",
    )
    serve.add_argument("--version", default="1.0.0", help="the agent's semantic version (default: 1.0.0)")
    serve.add_argument(
        "--grace",
        type=argtypes.seconds,
        default=30.0,
        metavar="SECONDS",
        help="how long stopping waits for running tasks",
    )
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="default: $OSSA_LOG_LEVEL")
    serve.set_defaults(command=cmd_agent_serve)


def _error(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 2


def cmd_agent_serve(args: argparse.Namespace) -> int:
    if os.getcwd() not in sys.path:  # `--handler mymodule:fn` finds mymodule.py here, like `python -m`
        sys.path.insert(0, os.getcwd())
    try:
        handler = resolve_handler(args.handler)
        settings = Settings.from_env()
        gateway = args.gateway or default_gateway()
        agent = Agent(
            args.name,
            type=args.type,
            capabilities=args.capabilities,
            slots=args.slots,
            version=args.version,
            handler=handler,
            gateway=gateway,
            grace_seconds=args.grace,
        )
    except (HandlerError, SettingsError, ValueError) as err:
        return _error(str(err))
    logging.basicConfig(
        level=(args.log_level or settings.log_level).upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    print(f"agent {args.name}: serving {', '.join(args.capabilities)} through {gateway}", file=sys.stderr, flush=True)
    try:
        agent.run()
    except RegistrationError as err:
        return _error(str(err))
    return 0
