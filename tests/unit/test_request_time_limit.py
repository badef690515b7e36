"""The request time limit (shared/limits.py): 503 with Retry-After for an answer not begun in time,
an answer already begun left to finish, and the app's own errors left as they are."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI
from fastapi.responses import StreamingResponse

from shared.limits import RequestTimeLimit
from shared.web import install_error_handlers


def limited_app(seconds: float) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/slow")
    async def slow() -> dict[str, str]:
        await asyncio.sleep(5)
        return {"late": "yes"}

    @app.get("/quick")
    async def quick() -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/streamed")
    async def streamed() -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            yield b"begun "
            await asyncio.sleep(seconds * 3)
            yield b"and finished"

        return StreamingResponse(body())

    @app.get("/own-timeout")
    async def own_timeout() -> dict[str, str]:
        raise TimeoutError("the route's own")

    app.add_middleware(RequestTimeLimit, seconds=seconds)
    return app


async def ask(app: FastAPI, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(path)


async def test_an_answer_not_begun_in_time_is_503_with_retry_after() -> None:
    response = await ask(limited_app(0.1), "/slow")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert "0.1s" in response.json()["error"]["message"]


async def test_a_quick_answer_passes() -> None:
    response = await ask(limited_app(0.1), "/quick")
    assert response.status_code == 200 and response.json() == {"ok": "yes"}


async def test_an_answer_begun_in_time_finishes() -> None:
    response = await ask(limited_app(0.1), "/streamed")
    assert response.status_code == 200
    assert response.text == "begun and finished"


async def test_the_apps_own_timeout_is_not_the_limit() -> None:
    response = await ask(limited_app(5), "/own-timeout")
    assert response.status_code == 500
