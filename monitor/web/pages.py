"""The HTML pages: matches, story, search, sources, alerts, feedback, and the two forms that change state."""

from __future__ import annotations

import sqlite3
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ..errors import MonitorError, QuerySyntaxError, StorageError
from ..feedback import FeedbackError, feedback_from, record_feedback
from . import data
from .data import requeue_one
from .cursor import BadCursor
from .search import found_row, search_stored, watchlist_toml
from .security import CsrfError, check_csrf, csrf_token, local_path

DEFAULT_NAME = "my_search"


def _render(request: Request, template: str, nav: str, status_code: int = 200, **context: Any) -> Response:
    context.update(
        request=request, nav=nav, csrf=csrf_token(request),
        back=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        notice=request.query_params.get("notice", ""),
    )
    return request.app.state.templates.TemplateResponse(request, template, context, status_code=status_code)


def _match_filter(request: Request) -> data.MatchFilter:
    q = request.query_params
    rng = q.get("range", "all")
    return data.MatchFilter(q.get("watchlist", ""), q.get("source", ""), rng if rng in data.RANGES else "all",
                            q.get("q", "").strip())


async def home(request: Request) -> Response:
    return RedirectResponse("/matches", status_code=307)


def matches_page(request: Request) -> Response:
    store, config = request.app.state.store, request.app.state.config
    flt = _match_filter(request)
    page = data.list_matches(store, flt, request.query_params.get("cursor") or None)
    next_url = "/matches?" + urlencode({**flt.params(), "cursor": page.next_cursor or ""})
    return _render(request, "matches.html", "Matches", flt=flt, page=page, next_url=next_url,
                   watchlists=list(config.watchlists), sources=data.source_names(store))


def story_page(request: Request) -> Response:
    detail = data.story_detail(request.app.state.store, request.app.state.config, request.path_params["story_id"],
                               request.app.state.matcher)
    if detail is None:
        raise HTTPException(404, "No stored story has this id (it may have been pruned).")
    return _render(request, "story.html", "", d=detail)


def search_page(request: Request) -> Response:
    q = request.query_params.get("q", "").strip()
    name = request.query_params.get("name", "").strip() or DEFAULT_NAME
    result, rows, error = None, [], ""
    if q:
        try:
            result = search_stored(request.app.state.store, q)
            rows = [found_row(f) for f in result.found]
        except QuerySyntaxError as exc:
            error = str(exc)
    return _render(request, "search.html", "Search", q=q, name=name, result=result, rows=rows, error=error,
                   toml=watchlist_toml(name, q) if q else "", save_open="name" in request.query_params)


def sources_page(request: Request) -> Response:
    rows = data.sources_overview(request.app.state.store, request.app.state.config)
    return _render(request, "sources.html", "Sources", sources=rows)


def alerts_page(request: Request) -> Response:
    store = request.app.state.store
    status = request.query_params.get("status", "")
    status = status if status in ("pending", "sending", "sent", "failed") else ""
    page = data.list_alerts(store, status, request.query_params.get("cursor") or None)
    params = {"status": status} if status else {}
    next_url = "/alerts?" + urlencode({**params, "cursor": page.next_cursor or ""})
    return _render(request, "alerts.html", "Alerts", page=page, counts=data.outbox_counts(store), current=status,
                   next_url=next_url)


def feedback_page(request: Request) -> Response:
    return _render(request, "feedback.html", "Feedback", rows=request.app.state.store.feedback_rows(limit=200))


def _with_notice(path: str, notice: str) -> str:
    path = local_path(path, "/matches")
    base, _, query = path.partition("?")
    params = [p for p in query.split("&") if p and not p.startswith("notice=")]
    return base + "?" + "&".join([*params, urlencode({"notice": notice})])


async def post_feedback(request: Request) -> Response:
    await check_csrf(request)
    form = await request.form()
    feedback = feedback_from(form, origin="web")
    config = request.app.state.config
    await run_in_threadpool(record_feedback, request.app.state.store, feedback, list(config.watchlists))
    notice = f"Saved: {feedback.watchlist} was {feedback.verdict} for this story."
    return RedirectResponse(_with_notice(str(form.get("next", "")), notice), status_code=303)


async def post_retry(request: Request) -> Response:
    await check_csrf(request)
    form = await request.form()
    alert_id = request.path_params["alert_id"]
    count = await run_in_threadpool(requeue_one, request.app.state.store, alert_id)
    if not count:
        raise HTTPException(409, f"Alert #{alert_id} is not failed (or does not exist): nothing to retry.")
    notice = f"Alert #{alert_id} is queued again; the daemon sends it on its next outbox run."
    return RedirectResponse(_with_notice(str(form.get("next", "")) or "/alerts", notice), status_code=303)


def routes() -> list[Route]:
    return [
        Route("/", home),
        Route("/matches", matches_page),
        Route("/stories/{story_id:path}", story_page),
        Route("/search", search_page),
        Route("/sources", sources_page),
        Route("/alerts", alerts_page),
        Route("/alerts/{alert_id:int}/retry", post_retry, methods=["POST"]),
        Route("/feedback", feedback_page),
        Route("/feedback", post_feedback, methods=["POST"]),
    ]


# -- errors: one sentence, as a page or as JSON under /api/ ----------------------------


def _error(request: Request, status: int, message: str) -> Response:
    from starlette.responses import JSONResponse

    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": message}, status_code=status)
    headings = {400: "Bad request", 403: "Refused", 404: "Not found", 405: "Not allowed", 409: "Nothing to do",
                503: "Database unavailable"}
    context = dict(request=request, nav="", csrf=csrf_token(request), back="/", notice="",
                   heading=headings.get(status, "Error"), message=message, status=status)
    return request.app.state.templates.TemplateResponse(request, "error.html", context, status_code=status)


def exception_handlers() -> dict:
    async def http_error(request: Request, exc: HTTPException) -> Response:
        return _error(request, exc.status_code, str(exc.detail))

    async def bad_input(request: Request, exc: Exception) -> Response:
        return _error(request, 400, str(exc))

    async def csrf(request: Request, exc: CsrfError) -> Response:
        return _error(request, 403, str(exc))

    async def storage(request: Request, exc: StorageError) -> Response:
        return _error(request, 503, str(exc))

    async def other(request: Request, exc: MonitorError) -> Response:
        return _error(request, 400, str(exc))

    async def database(request: Request, exc: sqlite3.Error) -> Response:
        return _error(request, 503, f"cannot read the database: {exc}")

    return {HTTPException: http_error, BadCursor: bad_input, FeedbackError: bad_input, QuerySyntaxError: bad_input,
            CsrfError: csrf, StorageError: storage, MonitorError: other, sqlite3.Error: database}
