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
from ossa_cli.errors import error
from ossa_runtime import tracing
from ossa_runtime.settings import Settings, SettingsError
from ossa_sdk import Agent, HandlerError, RegistrationError, resolve_handler
from ossa_sdk.agent import AGENT_TYPES
from ossa_sdk.handlers import BUILTIN_HANDLERS

# Addresses Envoy binds that a client cannot connect to.
WILDCARD_HOSTS = {"", "0.0.0.0", "::", "[::]"}
# A client certificate for a gateway that requires one (OSSA_TLS_CLIENT_AUTH).
CLIENT_CERT_ENV = "OSSA_TLS_CLIENT_CERT_FILE"
CLIENT_KEY_ENV = "OSSA_TLS_CLIENT_KEY_FILE"


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
    tls = serve.add_argument_group("TLS", "dial the gateway over TLS (on when any of these is given)")
    tls.add_argument("--tls", action="store_true", help="use TLS, verifying the gateway against the system's roots")
    tls.add_argument("--tls-ca", metavar="FILE", help="CA to verify the gateway with (default: $OSSA_TLS_CA_FILE)")
    tls.add_argument("--tls-cert", metavar="FILE", help=f"client certificate (default: ${CLIENT_CERT_ENV})")
    tls.add_argument("--tls-key", metavar="FILE", help=f"client certificate's key (default: ${CLIENT_KEY_ENV})")
    serve.add_argument("--version", default="1.0.0", help="the agent's semantic version (default: 1.0.0)")
    serve.add_argument(
        "--grace",
        type=argtypes.seconds,
        default=30.0,
        metavar="SECONDS",
        help="how long stopping waits for running tasks",
    )
    serve.add_argument(
        "--token",
        default=None,
        help="bearer JWT sent on every call (default: $OSSA_TOKEN, which `ps` does not show; "
        "`ossa token create --type agent --sub NAME --role operator`)",
    )
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="default: $OSSA_LOG_LEVEL")
    serve.set_defaults(command=cmd_agent_serve)


def tls_options(args: argparse.Namespace, settings: Settings, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Agent(...) TLS keywords from the flags, else OSSA_TLS_CA_FILE and the client-certificate
    variables; TLS is also on when this shell configures the gateway's (OSSA_TLS_CERT_FILE)."""
    source = os.environ if env is None else env
    ca = getattr(args, "tls_ca", None) or settings.tls_ca_file or None
    cert = getattr(args, "tls_cert", None) or source.get(CLIENT_CERT_ENV) or None
    key = getattr(args, "tls_key", None) or source.get(CLIENT_KEY_ENV) or None
    on = bool(getattr(args, "tls", False) or settings.tls_cert_file or ca or cert or key)
    return {"tls": on, "tls_ca_file": ca, "tls_cert_file": cert, "tls_key_file": key}


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
            token=args.token,  # None: $OSSA_TOKEN
            **tls_options(args, settings),
        )
    except (HandlerError, SettingsError, ValueError) as err:
        return error(str(err), 2)
    logging.basicConfig(
        level=(args.log_level or settings.log_level).upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    print(f"agent {args.name}: serving {', '.join(args.capabilities)} through {gateway}", file=sys.stderr, flush=True)
    tracing.configure(settings, f"ossa-agent-{args.name}")  # task.run spans, exported like the services'
    try:
        agent.run()
    except RegistrationError as err:
        return error(str(err), 2)
    finally:
        tracing.shutdown()
    return 0
