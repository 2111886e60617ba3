"""The JSON API under ``/api/``: the data of every page, cursor-paginated, described at ``/api/openapi.json``."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..feedback import feedback_from, record_feedback
from . import data
from .data import requeue_one
from .openapi import openapi_document
from .search import found_row, search_stored, watchlist_toml
from .security import check_csrf, safe_href


def _limit(request: Request, default: int = data.PAGE_SIZE) -> int:
    raw = request.query_params.get("limit", str(default))
    if not raw.isdigit() or not 1 <= int(raw) <= data.MAX_PAGE_SIZE:
        raise HTTPException(400, f"limit must be a whole number from 1 to {data.MAX_PAGE_SIZE}, got {raw!r}")
    return int(raw)


def _page(page: data.Page, shape: Any) -> Response:
    return JSONResponse({"items": [shape(r) for r in page.items], "next_cursor": page.next_cursor})


def _match(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"], "watchlist": row["watchlist"], "score": row["score"], "classifier": row["classifier"],
        "matched_at": row["matched_at"], "story_id": row["story_id"], "title": row["title"],
        "url": safe_href(row["url"]), "source": row["source"], "published_at": row["published_at"],
        "evidence": row["evidence"], "cluster": row["cluster"], "verdict": row["verdict"],
        "also_reported": [{"story_id": r["id"], "source": r["source"], "title": r["title"], "url": safe_href(r["url"])}
                          for r in row["also_reported"]],
    }


def matches(request: Request) -> Response:
    q = request.query_params
    rng = q.get("range", "all")
    if rng not in data.RANGES:
        raise HTTPException(400, f"range must be one of {', '.join(data.RANGES)}, got {rng!r}")
    flt = data.MatchFilter(q.get("watchlist", ""), q.get("source", ""), rng, q.get("q", "").strip())
    page = data.list_matches(request.app.state.store, flt, q.get("cursor") or None, _limit(request))
    return _page(page, _match)


def story(request: Request) -> Response:
    detail = data.story_detail(request.app.state.store, request.app.state.config, request.path_params["story_id"],
                               request.app.state.matcher)
    if detail is None:
        raise HTTPException(404, "no stored story has this id (it may have been pruned)")
    s = detail["story"]
    return JSONResponse({
        "story": {"id": s["id"], "source": s["source"], "title": s["title"], "text": s["text"],
                  "url": safe_href(s["url"]), "published_at": s["published_at"], "first_seen_at": s["first_seen_at"]},
        "highlights": {"title": detail["title_spans"], "text": detail["text_spans"]},
        "decisions": detail["decisions"],
        "alerts": detail["alerts"],
        "feedback": list(detail["feedback"].values()),
        "also_reported": [{"story_id": r["id"], "source": r["source"], "title": r["title"], "url": safe_href(r["url"])}
                          for r in detail["also_reported"]],
    })


def search_api(request: Request) -> Response:
    q = request.query_params.get("q", "").strip()
    if not q:
        raise HTTPException(400, "q is required: a query in the watchlist query language")
    result = search_stored(request.app.state.store, q, limit=_limit(request))
    rows = [{**found_row(f), "url": safe_href(f.row["url"])} for f in result.found]
    name = request.query_params.get("name", "my_search")
    return JSONResponse({"items": rows, "candidates": result.candidates, "truncated": result.truncated,
                         "watchlist_toml": watchlist_toml(name, q)})


def sources(request: Request) -> Response:
    rows = data.sources_overview(request.app.state.store, request.app.state.config)
    keys = ("name", "url", "kind", "enabled", "configured", "status", "http_status", "last_error", "last_note",
            "last_fetch_at", "last_success_at", "next_poll_at", "poll_basis", "poll_reason", "error_count",
            "stories_count")
    return JSONResponse({"items": [{**{k: r.get(k) for k in keys},
                                    "daily": [{"day": d, "stories": n} for d, n in r["daily"]]} for r in rows]})


def alerts(request: Request) -> Response:
    status = request.query_params.get("status", "")
    if status not in ("", "pending", "sending", "sent", "failed"):
        raise HTTPException(400, f"status must be pending, sending, sent or failed, got {status!r}")
    page = data.list_alerts(request.app.state.store, status, request.query_params.get("cursor") or None,
                            _limit(request))
    return _page(page, dict)


async def retry(request: Request) -> Response:
    await check_csrf(request)
    alert_id = request.path_params["alert_id"]
    count = await run_in_threadpool(requeue_one, request.app.state.store, alert_id)
    if not count:
        raise HTTPException(409, f"alert #{alert_id} is not failed (or does not exist): nothing to retry")
    return JSONResponse({"id": alert_id, "status": "pending"})


def feedback_list(request: Request) -> Response:
    rows = request.app.state.store.feedback_rows(story_id=request.query_params.get("story_id") or None,
                         watchlist=request.query_params.get("watchlist") or None, limit=_limit(request, 100))
    return JSONResponse({"items": rows})


async def feedback_post(request: Request) -> Response:
    await check_csrf(request)
    try:
        body = await request.json()
    except ValueError:
        raise HTTPException(400, "expected a JSON object: {\"story_id\", \"watchlist\", \"verdict\"}") from None
    if not isinstance(body, dict):
        raise HTTPException(400, "expected a JSON object: {\"story_id\", \"watchlist\", \"verdict\"}")
    feedback = feedback_from(body, origin="api")
    row_id = await run_in_threadpool(record_feedback, request.app.state.store, feedback,
                                     list(request.app.state.config.watchlists))
    return JSONResponse({"id": row_id, "story_id": feedback.story_id, "watchlist": feedback.watchlist,
                         "verdict": feedback.verdict}, status_code=201)


def openapi(request: Request) -> Response:
    return JSONResponse(openapi_document())


def routes() -> list[Route]:
    return [
        Route("/openapi.json", openapi),
        Route("/matches", matches),
        Route("/stories/{story_id:path}", story),
        Route("/search", search_api),
        Route("/sources", sources),
        Route("/alerts", alerts),
        Route("/alerts/{alert_id:int}/retry", retry, methods=["POST"]),
        Route("/feedback", feedback_list),
        Route("/feedback", feedback_post, methods=["POST"]),
    ]
