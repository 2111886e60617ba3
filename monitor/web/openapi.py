"""The OpenAPI 3.1 document of the JSON API (served at ``/api/openapi.json``)."""

from __future__ import annotations

from typing import Any

from ..version import __version__


def _obj(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


_STR = {"type": "string"}
_NSTR = {"type": ["string", "null"]}
_NUM = {"type": "number"}
_INT = {"type": "integer"}
_NINT = {"type": ["integer", "null"]}
_ERROR = {"description": "A one-sentence error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _param(name: str, description: str, schema: dict[str, Any] | None = None, where: str = "query",
           required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": where, "required": required, "description": description, "schema": schema or _STR}


def _ok(schema_ref: str, description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}}}}


_CURSOR = _param("cursor", "The next_cursor of the previous page.")
_LIMIT = _param("limit", "Items per page (1 to 200).", {"type": "integer", "minimum": 1, "maximum": 200})
_CSRF = [{}, {"bearer": []}]

SCHEMAS: dict[str, Any] = {
    "Error": _obj({"error": _STR}, ["error"]),
    "Report": _obj({"story_id": _STR, "source": _STR, "title": _STR, "url": _NSTR}),
    "Evidence": _obj({"terms": {"type": "array", "items": _STR}, "snippet": _STR,
                      "highlights": {"type": "array", "items": {"type": "array", "items": _INT}},
                      "hits": {"type": "array", "items": _obj({"term": _STR, "field": _STR, "start": _INT, "end": _INT})},
                      "note": _STR}),
    "Match": _obj({
        "id": _INT, "watchlist": _STR, "score": _NUM, "classifier": _NSTR, "matched_at": _STR, "story_id": _STR,
        "title": _STR, "url": _NSTR, "source": _STR, "published_at": _NSTR,
        "evidence": {"$ref": "#/components/schemas/Evidence"}, "cluster": _NSTR, "verdict": _NSTR,
        "also_reported": {"type": "array", "items": {"$ref": "#/components/schemas/Report"}},
    }, ["id", "watchlist", "score", "story_id", "title", "source"]),
    "MatchPage": _obj({"items": {"type": "array", "items": {"$ref": "#/components/schemas/Match"}},
                       "next_cursor": _NSTR}, ["items", "next_cursor"]),
    "Decision": _obj({"watchlist": _STR, "enabled": {"type": "boolean"}, "threshold": {"type": ["number", "null"]},
                      "matched": {"type": "boolean"}, "score": _NUM, "classifier": _NSTR,
                      "terms": {"type": "array", "items": _STR}, "match_id": _NINT}),
    "Alert": _obj({"id": _INT, "channel": _STR, "status": {"enum": ["pending", "sending", "sent", "failed"]},
                   "attempts": _NINT, "next_attempt_at": _NSTR, "sent_at": _NSTR, "last_error": _NSTR,
                   "created_at": _NSTR, "watchlist": _STR, "story_id": _STR, "title": _STR}),
    "AlertPage": _obj({"items": {"type": "array", "items": {"$ref": "#/components/schemas/Alert"}},
                       "next_cursor": _NSTR}, ["items", "next_cursor"]),
    "StoryDetail": _obj({
        "story": _obj({"id": _STR, "source": _STR, "title": _STR, "text": _STR, "url": _NSTR,
                       "published_at": _NSTR, "first_seen_at": _NSTR}),
        "highlights": _obj({"title": {"type": "array", "items": {"type": "array", "items": _INT}},
                            "text": {"type": "array", "items": {"type": "array", "items": _INT}}}),
        "decisions": {"type": "array", "items": {"$ref": "#/components/schemas/Decision"}},
        "alerts": {"type": "array", "items": {"type": "object"}},
        "feedback": {"type": "array", "items": {"type": "object"}},
        "also_reported": {"type": "array", "items": {"$ref": "#/components/schemas/Report"}},
    }, ["story", "decisions", "alerts"]),
    "SearchResult": _obj({"items": {"type": "array", "items": {"type": "object"}}, "candidates": _INT,
                          "truncated": {"type": "boolean"}, "watchlist_toml": _STR}),
    "Source": _obj({"name": _STR, "url": _STR, "status": _NSTR, "last_error": _NSTR, "last_success_at": _NSTR,
                    "next_poll_at": _NSTR, "poll_reason": _NSTR, "stories_count": _NINT,
                    "daily": {"type": "array", "items": _obj({"day": _STR, "stories": _INT})}}),
    "Feedback": _obj({"story_id": _STR, "watchlist": _STR, "verdict": {"enum": ["right", "wrong", "missed"]},
                      "note": _STR}, ["story_id", "watchlist", "verdict"]),
}


def openapi_document() -> dict[str, Any]:
    """The whole document."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "news-monitor", "version": __version__,
                 "description": "Matches, stories, sources, the alert outbox and feedback. Lists are paginated "
                                "with opaque cursors: pass a page's next_cursor to get the next. A POST needs "
                                "the X-CSRF-Token header repeating the monitor_csrf cookie, or a bearer token."},
        "paths": {
            "/api/matches": {"get": {
                "summary": "Matches, newest first", "operationId": "listMatches",
                "parameters": [_param("watchlist", "Only this watchlist."), _param("source", "Only this source."),
                               _param("range", "How far back.", {"enum": ["24h", "7d", "30d", "all"]}),
                               _param("q", "Words in the title or text."), _CURSOR, _LIMIT],
                "responses": {"200": _ok("MatchPage"), "400": _ERROR}}},
            "/api/stories/{story_id}": {"get": {
                "summary": "A story with every watchlist's decision, its alerts and feedback", "operationId": "getStory",
                "parameters": [_param("story_id", "The story's id.", where="path", required=True)],
                "responses": {"200": _ok("StoryDetail"), "404": _ERROR}}},
            "/api/search": {"get": {
                "summary": "Stored stories a watchlist query matches, best first", "operationId": "search",
                "parameters": [_param("q", "A query in the watchlist query language.", required=True),
                               _param("name", "Watchlist name for the TOML to paste."), _LIMIT],
                "responses": {"200": _ok("SearchResult"), "400": _ERROR}}},
            "/api/sources": {"get": {
                "summary": "Every source: status, last success and error, next poll and why, stories per day",
                "operationId": "listSources",
                "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": _obj(
                    {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Source"}}})}}}}}},
            "/api/alerts": {"get": {
                "summary": "The alert outbox, newest first", "operationId": "listAlerts",
                "parameters": [_param("status", "Only this status.", {"enum": ["pending", "sending", "sent", "failed"]}),
                               _CURSOR, _LIMIT],
                "responses": {"200": _ok("AlertPage"), "400": _ERROR}}},
            "/api/alerts/{alert_id}/retry": {"post": {
                "summary": "Queue a failed alert again", "operationId": "retryAlert", "security": _CSRF,
                "parameters": [_param("alert_id", "The outbox row id.", {"type": "integer", "minimum": 0},
                                      where="path", required=True)],
                "responses": {"200": {"description": "Queued", "content": {"application/json": {"schema": _obj(
                    {"id": _INT, "status": _STR})}}}, "403": _ERROR, "409": _ERROR}}},
            "/api/feedback": {
                "get": {"summary": "Readers' verdicts, newest first", "operationId": "listFeedback",
                        "parameters": [_param("story_id", "Only this story."), _param("watchlist", "Only this watchlist."),
                                       _LIMIT],
                        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": _obj(
                            {"items": {"type": "array", "items": {"type": "object"}}})}}}, "400": _ERROR}},
                "post": {"summary": "Say a match was right or wrong, or a story should have matched (missed)",
                         "operationId": "giveFeedback", "security": _CSRF,
                         "requestBody": {"required": True, "content": {"application/json": {
                             "schema": {"$ref": "#/components/schemas/Feedback"}}}},
                         "responses": {"201": {"description": "Stored", "content": {"application/json": {"schema": _obj(
                             {"id": _INT, "story_id": _STR, "watchlist": _STR, "verdict": _STR})}}},
                             "400": _ERROR, "403": _ERROR}}},
        },
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
