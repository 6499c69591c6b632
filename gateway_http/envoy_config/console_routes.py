"""Envoy routes serving the operations console (`/console`, static files of package `ossa_console`).

Envoy answers them itself (direct_response from files, like the OpenAPI document): no Python
process is on the path and the console works while a service is down. The assets (ES modules, one
stylesheet) live under `/console/assets/<version>/`, where `<version>` is a hash of their content:
they are cached for a year (`immutable`), and an upgrade changes the path, so a browser never mixes
old and new modules. `/console` itself is `no-cache` and names the current version.

`render_console(out_dir)` copies the files into `out_dir/console/<version>/` (the directory Envoy
reads, next to the rendered envoy.yaml) and returns the route entries for the template's
`$console_routes` block.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

PACKAGE = "ossa_console"
PREFIX = "/console"
INDEX = "index.html"
# Placeholder in index.html replaced by the assets' path prefix (/console/assets/<version>).
ASSETS_PLACEHOLDER = "__ASSETS__"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# The console only talks to this origin and loads nothing from elsewhere (no CDN, works offline).
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
INDEX_HEADERS = {
    "cache-control": "no-cache",
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}
ASSET_HEADERS = {
    "cache-control": "public, max-age=31536000, immutable",
    "x-content-type-options": "nosniff",
}


@dataclass(frozen=True)
class Asset:
    name: str  # path relative to the package, e.g. "views/agents.js"
    data: bytes

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[Path(self.name).suffix]


def console_assets() -> list[Asset]:
    """Every servable file of the package (index.html included), sorted by name."""
    found: list[Asset] = []

    def walk(node: object, prefix: str) -> None:
        for child in sorted(node.iterdir(), key=lambda c: c.name):  # type: ignore[attr-defined]
            name = f"{prefix}{child.name}"
            if child.is_dir() and not child.name.startswith(("_", ".")):
                walk(child, f"{name}/")
            elif child.is_file() and Path(child.name).suffix in CONTENT_TYPES:
                found.append(Asset(name, child.read_bytes()))

    walk(files(PACKAGE), "")
    if not any(a.name == INDEX for a in found):
        raise FileNotFoundError(f"{PACKAGE} has no {INDEX}")
    return found


def assets_version(assets: list[Asset]) -> str:
    digest = hashlib.sha256()
    for asset in assets:
        digest.update(asset.name.encode() + b"\0" + hashlib.sha256(asset.data).digest())
    return digest.hexdigest()[:16]


def render_console(out_dir: Path) -> list[str]:
    """Write the console's files under `out_dir/console/<version>/`; return Envoy route entries
    ("- {...}" flow mappings), each answering GET/HEAD of one path from one file."""
    assets = console_assets()
    version = assets_version(assets)
    base = f"{PREFIX}/assets/{version}"
    root = Path(out_dir) / "console" / version
    routes: list[str] = []
    for asset in assets:
        path = root / asset.name
        path.parent.mkdir(parents=True, exist_ok=True)
        if asset.name == INDEX:
            data = asset.data.replace(ASSETS_PLACEHOLDER.encode(), base.encode())
            _write(path, data)
            for url in (PREFIX, f"{PREFIX}/"):
                routes.append(_route(url, path, asset.content_type, INDEX_HEADERS))
        else:
            _write(path, asset.data)
            routes.append(_route(f"{base}/{asset.name}", path, asset.content_type, ASSET_HEADERS))
    # Earlier versions' copies: Envoy read them when it loaded its config; nothing needs them now.
    for old in root.parent.iterdir():
        if old.is_dir() and old.name != version:
            shutil.rmtree(old, ignore_errors=True)
    return routes


def _route(url: str, path: Path, content_type: str, headers: dict[str, str]) -> str:
    added = [
        {"header": {"key": key, "value": value}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
        for key, value in {"content-type": content_type, **headers}.items()
    ]
    route = {
        "match": {
            "path": url,
            "headers": [{"name": ":method", "string_match": {"safe_regex": {"regex": "GET|HEAD"}}}],
        },
        "direct_response": {"status": 200, "body": {"filename": str(path)}},
        "response_headers_to_add": added,
        # The transcoder would take the path for an unknown REST method (404).
        "typed_per_filter_config": {
            "envoy.filters.http.grpc_json_transcoder": {
                "@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig",
                "disabled": True,
            }
        },
    }
    return "- " + json.dumps(route)


def _write(path: Path, data: bytes) -> None:
    if path.exists() and path.read_bytes() == data:
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
