"""The intake as the benchmark runs it: the production app, plus a bare route that only the
benchmark mounts. `POST /bench/bare` authenticates (the same `authorized_submission` as
POST /v1/events: token, rate limit, body read) and answers 202, with no validation, no broker and no
store; it is the yardstick of what the service's web stack alone costs a single-event request.

Started as `uvicorn bench.intake_app:create_app --factory`; the production settings never mount it.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from services.intake.app import create_app as create_intake_app
from services.intake.events import authorized_submission

BARE_PATH = "/bench/bare"
FACTORY = "bench.intake_app:create_app"


def create_app() -> FastAPI:
    app = create_intake_app()

    @app.post(BARE_PATH, status_code=202, include_in_schema=False)
    async def bare(request: Request) -> JSONResponse:
        await authorized_submission(request)
        return JSONResponse({"accepted": [{"event_id": "bare", "duplicate": False}]}, status_code=202)

    return app
