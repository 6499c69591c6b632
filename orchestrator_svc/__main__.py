"""`python -m orchestrator_svc`: run the orchestrator service (settings from OSSA_* variables)."""

import sys

from orchestrator_svc.server import build_server
from ossa_runtime.server import run_main

if __name__ == "__main__":
    sys.exit(run_main("orchestrator", build_server))
