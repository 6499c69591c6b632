"""`ossa token create` and `ossa token revoke`: mint a bearer JWT locally, revoke one on the platform.

    ossa token create --sub ID [--role viewer|operator|admin] [--scope PERM ...]
                      [--type user|agent|service] [--ttl 1h] [--data-dir DIR]
    ossa token revoke JTI|TOKEN [--token ADMIN_JWT] [--gateway HOST:PORT] [--tls-ca FILE] [--data-dir DIR]

`create` signs with the platform's key: OSSA_JWT_SECRET (or OSSA_JWT_SECRET_FILE), else the
`jwt.secret` that `ossa up` keeps in the data directory (--data-dir or OSSA_DATA_DIR); RS256/ES256
with OSSA_JWT_PRIVATE_KEY. The token is the only thing on stdout (its last line, for scripts:
`TOKEN=$(ossa token create ...)`); its jti and expiry go to stderr.

`revoke` calls ossa.auth.v1.AuthService/RevokeToken through the gateway as an admin: --token,
else OSSA_TOKEN, else the data directory's `admin.token`. Given a whole token instead of a jti it
revokes that token until its own expiry.

Exit codes: 0 done, 1 the platform refused or cannot be reached, 2 bad arguments or settings.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import jwt

from ossa.auth.v1 import auth_pb2, auth_pb2_grpc
from ossa_cli import argtypes, credentials
from ossa_cli.agent import default_gateway
from ossa_cli.errors import TokenError, error
from ossa_runtime import tls
from ossa_runtime.auth.client import bearer_metadata
from ossa_runtime.auth.permissions import PERMISSIONS, ROLES
from ossa_runtime.auth.tokens import TOKEN_TYPES, mint_token
from ossa_runtime.settings import PREFIX, Settings, SettingsError

TOKEN_ENV = "OSSA_TOKEN"
DEFAULT_TTL = "1h"
REVOKE_TIMEOUT_SECONDS = 15.0


def add_token_commands(sub: Any) -> None:
    """Add `ossa token ...` to the `ossa` parser's subcommands."""
    token = sub.add_parser("token", help="mint and revoke bearer tokens", description="Mint and revoke bearer JWTs.")
    commands = token.add_subparsers(title="commands", metavar="COMMAND", required=True)

    create = commands.add_parser(
        "create",
        help="mint a token with the platform's key (printed alone on the last line of stdout)",
        description="Mint a bearer JWT signed with the platform's key. Only the token goes to stdout.",
    )
    create.add_argument("--sub", required=True, help="who the token speaks for: a user id, or the agent's id or name")
    create.add_argument("--role", choices=list(ROLES), help="the role whose permissions the token carries")
    create.add_argument(
        "--scope",
        dest="scopes",
        action="append",
        default=[],
        choices=list(PERMISSIONS),
        metavar="PERMISSION",
        help=f"an extra permission (repeat for more): {', '.join(PERMISSIONS)}",
    )
    create.add_argument("--type", default="user", choices=TOKEN_TYPES, help="the token type (default: user)")
    create.add_argument(
        "--ttl",
        type=argtypes.duration,
        default=argtypes.duration(DEFAULT_TTL),
        metavar="DURATION",
        help=f"lifetime: 3600, 90s, 15m, 1h, 7d, 1h30m ... (default: {DEFAULT_TTL})",
    )
    _data_dir_argument(create)
    create.set_defaults(command=cmd_token_create)

    revoke = commands.add_parser(
        "revoke",
        help="revoke a token on the platform by its jti (or the whole token)",
        description="Revoke a bearer JWT: every service refuses it from then on. Needs an admin token.",
    )
    revoke.add_argument("jti", metavar="JTI", help="the token's jti claim, or the token itself")
    revoke.add_argument(
        "--token", help=f"an admin token (default: ${TOKEN_ENV}, else the data directory's admin.token)"
    )
    revoke.add_argument(
        "--gateway",
        metavar="HOST:PORT",
        help="the platform's address (default: $OSSA_GATEWAY_HOST:$OSSA_GATEWAY_PORT or 127.0.0.1:3100)",
    )
    revoke.add_argument(
        "--tls-ca",
        metavar="FILE",
        help="dial the gateway over TLS, verifying it with this CA (default: $OSSA_TLS_CA_FILE; TLS is also on "
        "when $OSSA_TLS_CERT_FILE is set)",
    )
    _data_dir_argument(revoke)
    revoke.set_defaults(command=cmd_token_revoke)


def _data_dir_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir", type=Path, help=f"the platform's data directory (default: ${PREFIX}DATA_DIR or ossa up's)"
    )


def _settings(args: argparse.Namespace) -> Settings:
    try:
        settings = Settings.from_env()
        if args.data_dir is not None:
            settings = settings.replace(data_dir=Path(args.data_dir).expanduser())
    except SettingsError as err:
        raise TokenError(str(err)) from None
    return settings


def signing_settings(settings: Settings) -> Settings:
    """`settings` with the key to sign with: configured, else `<data-dir>/jwt.secret` (never made here)."""
    if settings.jwt_secret or settings.jwt_private_key:
        return settings
    path = settings.data_dir / credentials.SECRET_FILE
    try:
        secret = path.read_text().strip()
    except FileNotFoundError:
        secret = ""
    except OSError as err:
        raise TokenError(f"cannot read the JWT secret {path}: {err.strerror or err}") from None
    if not secret:
        raise TokenError(
            f"no JWT secret: set {PREFIX}JWT_SECRET (or {PREFIX}JWT_SECRET_FILE), or point --data-dir at the "
            f"data directory of `ossa up` (no {path})"
        )
    return settings.replace(jwt_secret=secret)


def _when(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def cmd_token_create(args: argparse.Namespace) -> int:
    try:
        if not args.role and not args.scopes:
            raise TokenError("give --role (viewer, operator or admin) or at least one --scope")
        settings = signing_settings(_settings(args))
        token, claims = mint_token(
            settings, sub=args.sub, role=args.role, scopes=args.scopes, type=args.type, ttl_seconds=args.ttl
        )
    except (SettingsError, ValueError) as err:
        return error(str(err), 2)
    except TokenError as err:
        return error(str(err), err.code)
    print(
        f"{claims.type} token for {claims.sub!r} ({', '.join(claims.scope)}), jti {claims.jti}, "
        f"expires {_when(claims.exp)}",
        file=sys.stderr,
    )
    print(token, flush=True)
    return 0


# ossa token revoke -----------------------------------------------------------------------------


def revoke_target(raw: str) -> tuple[str, int | None]:
    """(jti, expiry or None) from a jti or from a whole token (its claims read without verifying)."""
    text = raw.strip()
    if text.count(".") == 2:
        try:
            claims = jwt.decode(text, options={"verify_signature": False})
        except jwt.PyJWTError:
            claims = {}
        jti, exp = claims.get("jti"), claims.get("exp")
        if isinstance(jti, str) and jti:
            return jti, int(exp) if isinstance(exp, int | float) else None
    if not text:
        raise TokenError("JTI: must not be empty")
    return text, None


def admin_token(args: argparse.Namespace, settings: Settings) -> str:
    token = args.token or os.environ.get(TOKEN_ENV, "") or credentials.read_admin_token(settings.data_dir)
    if not token:
        raise TokenError(
            f"no admin token: pass --token, set {TOKEN_ENV}, or point --data-dir at the data directory of "
            f"`ossa up` (no {settings.data_dir / credentials.ADMIN_TOKEN_FILE})"
        )
    return token.strip()


def _channel(target: str, use_tls: bool, ca_file: str | None) -> grpc.aio.Channel:
    if use_tls:
        return grpc.aio.secure_channel(target, tls.client_credentials(ca_file=ca_file))
    return grpc.aio.insecure_channel(target)


async def revoke(
    target: str, bearer: str, jti: str, expires_at: int | None, *, use_tls: bool = False, ca_file: str | None = None
) -> None:
    request = auth_pb2.RevokeTokenRequest(jti=jti)
    if expires_at is not None:
        request.expires_at.FromSeconds(expires_at)
    async with _channel(target, use_tls, ca_file) as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        await stub.RevokeToken(request, metadata=bearer_metadata(bearer), timeout=REVOKE_TIMEOUT_SECONDS)


def cmd_token_revoke(args: argparse.Namespace) -> int:
    try:
        settings = _settings(args)
        jti, expires_at = revoke_target(args.jti)
        bearer = admin_token(args, settings)
        target = args.gateway or default_gateway()
    except (SettingsError, ValueError) as err:
        return error(str(err), 2)
    except TokenError as err:
        return error(str(err), err.code)
    try:
        ca_file = args.tls_ca or settings.tls_ca_file or None
        use_tls = bool(ca_file or settings.tls_cert_file)  # the gateway serves TLS when this shell configures it
        asyncio.run(revoke(target, bearer, jti, expires_at, use_tls=use_tls, ca_file=ca_file))
    except grpc.aio.AioRpcError as err:
        code = err.code().name if err.code() is not None else "UNKNOWN"
        return error(f"{target} refused to revoke {jti}: {code}: {err.details()}", 1)
    except ValueError as err:  # an unreadable --tls-ca
        return error(str(err), 2)
    print(f"revoked token {jti}", flush=True)
    return 0
