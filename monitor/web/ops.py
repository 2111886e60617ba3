"""``/metrics``, ``/healthz`` and ``/readyz`` for operators."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..health import readiness


async def metrics(request: Request) -> Response:
    body = await run_in_threadpool(generate_latest, request.app.state.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    state = await run_in_threadpool(readiness, request.app.state.config)
    return JSONResponse({"ready": state.ready, "checks": state.checks}, status_code=200 if state.ready else 503)


def routes() -> list[Route]:
    return [Route("/metrics", metrics), Route("/healthz", healthz), Route("/readyz", readyz)]
