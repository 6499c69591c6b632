"""The operations console's static files (index.html, ES modules, one stylesheet).

Served at /console by Envoy itself (gateway_http/console_routes.py); the page uses only the public
REST API on the same origin. No build step and no third-party code: edit the files and restart.
"""
