"""Build the ASGI application: routes, templates, guards, and the database it reads."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import jinja2
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from ..access import Credentials
from ..config import Config
from ..metrics import make_registry
from ..storage import Storage, open_store
from ..timeutil import utcnow
from . import api, data, ops, pages
from .render import age_words, bar_chart, highlight, paragraphs, time_tag
from .security import GuardMiddleware, safe_href

HERE = Path(__file__).parent


def _templates() -> Jinja2Templates:
    # Autoescaping for every template, whatever its extension: story text is hostile.
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True)
    env.filters.update(
        highlight=highlight,
        paragraphs=paragraphs,
        time_tag=time_tag,
        bar_chart=bar_chart,
        safe_href=safe_href,
        snippet=lambda evidence: highlight(*_snippet_parts(evidence)),
        age=lambda value: age_words(value, utcnow()),
    )
    return Jinja2Templates(env=env)


def _snippet_parts(evidence: dict) -> tuple[str, tuple]:
    snippet = data.snippet_of(evidence or {})
    return snippet.text, snippet.highlights


def create_app(config: Config, store: Storage | None = None) -> Starlette:
    """The web application over ``config``'s database (opened here unless ``store`` is given)."""
    store = store or open_store(config.db, config.secrets)
    registry, _ = make_registry(config, store, events=False)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        store.close()

    routes = [
        *pages.routes(),
        Mount("/api", routes=api.routes()),
        *ops.routes(),
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=pages.exception_handlers())
    app.state.config = config
    app.state.store = store
    app.state.templates = _templates()
    app.state.registry = registry
    app.state.matcher = data.watchlist_matcher(config)
    app.state.credentials = Credentials.from_config(config.web)
    app.add_middleware(GuardMiddleware, credentials=app.state.credentials)
    return app
