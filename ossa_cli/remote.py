"""How the operator commands reach the platform: the gateway address, the token, TLS, and what a
refused call prints.

Every operator command (`ossa workflow`, `run`, `executions`, `agents`, `health`) talks gRPC to the
gateway (Envoy on :3100 routes gRPC to the services), through the generated stubs:

- the gateway: `--url`, else `$OSSA_URL`, else `$OSSA_GATEWAY_HOST:$OSSA_GATEWAY_PORT` (127.0.0.1:3100);
  `--url https://host:port` (or a configured CA / certificate) dials TLS;
- the token: `--token`, else `$OSSA_TOKEN`, else `<data-dir>/admin.token` (what `ossa up` writes).

A refused call becomes one line naming the problem and an exit code (`EXIT_CODES`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from ossa_cli import credentials
from ossa_cli.agent import default_gateway
from ossa_cli.errors import PROG
from ossa_runtime import tls
from ossa_runtime.auth.client import bearer_interceptors
from ossa_runtime.settings import PREFIX, Settings, SettingsError

URL_ENV = f"{PREFIX}URL"
TOKEN_ENV = f"{PREFIX}TOKEN"
CALL_TIMEOUT_SECONDS = 30.0

# Exit codes of the operator commands (docs/cli.md lists them too).
OK, FAILED, USAGE, DENIED, NOT_FOUND, CONFLICT, UNREACHABLE = 0, 1, 2, 3, 4, 5, 6
EXIT_CODES = {
    OK: "success (for `run --wait`: the execution completed)",
    FAILED: "the execution failed or was cancelled (`run --wait`), or the platform answered an error",
    USAGE: "bad arguments or input (the platform's INVALID_ARGUMENT / HTTP 400 too)",
    DENIED: "no valid token (401) or the token lacks the permission (403)",
    NOT_FOUND: "no such workflow, execution or agent (404)",
    CONFLICT: "it exists already with other content, or the state forbids it (409)",
    UNREACHABLE: "the gateway could not be reached or did not answer in time",
}
_EXIT_BY_CODE = {
    grpc.StatusCode.INVALID_ARGUMENT: USAGE,
    grpc.StatusCode.OUT_OF_RANGE: USAGE,
    grpc.StatusCode.UNAUTHENTICATED: DENIED,
    grpc.StatusCode.PERMISSION_DENIED: DENIED,
    grpc.StatusCode.NOT_FOUND: NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS: CONFLICT,
    grpc.StatusCode.FAILED_PRECONDITION: CONFLICT,
    grpc.StatusCode.UNAVAILABLE: UNREACHABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: UNREACHABLE,
}
_HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


class CommandError(Exception):
    """One line for the user and the command's exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def refused(err: grpc.aio.AioRpcError, what: str) -> CommandError:
    """The platform's refusal of `what` as one line, e.g. `get execution 1f..: 404 NOT_FOUND: ...`."""
    code = err.code()
    status = f"{_HTTP_STATUS[code]} " if code in _HTTP_STATUS else ""
    name = code.name if code is not None else "UNKNOWN"
    details = err.details() or ""
    if code == grpc.StatusCode.UNAVAILABLE:
        details = f"the gateway is unreachable or a service is down ({details})"
    return CommandError(f"{what}: {status}{name}: {details}", _EXIT_BY_CODE.get(code, FAILED))


def add_connection_arguments(parser: argparse.ArgumentParser, *, output: bool = True) -> None:
    """--url, --token, --data-dir, --tls-ca and (unless output=False) -o for one subcommand."""
    parser.add_argument(
        "--url",
        metavar="[https://]HOST:PORT",
        help=f"the gateway (default: ${URL_ENV}, else $OSSA_GATEWAY_HOST:$OSSA_GATEWAY_PORT, 127.0.0.1:3100)",
    )
    parser.add_argument("--token", help=f"a bearer token (default: ${TOKEN_ENV}, else <data-dir>/admin.token)")
    parser.add_argument("--data-dir", type=Path, help=f"ossa up's data directory (default: ${PREFIX}DATA_DIR)")
    parser.add_argument("--tls-ca", metavar="FILE", help="verify the gateway's TLS certificate with this CA")
    if output:
        parser.add_argument(
            "-o",
            "--output",
            choices=("table", "json"),
            help="table (the default on a terminal) or json (the default otherwise)",
        )


@dataclass(frozen=True)
class Remote:
    """Where and as whom to call: resolved once per command from its arguments and the environment."""

    target: str
    token: str
    use_tls: bool
    ca_file: str | None

    @classmethod
    def from_args(cls, args: argparse.Namespace, env: Mapping[str, str] | None = None) -> Remote:
        environ = os.environ if env is None else env
        try:
            settings = Settings.from_env(dict(environ))
        except SettingsError as err:
            raise CommandError(str(err), USAGE) from None
        if args.data_dir is not None:
            settings = settings.replace(data_dir=Path(args.data_dir).expanduser())
        url = (args.url or environ.get(URL_ENV, "") or default_gateway(dict(environ))).strip()
        use_tls = url.startswith("https://") or bool(args.tls_ca or settings.tls_ca_file or settings.tls_cert_file)
        target = url.removeprefix("https://").removeprefix("http://").rstrip("/")
        if not target or ":" not in target:
            raise CommandError(f"--url: expected HOST:PORT, got {url!r}", USAGE)
        token = (args.token or environ.get(TOKEN_ENV, "") or credentials.read_admin_token(settings.data_dir)).strip()
        if not token:
            raise CommandError(
                f"no token: pass --token, set {TOKEN_ENV}, or point --data-dir at the data directory of `ossa up` "
                f"(no {settings.data_dir / credentials.ADMIN_TOKEN_FILE})",
                DENIED,
            )
        return cls(target, token, use_tls, args.tls_ca or settings.tls_ca_file or None)

    def channel(self) -> grpc.aio.Channel:
        """A channel that sends the token on every call (use it as an async context manager)."""
        interceptors: Any = bearer_interceptors(self.token)
        if self.use_tls:
            try:
                creds = tls.client_credentials(ca_file=self.ca_file)
            except ValueError as err:
                raise CommandError(str(err), USAGE) from None
            return grpc.aio.secure_channel(self.target, creds, interceptors=interceptors)
        return grpc.aio.insecure_channel(self.target, interceptors=interceptors)


def fail(err: CommandError) -> int:
    """Print the error's line on stderr; its exit code."""
    print(f"{PROG}: error: {err}", file=sys.stderr, flush=True)
    return err.code
