"""``monitor serve``: the web UI, its JSON API, metrics and health checks.

Server-rendered pages (Jinja2, autoescaped) that work without JavaScript;
the same data as JSON under ``/api/``. Modules: :mod:`.app` builds the
application, :mod:`.security` its guards, :mod:`.data` reads the database,
:mod:`.pages` and :mod:`.api` answer requests, :mod:`.server` runs it.
"""

from .app import create_app

__all__ = ["create_app"]
