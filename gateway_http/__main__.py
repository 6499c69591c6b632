"""`python -m gateway_http`: run the gateway service (settings from OSSA_* variables)."""

import sys

from gateway_http.server import build_server
from ossa_runtime.server import run_main

if __name__ == "__main__":
    sys.exit(run_main("gateway", build_server))
