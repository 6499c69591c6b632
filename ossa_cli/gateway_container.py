"""`python -m ossa_cli.gateway_container`: the gateway image's entry point (containers, Kubernetes).

The gateway is two processes, as under `ossa up`: the gateway gRPC service (GatewayService,
sessions, health report) and Envoy in front of it (REST transcoding, gRPC pass-through, port
3100). This renders Envoy's config into `$OSSA_DATA_DIR/envoy` (a writable volume: the root
filesystem may be read-only), pointing each upstream at its `OSSA_<SERVICE>_HOST`, starts both,
forwards SIGTERM/SIGINT to both and exits when either exits (stopping the other), with its code.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from gateway_http.envoy_config.binary import find_envoy
from gateway_http.envoy_config.canary import read_config, retarget_upstreams, write_config
from gateway_http.envoy_config.render import render_envoy_config
from ossa_runtime.settings import Settings, SettingsError


def envoy_argv(settings: Settings) -> list[str]:
    """Render the config (upstreams retargeted) and return the command that runs Envoy on it."""
    path = render_envoy_config(settings, settings.data_dir / "envoy")
    write_config(path, retarget_upstreams(read_config(path), settings))
    return [find_envoy(), "-c", str(path), "--log-level", "warn", "--disable-hot-restart"]


async def run(settings: Settings) -> int:
    gateway = await asyncio.create_subprocess_exec(sys.executable, "-m", "gateway_http")
    envoy = await asyncio.create_subprocess_exec(*envoy_argv(settings))
    procs = (gateway, envoy)
    loop = asyncio.get_running_loop()

    def forward(sig: signal.Signals) -> None:
        for proc in procs:
            if proc.returncode is None:
                proc.send_signal(sig)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, forward, sig)
    waits = [asyncio.ensure_future(p.wait()) for p in procs]
    done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    first = next(iter(done)).result()
    forward(signal.SIGTERM)
    await asyncio.gather(*waits)
    return first


def main() -> int:
    try:
        settings = Settings.from_env()
    except SettingsError as err:
        print(f"gateway: {err}", file=sys.stderr)
        return 2
    return asyncio.run(run(settings))


if __name__ == "__main__":
    sys.exit(main())
