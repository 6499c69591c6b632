"""`python -m search_svc`: run the search service (settings from OSSA_* variables)."""

import sys

from search_svc.server import main

if __name__ == "__main__":
    sys.exit(main())
