"""The HTTP side of `llaso serve`: an OpenAI-compatible ASGI app (FastAPI) in front of the batcher.

Routes: ``POST /v1/chat/completions`` (non-streaming, and ``stream: true`` as server-sent events in
OpenAI's chunk format; the answer is generated whole and then sent as one content chunk), ``GET
/v1/models``, ``GET /v1/models/{id}``, ``GET /health`` (no key needed), ``GET /stats`` (the batches run so
far, by size). Every error is OpenAI's error object with a fitting status: 400 a request that is wrong,
401 a missing or wrong key, 403 a file URL outside the audio root, 404 an unknown model or route, 413 a
body over the limit, 415 a body that is not JSON, 503 a full queue or a server shutting down, 500 a failure
of the model. Neither bodies nor keys are logged.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from llaso.serve.batcher import Batcher, Refused
from llaso.serve.config import ServeConfig
from llaso.serve.engine import Completion, Outcome
from llaso.serve.parsing import ApiError, ChatRequest, bad, parse_chat

log = logging.getLogger(__name__)

DRAIN_FACTOR = 4  # a body up to this many times the limit is drained before its 413
RunBatch = Callable[[Sequence[ChatRequest]], Sequence[Outcome]]


class ClientGone(Exception):
    """The client hung up before its answer was ready."""


def create_app(run: RunBatch, config: ServeConfig) -> FastAPI:
    """The app; `run` answers one batch (`Engine.run`), called from the batcher's thread only."""
    config.check()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        batcher: Batcher[ChatRequest, Outcome] = Batcher(
            run, max_batch=config.max_batch, max_wait=config.max_wait_ms / 1000, max_queue=config.max_queue
        )
        app.state.batcher = batcher
        try:
            yield
        finally:  # uvicorn has let in-flight requests finish; what is still queued runs before the end
            await run_in_threadpool(batcher.close)

    app = FastAPI(title="llaso serve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.config = config
    app.state.created = int(time.time())
    _add_error_handlers(app)
    _add_routes(app, config)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse(exc.body(), status_code=exc.status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        error = ApiError(
            exc.status_code, str(exc.detail), code="not_found" if exc.status_code == 404 else None
        )
        return JSONResponse(error.body(), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> Response:
        log.error("request to %s failed: %s: %s", request.url.path, type(exc).__name__, exc)
        error = ApiError(
            500, f"the server failed: {type(exc).__name__}", kind="server_error", code="internal_error"
        )
        return JSONResponse(error.body(), status_code=500)


def _add_routes(app: FastAPI, config: ServeConfig) -> None:
    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        authorize(request, config)
        return {"object": "list", "data": [_model_card(app)]}

    @app.get("/v1/models/{name:path}")
    async def model(request: Request, name: str) -> dict[str, Any]:
        authorize(request, config)
        if name != config.model_name:
            raise ApiError(404, f"the model {name!r} does not exist", param="model", code="model_not_found")
        return _model_card(app)

    @app.get("/stats")
    async def stats(request: Request) -> dict[str, Any]:
        authorize(request, config)
        return dict(app.state.batcher.stats())

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        authorize(request, config)
        raw = await read_body(request, config.limits.max_body_bytes)
        # JSON of megabytes and audio decoding: off the event loop
        chat = await run_in_threadpool(lambda: parse_chat(parse_json(raw), config))
        try:
            outcome = await answer(request, app.state.batcher, chat)
        except ClientGone:
            return Response(status_code=499)  # nobody reads it; uvicorn drops it
        if isinstance(outcome, ApiError):
            raise outcome
        reply = _Reply(config.model_name, outcome)
        if chat.stream:
            return StreamingResponse(reply.events(chat.include_usage), media_type="text/event-stream")
        return JSONResponse(reply.completion())


def _model_card(app: FastAPI) -> dict[str, Any]:
    return {
        "id": app.state.config.model_name,
        "object": "model",
        "created": app.state.created,
        "owned_by": "llaso",
    }


def authorize(request: Request, config: ServeConfig) -> None:
    if config.api_key is None:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    # compare_digest: the time taken does not tell how much of a guessed key was right
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), config.api_key.encode()):
        raise ApiError(401, "a valid API key is needed (Authorization: Bearer KEY)", kind="authentication_error",
                       code="invalid_api_key")  # fmt: skip


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The JSON body's bytes, read no further than ``max_bytes``."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise ApiError(415, f"the body must be application/json, not {ctype or 'untyped'!r}",
                       code="unsupported_media_type")  # fmt: skip
    declared = request.headers.get("content-length", "")
    too_big = ApiError(413, f"the body is larger than this server's limit of {max_bytes} bytes",
                       code="request_too_large")  # fmt: skip
    chunks, size = [], 0
    over = declared.isdigit() and int(declared) > max_bytes
    async for chunk in request.stream():
        size += len(chunk)
        over = over or size > max_bytes
        if not over:
            chunks.append(chunk)
        elif size > DRAIN_FACTOR * max_bytes:
            break
    if over:
        # the rest of a body a little too large is read and dropped, so that the client, still sending it,
        # reads the 413 instead of a reset connection; a body far too large is cut off
        raise too_big
    return b"".join(chunks)


def parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as e:  # RecursionError: arrays nested thousands deep
        raise bad(f"the body is not valid JSON ({type(e).__name__})", code="invalid_json") from None


async def answer(request: Request, batcher: Batcher[ChatRequest, Outcome], chat: ChatRequest) -> Outcome:
    """The outcome of ``chat`` once its batch ran; `ClientGone` (and the request dropped from its batch, if
    that has not started) when the client hangs up first."""
    try:
        future = batcher.submit(chat)
    except Refused as e:
        raise ApiError(503, f"the server cannot take the request now: {e}", kind="server_error",
                       code="unavailable") from None  # fmt: skip
    waiter = asyncio.wrap_future(future)
    gone = asyncio.ensure_future(_disconnected(request))
    both: set[asyncio.Future[Any]] = {waiter, gone}
    try:
        done, _ = await asyncio.wait(both, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if waiter not in done:
        waiter.cancel()  # cancels the batcher's future too, unless its batch is running already
        raise ClientGone
    return waiter.result()


async def _disconnected(request: Request) -> None:
    # the body has been read, so the next message the server gives is the disconnect
    while (await request.receive())["type"] != "http.disconnect":
        pass


class _Reply:
    """A completion in OpenAI's shapes: one response, or the chunks of a stream."""

    def __init__(self, model: str, completion: Completion) -> None:
        self.model, self.c = model, completion
        self.id, self.created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

    def _head(self, kind: str) -> dict[str, Any]:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}

    def usage(self) -> dict[str, int]:
        c = self.c
        return {"prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens,
                "total_tokens": c.prompt_tokens + c.completion_tokens}  # fmt: skip

    def completion(self) -> dict[str, Any]:
        message = {"role": "assistant", "content": self.c.text}
        choice = {"index": 0, "message": message, "finish_reason": self.c.finish_reason, "logprobs": None}
        return {**self._head("chat.completion"), "choices": [choice], "usage": self.usage()}

    async def events(self, include_usage: bool) -> AsyncIterator[str]:
        head = self._head("chat.completion.chunk")
        delta = {"role": "assistant", "content": self.c.text}
        chunks: list[dict[str, Any]] = [
            {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": None, "logprobs": None}]},
            {
                **head,
                "choices": [
                    {"index": 0, "delta": {}, "finish_reason": self.c.finish_reason, "logprobs": None}
                ],
            },
        ]
        if include_usage:
            chunks.append({**head, "choices": [], "usage": self.usage()})
        for chunk in chunks:
            yield f"data: {json.dumps(chunk)}\n\n"
        yield "data: [DONE]\n\n"
