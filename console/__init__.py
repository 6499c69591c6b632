"""The operations console's static files: installed as ossa_console (the name `console` belongs to a PyPI package).

The files are index.html, ES modules and one stylesheet. Only importable as `ossa_console`: the
directory name is kept for people reading the repository. Served at /console by Envoy itself
(gateway_http/envoy_config/console_routes.py); the page uses only the public REST API on the same
origin. No build step and no third-party code: edit the files and restart.
"""
