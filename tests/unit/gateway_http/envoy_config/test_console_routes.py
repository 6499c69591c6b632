"""The console's static files and the Envoy routes serving them (gateway_http/envoy_config/console_routes.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from gateway_http.envoy_config.binary import validate_envoy_config
from gateway_http.envoy_config.console_routes import (
    ASSETS_PLACEHOLDER,
    assets_version,
    console_assets,
    render_console,
)
from gateway_http.envoy_config.render import render_envoy_config
from tests.unit.gateway_http.envoy_config.test_render import make_settings, routes

IMPORT = re.compile(r"""^\s*import\s[^"']*?from\s+["']([^"']+)["']|^\s*import\s+["']([^"']+)["']""", re.MULTILINE)


def parsed(entries: list[str]) -> list[dict[str, Any]]:
    return [json.loads(entry.removeprefix("- ")) for entry in entries]


def test_every_asset_gets_one_get_route_from_its_own_file(tmp_path: Path) -> None:
    table = parsed(render_console(tmp_path))
    by_path = {r["match"]["path"]: r for r in table}
    assets = console_assets()
    version = assets_version(assets)
    expected = {"/console", "/console/"} | {
        f"/console/assets/{version}/{a.name}" for a in assets if a.name != "index.html"
    }
    assert set(by_path) == expected
    for path, route in by_path.items():
        file = Path(route["direct_response"]["body"]["filename"])
        assert file.is_file() and file.is_relative_to(tmp_path / "console" / version), file
        headers = {h["header"]["key"]: h["header"]["value"] for h in route["response_headers_to_add"]}
        assert route["match"]["headers"][0]["string_match"]["safe_regex"]["regex"] == "GET|HEAD"
        assert route["typed_per_filter_config"]["envoy.filters.http.grpc_json_transcoder"]["disabled"] is True
        if path.startswith("/console/assets/"):
            assert "immutable" in headers["cache-control"]
            assert file.read_bytes() == next(a.data for a in assets if path.endswith(f"/{a.name}"))
        else:
            assert headers["cache-control"] == "no-cache"
            assert headers["content-type"] == "text/html; charset=utf-8"
            assert "default-src 'none'" in headers["content-security-policy"]


def test_index_names_the_versioned_assets(tmp_path: Path) -> None:
    table = parsed(render_console(tmp_path))
    index = Path(next(r for r in table if r["match"]["path"] == "/console")["direct_response"]["body"]["filename"])
    html = index.read_text()
    assert ASSETS_PLACEHOLDER not in html
    served = {r["match"]["path"] for r in table}
    referenced = re.findall(r'(?:src|href)="(/console/[^"]+)"', html)
    assert len(referenced) == 2 and set(referenced) <= served, referenced


def test_every_module_import_resolves_to_a_packaged_file() -> None:
    """No build step: a typo in an import path would only show in a browser; catch it here."""
    names = {a.name for a in console_assets()}
    modules = [a for a in console_assets() if a.name.endswith(".js")]
    assert "app.js" in names and len(modules) > 3
    for module in modules:
        for groups in IMPORT.findall(module.data.decode()):
            target = next(g for g in groups if g)
            assert target.startswith("."), f"{module.name} imports {target}: only relative imports (no CDN)"
            resolved = (Path("/") / Path(module.name).parent / target).resolve().relative_to("/")
            assert str(resolved) in names, f"{module.name} imports missing {target}"


def test_a_new_version_replaces_the_old_copies(tmp_path: Path) -> None:
    stale = tmp_path / "console" / "0000000000000000"
    stale.mkdir(parents=True)
    (stale / "app.js").write_text("old")
    render_console(tmp_path)
    assert [p.name for p in (tmp_path / "console").iterdir()] == [assets_version(console_assets())]


def test_envoy_accepts_the_routes_after_the_openapi_document(tmp_path: Path) -> None:
    config_path = render_envoy_config(make_settings(tmp_path), tmp_path / "envoy")
    table = routes(yaml.safe_load(config_path.read_text()))
    paths = [r["match"].get("path") for r in table]
    console = [p for p in paths if p and p.startswith("/console")]
    assert paths[0] == "/api/v1/openapi.json" and paths[1 : 1 + len(console)] == console
    assert {"/console", "/console/"} <= set(console)
    validate_envoy_config(config_path)
