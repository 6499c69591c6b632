"""`python -m registry_svc`: run the registry service (settings from OSSA_* variables)."""

import sys

from ossa_runtime.server import run_main
from registry_svc.server import build_server

if __name__ == "__main__":
    sys.exit(run_main("registry", build_server))
