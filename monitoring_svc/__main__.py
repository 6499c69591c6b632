"""`python -m monitoring_svc`: run the monitoring service (settings from OSSA_* variables)."""

import sys

from monitoring_svc.server import build_server
from ossa_runtime.server import run_main

if __name__ == "__main__":
    sys.exit(run_main("monitoring", build_server))
