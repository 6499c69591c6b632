"""The `ossa` command line: `ossa up` runs the whole platform on one machine."""
