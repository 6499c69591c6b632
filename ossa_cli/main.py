"""The `ossa` command: the argument parser and the dispatch to one module per command.

    ossa up | agent serve | token create|revoke | reindex | backup | restore | healthcheck
    ossa workflow apply|list|get|publish|deprecate | run [--wait] | executions list|get|cancel|tasks
    ossa agents list|get|delete | health

Each command module adds its subcommand(s) to the parser and sets `command`, a function of the
parsed arguments that returns the exit code. A command may raise `ossa_cli.errors.UsageError`
(printed as `ossa: error: ...`, exit code 2); Ctrl-C exits with 130.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from ossa_cli.agent import add_agent_commands
from ossa_cli.agents import add_agents_commands
from ossa_cli.backup.command import add_backup_commands
from ossa_cli.errors import PROG, UsageError, error
from ossa_cli.executions import add_executions_commands
from ossa_cli.health import add_health_command
from ossa_cli.healthcheck import add_healthcheck_command
from ossa_cli.reindex import add_reindex_command
from ossa_cli.run import add_run_command
from ossa_cli.token import add_token_commands
from ossa_cli.up import add_up_command
from ossa_cli.workflow import add_workflow_commands

Command = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="OSSA Platform command line.")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    add_up_command(sub)
    add_agent_commands(sub)
    add_token_commands(sub)
    add_reindex_command(sub)
    add_backup_commands(sub)
    add_healthcheck_command(sub)
    add_workflow_commands(sub)
    add_run_command(sub)
    add_executions_commands(sub)
    add_agents_commands(sub)
    add_health_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command: Command = args.command
    try:
        return command(args)
    except UsageError as err:
        return error(str(err), 2)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
