"""The gateway's Envoy files (template, Lua), installed as the package `ossa_envoy`.

Only importable as `ossa_envoy`: the directory name is kept for people reading the repository.
Read the files with importlib.resources.files("ossa_envoy").
"""
