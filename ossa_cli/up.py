"""`ossa up`: run the whole platform on one machine, in the foreground.

    ossa up [--data-dir DIR] [--registry-workers N] [--gateway-port PORT] ...

`ossa up` restarts a child that exits by itself, with backoff (ossa_cli/restart.py, the
OSSA_RESTART_* settings), and gives up only when one child keeps crashing.

Exit codes: 0 success / clean stop, 1 the platform failed (start-up, or a child crashed too often),
2 bad settings or a busy port (nothing was started).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ossa_cli import argtypes, credentials
from ossa_cli.errors import UsageError
from ossa_cli.lock import DataDirLock
from ossa_cli.plan import HEALTH_PATH, Plan, build_plan, port_fields
from ossa_cli.ports import PortError, check_ports, free_ports
from ossa_cli.restart import RestartPolicy
from ossa_cli.supervisor import Supervisor
from ossa_runtime import tls
from ossa_runtime.redact import redact_url
from ossa_runtime.settings import PREFIX, Settings, SettingsError


def add_up_command(sub: Any) -> None:
    """Add `ossa up` to the `ossa` parser's subcommands."""
    defaults = Settings()
    up = sub.add_parser(
        "up",
        help="run the whole platform in the foreground (embedded PostgreSQL and Redis unless configured)",
        description="Start PostgreSQL, Redis, the services and the Envoy gateway, restart any that crashes "
        "(OSSA_RESTART_* settings), and stop them all on Ctrl-C.",
    )
    up.add_argument(
        "--data-dir",
        type=Path,
        help=f"where data, logs and generated config live (default: ${PREFIX}DATA_DIR or {defaults.data_dir})",
    )
    up.add_argument(
        "--registry-workers",
        type=argtypes.positive,
        metavar="N",
        help=f"registry processes sharing its port (default: ${PREFIX}REGISTRY_WORKERS or 1)",
    )
    up.add_argument(
        "--orchestrators",
        type=argtypes.positive,
        metavar="N",
        dest="orchestrator_workers",
        help=f"orchestrator processes sharing its port (default: ${PREFIX}ORCHESTRATOR_WORKERS or one per two cores)",
    )
    up.add_argument(
        "--startup-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="give up starting (or waiting for a restarted part) after this long",
    )
    up.add_argument(
        "--canary",
        action="store_true",
        help="run the gateway's Istio canary locally: one gateway per subset, Envoy routes from istio/",
    )
    up.add_argument("--istio-dir", type=Path, metavar="DIR", help="where the Istio resources are (default: istio/)")
    ports = up.add_argument_group("ports", "0 picks a free port; each also reads OSSA_<NAME>_PORT")
    for name in port_fields():
        ports.add_argument(
            "--" + name.replace("_", "-"),
            type=argtypes.port,
            metavar="PORT",
            dest=name,
            help=f"default: {getattr(defaults, name)}",
        )
    up.set_defaults(command=cmd_up)


# Settings --------------------------------------------------------------------------------------


def settings_from_args(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> Settings:
    """Settings from OSSA_* variables, then the command-line flags that were given."""
    overrides: dict[str, Any] = {}
    if getattr(args, "data_dir", None) is not None:
        overrides["data_dir"] = Path(args.data_dir).expanduser()
    for workers in ("registry_workers", "orchestrator_workers"):
        if getattr(args, workers, None) is not None:
            overrides[workers] = getattr(args, workers)
    for name in port_fields():
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    return Settings.from_env(env, **overrides)


def with_free_ports(settings: Settings) -> Settings:
    """Replace every port set to 0 by a port that is free now."""
    zero = [name for name in port_fields() if getattr(settings, name) == 0]
    if not zero:
        return settings
    return settings.replace(**dict(zip(zero, free_ports("127.0.0.1", len(zero)), strict=True)))


# ossa up ---------------------------------------------------------------------------------------


def prepare_up(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> tuple[Plan, DataDirLock]:
    """Everything `ossa up` checks before starting anything; raises UsageError.

    Returns the plan and the data directory's lock, held until released.
    """
    try:
        settings = with_free_ports(settings_from_args(args, env))
        tls.check_files(settings)
    except SettingsError as err:
        raise UsageError(str(err)) from None
    plan = build_plan(settings)
    lock = DataDirLock(settings.data_dir)
    try:
        if settings.data_dir.is_dir():  # a running platform here explains busy ports better
            lock.acquire()
        check_ports(plan.claims)
        plan.logs_dir.mkdir(parents=True, exist_ok=True)
        if not lock.held:
            lock.acquire()
    except PortError as err:
        lock.release()
        raise UsageError(str(err)) from None
    except OSError as err:
        lock.release()
        raise UsageError(f"cannot use data directory {settings.data_dir}: {err.strerror or err}") from None
    except BaseException:
        lock.release()
        raise
    try:  # under the lock: two `ossa up`s never race for the secret
        plan.settings = credentials.jwt_secret(plan.settings)
        credentials.write_admin_token(plan.settings)
    except SettingsError as err:
        lock.release()
        raise UsageError(str(err)) from None
    return plan, lock


def cmd_up(args: argparse.Namespace) -> int:
    plan, lock = prepare_up(args)
    try:
        if getattr(args, "canary", False):
            _add_canary(plan, args.istio_dir)
        print(f"starting the OSSA platform (data directory: {plan.settings.data_dir})", file=sys.stderr, flush=True)
        policy = RestartPolicy.from_settings(plan.settings)
        supervisor = Supervisor(plan.stages, startup_timeout=args.startup_timeout, policy=policy)
        return asyncio.run(supervisor.run(lambda sup: print(summary(plan, sup), flush=True)))
    finally:
        lock.release()


def _add_canary(plan: Plan, istio_dir: Path | None) -> None:
    from gateway_http.envoy_config.canary import CanaryError
    from ossa_cli.canary import add_canary

    try:
        add_canary(plan, istio_dir)
    except CanaryError as err:
        raise UsageError(f"--canary: {err}") from None


def summary(plan: Plan, supervisor: Supervisor) -> str:
    rows = [("COMPONENT", "ADDRESS", "PID", "LOG")]
    rows += [(c.name, c.component.address, str(c.pid), str(c.component.log_path)) for c in supervisor.running]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    table = "\n".join(
        "  " + "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3] for row in rows
    )
    base = plan.gateway_url
    token_path = credentials.admin_token_path(plan.settings)
    bearer = f' -H "Authorization: Bearer $(cat {token_path})"' if token_path else ""
    lines = [
        "",
        "OSSA platform is up.",
        "",
        table,
        "",
        f"  data directory  {plan.settings.data_dir}",
        f"  Envoy admin     http://127.0.0.1:{plan.settings.envoy_admin_port}",
        f"  PostgreSQL      {redact_url(plan.database_url())}"
        + ("" if plan.postgres is None else f"  (password in {plan.postgres.password_path})"),
        f"  Redis           {redact_url(plan.redis_url())}",
        f"  admin token     {token_path or 'none (authentication is off)'}",
        "",
        "Try:",
        f"  curl -s {base}{HEALTH_PATH}",
        f"  curl -s {base}/api/v1/agents{bearer}",
        f"  curl -s -X POST {base}/api/v1/agents{bearer} -H 'content-type: application/json' \\",
        """      -d '{"name": "worker-1", "type": "worker", "version": "1.0.0", "capabilities": ["summarize"]}'""",
        f"  curl -s {base}/api/v1/openapi.json",
        "",
        "Press Ctrl-C to stop.",
    ]
    return "\n".join(lines)
