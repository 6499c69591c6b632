"""The bearer token every benchmark sends: `--token`, else $OSSA_TOKEN, else the admin token
`ossa up` wrote to the data directory (`--data-dir`, $OSSA_DATA_DIR or the default one).

`use_token()` puts it in $OSSA_TOKEN, so load-generator processes (spawned) send it too.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from ossa_runtime.auth.client import bearer_interceptors
from ossa_runtime.settings import default_data_dir

TOKEN_ENV = "OSSA_TOKEN"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--token", default=None, help="bearer token (default: $OSSA_TOKEN or <data-dir>/admin.token)")
    parser.add_argument("--data-dir", type=Path, default=None, help="where `ossa up` wrote admin.token")


def use_token(args: argparse.Namespace, data_dir: Path | None = None) -> str:
    """Resolve the token (a started platform's `data_dir` first) and export it as $OSSA_TOKEN."""
    token = args.token or ""
    if not token and data_dir is None:
        token = os.environ.get(TOKEN_ENV, "")
    if not token:
        where = data_dir or args.data_dir or Path(os.environ.get("OSSA_DATA_DIR") or default_data_dir())
        path = Path(where).expanduser() / "admin.token"
        token = path.read_text().strip() if path.exists() else ""
    os.environ[TOKEN_ENV] = token
    return token


def headers() -> dict[str, str]:
    """The authorization header for one HTTP request ({} without a token)."""
    token = os.environ.get(TOKEN_ENV, "")
    return {"authorization": f"Bearer {token}"} if token else {}


def interceptors() -> list[Any]:
    """gRPC client interceptors sending the token on every call."""
    return bearer_interceptors(os.environ.get(TOKEN_ENV, ""))
