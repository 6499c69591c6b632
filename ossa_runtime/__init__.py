"""The shared runtime of OSSA services: settings, logging, errors, server lifecycle, data stores."""
