"""app.py

`create_app(pipeline, ...)`: the OpenAI-compatible HTTP API -- `POST /v1/chat/completions` (plain or
`stream: true` as server-sent events), `GET /v1/models`, `GET /health` -- and a chat page at `/`.
Requests are queued and batched by the `Batcher`; every client error is a 4xx OpenAI-style JSON body.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi import Request as HttpRequest
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse

from ..inference import ConvLlavaPipeline
from ..processing import TemplateError
from .batcher import Batcher, Job
from .errors import ApiError
from .page import CHAT_PAGE
from .protocol import ChatCall, ServerLimits, parse_chat_request


def count_prompt_tokens(pipeline: ConvLlavaPipeline, call: ChatCall) -> int:
    try:
        return pipeline.processor.count_prompt_tokens(list(call.request.messages), list(call.request.images))
    except TemplateError as err:
        raise ApiError(400, str(err), "messages") from None


def create_app(
    pipeline: ConvLlavaPipeline,
    model_name: str = "convllava",
    limits: ServerLimits | None = None,
    max_batch_size: int = 8,
    batch_wait_s: float = 0.01,
) -> FastAPI:
    limits = limits or ServerLimits()
    batcher = Batcher(pipeline, max_batch_size=max_batch_size, wait_s=batch_wait_s)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        batcher.close()

    app = FastAPI(title="convllava", docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.batcher = batcher

    @app.exception_handler(ApiError)
    async def api_error(_: HttpRequest, err: ApiError) -> JSONResponse:
        return JSONResponse(err.body(), status_code=err.status)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": model_name, "batches_run": batcher.batches_run}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": model_name, "object": "model", "created": 0, "owned_by": "convllava"}],
        }

    @app.get("/", response_class=HTMLResponse)
    async def page() -> str:
        return CHAT_PAGE.replace("{{MODEL}}", model_name)

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(http: HttpRequest) -> JSONResponse | StreamingResponse:
        declared = int(http.headers.get("content-length") or 0)
        if declared > limits.max_request_bytes:
            raise ApiError(413, f"the request is {declared} bytes, over the limit of {limits.max_request_bytes}")
        raw = await http.body()
        if len(raw) > limits.max_request_bytes:
            raise ApiError(413, f"the request is over the limit of {limits.max_request_bytes} bytes")
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ApiError(400, "the request body is not valid JSON") from None
        call = await asyncio.to_thread(parse_chat_request, body, limits, pipeline.processor.image_token)
        prompt_tokens = count_prompt_tokens(pipeline, call)
        if prompt_tokens > limits.max_prompt_tokens:
            raise ApiError(400, f"the prompt is {prompt_tokens} tokens, over the limit of {limits.max_prompt_tokens}; "
                           "shorten it or send fewer images", "messages", "context_length_exceeded")  # fmt: skip
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        name = call.model or model_name
        if call.stream:
            return StreamingResponse(_sse(batcher, call, completion_id, created, name), media_type="text/event-stream")
        answer = await asyncio.wrap_future(batcher.submit(Job(call.request, call.generation)))
        completion_tokens = len(pipeline.processor.tokenizer(answer, add_special_tokens=False)["input_ids"])
        return JSONResponse({
            "id": completion_id, "object": "chat.completion", "created": created, "model": name,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        })  # fmt: skip

    return app


async def _sse(batcher: Batcher, call: ChatCall, completion_id: str, created: int, model: str) -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    pieces: asyncio.Queue[str | None] = asyncio.Queue()
    job = Job(call.request, call.generation, on_piece=lambda p: loop.call_soon_threadsafe(pieces.put_nowait, p))
    future = batcher.submit(job)
    future.add_done_callback(lambda _: loop.call_soon_threadsafe(pieces.put_nowait, None))

    def chunk(delta: dict[str, str], finish: str | None = None) -> str:
        data = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}  # fmt: skip
        return f"data: {json.dumps(data)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    while (piece := await pieces.get()) is not None:
        if piece:
            yield chunk({"content": piece})
    if future.exception() is not None:
        error = ApiError(500, f"generation failed: {future.exception()}").body()
        yield f"data: {json.dumps(error)}\n\n"
    else:
        yield chunk({}, "stop")
    yield "data: [DONE]\n\n"
