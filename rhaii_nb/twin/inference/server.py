"""The vLLM-like replica server: vLLM's OpenAI-compatible HTTP API over the engine and prefix cache.

Endpoints (as vLLM's ``api_server``): ``GET /health``, ``GET /v1/models``, ``POST /v1/completions``,
``POST /v1/chat/completions`` (JSON or SSE streaming ending with ``data: [DONE]``), ``GET /metrics``
(``?name[]=<family>`` keeps only those families, as prometheus_client's exposition does),
and the development endpoint ``POST /reset_prefix_cache``. Errors use vLLM's body
``{"error": {"message", "type", "param", "code"}}``. Responses carry ``x-inference-pod`` naming the
replica, as llm-d-inference-sim does (the gateway adds ``x-rhaii-replica``).

Usage::

    server = ReplicaServer("cpu-test", replica_name="pod-a")
    port = await server.start("127.0.0.1", 0, ssl_context=None)
    ...
    await server.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from rhaii_nb.twin.inference import textgen, tokenizer
from rhaii_nb.twin.inference.engine import Engine, EngineFull, EngineRequest
from rhaii_nb.twin.inference.metrics import ReplicaMetrics
from rhaii_nb.twin.inference.prefix_cache import PrefixCache
from rhaii_nb.twin.inference.profiles import DEFAULT_PROFILE, Profile, get_profile

DEFAULT_MODEL_ID = "/mnt/models"


@dataclass
class ReplicaState:
    """Everything one replica app owns."""

    profile: Profile
    model_id: str
    served_names: tuple[str, ...]
    replica_name: str
    seed: int
    cache: PrefixCache
    engine: Engine
    metrics: ReplicaMetrics
    created: int


STATE_KEY = web.AppKey("rhaii_replica_state", ReplicaState)


class RequestError(Exception):
    """A bad request, turned into vLLM's error body."""

    def __init__(self, status: int, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param


_ERROR_TYPES = {400: "BadRequestError", 404: "NotFoundError", 429: "TooManyRequestsError",
                503: "ServiceUnavailableError"}  # fmt: skip


def error_response(status: int, message: str, param: str | None = None) -> web.Response:
    """vLLM's error body."""
    body = {"error": {"message": message, "type": _ERROR_TYPES.get(status, "InternalServerError"),
                      "param": param, "code": status}}  # fmt: skip
    return web.json_response(body, status=status)


@dataclass
class ParsedRequest:
    """A validated completion or chat request."""

    chat: bool
    prompt_text: str
    token_ids: list[int]
    max_tokens: int
    stream: bool
    include_usage: bool
    ignore_eos: bool
    min_tokens: int
    cache_salt: str | None


def _int_field(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(400, f"{name} must be an integer, got {value!r}.", name)
    return value


def _prompt_of(body: dict[str, Any]) -> tuple[str, list[int]]:
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (str, list)):
        prompt = prompt[0]  # a batch of one
    if isinstance(prompt, str):
        if not prompt:
            raise RequestError(400, "prompt must not be empty.", "prompt")
        return prompt, tokenizer.encode(prompt)
    if (
        isinstance(prompt, list)
        and prompt
        and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt)
    ):
        if any(t < 0 or t >= tokenizer.VOCAB_SIZE for t in prompt):
            raise RequestError(400, f"token ids must be in [0, {tokenizer.VOCAB_SIZE}).", "prompt")
        return " ".join(map(str, prompt)), list(prompt)
    if isinstance(prompt, list) and len(prompt) > 1:
        raise RequestError(
            400, "this server accepts one prompt per request; send the prompts separately.", "prompt"
        )
    raise RequestError(400, "prompt must be a string or a list of token ids.", "prompt")


def _messages_of(body: dict[str, Any]) -> str:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise RequestError(400, "messages must be a non-empty list of {role, content} objects.", "messages")
    try:
        return tokenizer.apply_chat_template(messages)
    except ValueError as exc:
        raise RequestError(400, str(exc), "messages") from None


def parse_request(body: Any, state: ReplicaState, *, chat: bool) -> ParsedRequest:
    """Validate a request body the way vLLM does; ``RequestError`` says what to fix."""
    if not isinstance(body, dict):
        raise RequestError(400, "The request body must be a JSON object.")
    model = body.get("model")
    if model not in state.served_names:
        raise RequestError(404, f"The model `{model}` does not exist.", "model")
    if chat:
        prompt_text = _messages_of(body)
        token_ids = tokenizer.encode(prompt_text)
    else:
        prompt_text, token_ids = _prompt_of(body)  # tokenized once: ~1 ms per 1,500 tokens
    n = _int_field(body, "n")
    if n not in (None, 1):
        raise RequestError(400, "n must be 1 on this server.", "n")
    limit = state.profile.max_model_len
    num_tokens = len(token_ids)
    if num_tokens >= limit:
        raise RequestError(
            400,
            f"This model's maximum context length is {limit} tokens. However, your request has "
            f"{num_tokens} input tokens. Please reduce the length of the input messages.",
            "messages" if chat else "prompt",
        )
    field = (
        "max_completion_tokens" if chat and body.get("max_completion_tokens") is not None else "max_tokens"
    )
    max_tokens = _int_field(body, field)
    if max_tokens is None:
        max_tokens = limit - num_tokens
    elif max_tokens < 1:
        raise RequestError(400, f"max_tokens must be at least 1, got {max_tokens}.", field)
    elif num_tokens + max_tokens > limit:
        raise RequestError(
            400,
            f"'max_tokens' or 'max_completion_tokens' is too large: {max_tokens}. This model's maximum "
            f"context length is {limit} tokens and your request has {num_tokens} input tokens "
            f"({max_tokens} > {limit} - {num_tokens}).",
            field,
        )
    stream = body.get("stream", False)
    options = body.get("stream_options") or {}
    if not isinstance(stream, bool) or not isinstance(options, dict):
        raise RequestError(400, "stream must be true or false and stream_options an object.", "stream")
    cache_salt = body.get("cache_salt")
    if cache_salt is not None and not isinstance(cache_salt, str):
        raise RequestError(400, "cache_salt must be a string.", "cache_salt")
    return ParsedRequest(
        chat=chat,
        prompt_text=prompt_text,
        token_ids=token_ids,
        max_tokens=max_tokens,
        stream=stream,
        include_usage=bool(options.get("include_usage", False)),
        ignore_eos=bool(body.get("ignore_eos", False)),
        min_tokens=_int_field(body, "min_tokens") or 0,
        cache_salt=cache_salt,
    )


def _usage(request: EngineRequest) -> dict[str, Any]:
    prompt = request.num_prompt_tokens
    return {
        "prompt_tokens": prompt,
        "total_tokens": prompt + request.emitted,
        "completion_tokens": request.emitted,
        "prompt_tokens_details": {"cached_tokens": request.cached_tokens},
    }


def _choice(
    parsed: ParsedRequest, text: str, finish_reason: str | None, *, delta: dict | None = None
) -> dict:
    if parsed.chat:
        choice: dict[str, Any] = {"index": 0}
        if delta is not None:
            choice["delta"] = delta
        else:
            choice["message"] = {
                "role": "assistant",
                "content": text,
                "tool_calls": [],
                "reasoning_content": None,
            }
        choice.update({"logprobs": None, "finish_reason": finish_reason, "stop_reason": None})
        return choice
    return {"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason, "stop_reason": None}


class _Handlers:
    def __init__(self, state: ReplicaState) -> None:
        self.state = state

    def _headers(self) -> dict[str, str]:
        return {"x-inference-pod": self.state.replica_name}

    async def health(self, _: web.Request) -> web.Response:
        return web.Response(status=200, headers=self._headers())

    async def models(self, _: web.Request) -> web.Response:
        state = self.state
        data = [
            {
                "id": name,
                "object": "model",
                "created": state.created,
                "owned_by": "vllm",
                "root": state.model_id,
                "parent": None,
                "max_model_len": state.profile.max_model_len,
                "permission": [],
            }
            for name in state.served_names
        ]
        return web.json_response({"object": "list", "data": data}, headers=self._headers())

    async def metrics(self, request: web.Request) -> web.Response:
        body, content_type = self.state.metrics.exposition(request.query.getall("name[]", []))
        response = web.Response(body=body, headers=self._headers())
        response.headers["Content-Type"] = content_type
        return response

    async def reset_prefix_cache(self, _: web.Request) -> web.Response:
        self.state.cache.reset()
        return web.Response(status=200, headers=self._headers())

    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=False)

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=True)

    async def _generate(self, request: web.Request, *, chat: bool) -> web.StreamResponse:
        state = self.state
        try:
            try:
                body = await request.json(loads=json.loads)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise RequestError(400, f"JSON decode error: {exc}") from None
            parsed = parse_request(body, state, chat=chat)
            engine_request = self._engine_request(parsed)
            if state.profile.request_overhead_s > 0:
                await asyncio.sleep(state.profile.request_overhead_s)
            engine_request.arrival = time.monotonic()
            state.engine.submit(engine_request)
        except RequestError as exc:
            return error_response(exc.status, exc.message, exc.param)
        except EngineFull as exc:
            return error_response(429, f"Failed to enqueue request: {exc}. Retry later.")
        except RuntimeError as exc:  # engine stopped
            return error_response(503, f"The server is not ready: {exc}")
        prefix = "chatcmpl-" if chat else "cmpl-"
        request_id = prefix + uuid.uuid4().hex
        try:
            if parsed.stream:
                return await self._stream(request, parsed, engine_request, request_id)
            pieces = [piece async for piece in engine_request.stream()]
            if engine_request.finish_reason == "abort":
                return error_response(503, "The request was aborted because the server is shutting down.")
            return web.json_response(self._full_body(parsed, engine_request, request_id, "".join(pieces)),
                                     headers=self._headers())  # fmt: skip
        finally:
            state.engine.abort(engine_request)  # no-op when it finished

    def _engine_request(self, parsed: ParsedRequest) -> EngineRequest:
        state = self.state
        answer = textgen.generate(parsed.prompt_text, seed=state.seed, min_tokens=parsed.min_tokens)
        output, finish_reason = answer.take(parsed.max_tokens, ignore_eos=parsed.ignore_eos)
        total_blocks = state.cache.blocks_for(len(parsed.token_ids) + len(output))
        if total_blocks > state.cache.num_blocks:
            raise RequestError(
                400,
                f"The request needs {total_blocks} KV blocks but the replica has {state.cache.num_blocks}; "
                "shorten the prompt or max_tokens.",
            )
        return EngineRequest(
            request_id=uuid.uuid4().hex,
            token_ids=parsed.token_ids,
            block_hashes=state.cache.hash_blocks(parsed.token_ids, parsed.cache_salt),
            output=output,
            finish_reason=finish_reason,
        )

    def _full_body(self, parsed: ParsedRequest, request: EngineRequest, request_id: str, text: str) -> dict:
        return {
            "id": request_id,
            "object": "chat.completion" if parsed.chat else "text_completion",
            "created": int(time.time()),
            "model": self.state.served_names[0],
            "choices": [_choice(parsed, text, request.finish_reason)],
            "usage": _usage(request),
            "system_fingerprint": None,
            "prompt_logprobs": None,
            "kv_transfer_params": None,
        }

    async def _stream(
        self, http: web.Request, parsed: ParsedRequest, request: EngineRequest, request_id: str
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", **self._headers()}
        )
        await response.prepare(http)
        created = int(time.time())
        model = self.state.served_names[0]
        kind = "chat.completion.chunk" if parsed.chat else "text_completion"

        async def send(choices: list[dict], usage: dict | None = None, with_usage: bool = False) -> None:
            chunk: dict[str, Any] = {"id": request_id, "object": kind, "created": created, "model": model,
                                     "choices": choices}  # fmt: skip
            if with_usage or parsed.include_usage:
                chunk["usage"] = usage
            await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")

        if parsed.chat:
            await send([_choice(parsed, "", None, delta={"role": "assistant", "content": ""})])
        sent = 0
        async for piece in request.stream():
            sent += 1
            finish = request.finish_reason if sent == len(request.output) else None
            if parsed.chat:
                await send([_choice(parsed, "", finish, delta={"content": piece})])
            else:
                await send([_choice(parsed, piece, finish)])
        if request.finish_reason == "abort":
            with contextlib.suppress(ConnectionError):
                await response.write(b'data: {"error": {"message": "aborted: server shutting down"}}\n\n')
        elif parsed.include_usage:
            await send([], _usage(request), with_usage=True)
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


def create_replica_app(
    profile: Profile | str = DEFAULT_PROFILE,
    *,
    model_id: str = DEFAULT_MODEL_ID,
    served_name: str | list[str] | None = None,
    seed: int = 0,
    replica_name: str = "replica",
) -> web.Application:
    """An aiohttp application serving one vLLM-like replica.

    ``served_name`` adds names the model answers to (vLLM's ``--served-model-name``); without it the
    model is known only by ``model_id`` (``/mnt/models`` as in the guide). ``seed`` fixes the
    generated text, the jitter and the cache's hash seed.
    """
    profile = get_profile(profile)
    names = [served_name] if isinstance(served_name, str) else list(served_name or [])
    served = tuple(names or [model_id])
    cache = PrefixCache(profile.num_kv_blocks, profile.block_size, hash_seed=seed, model=served[0])
    metrics = ReplicaMetrics(served[0], block_size=profile.block_size, num_blocks=profile.num_kv_blocks)
    engine = Engine(profile, cache, seed=seed, metrics=metrics)
    metrics.bind_gauges(lambda: engine.num_running, lambda: engine.num_waiting, lambda: cache.usage)
    state = ReplicaState(
        profile, model_id, served, replica_name, seed, cache, engine, metrics, int(time.time())
    )
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app[STATE_KEY] = state
    handlers = _Handlers(state)
    app.router.add_get("/health", handlers.health)
    app.router.add_get("/v1/models", handlers.models)
    app.router.add_get("/metrics", handlers.metrics)
    app.router.add_post("/v1/completions", handlers.completions)
    app.router.add_post("/v1/chat/completions", handlers.chat_completions)
    app.router.add_post("/reset_prefix_cache", handlers.reset_prefix_cache)

    async def start_engine(_: web.Application) -> None:
        await engine.start()

    async def stop_engine(_: web.Application) -> None:
        await engine.stop()

    app.on_startup.append(start_engine)
    app.on_shutdown.append(stop_engine)
    app.on_cleanup.append(stop_engine)
    return app


class ReplicaServer:
    """One replica listening on a socket (HTTP, or HTTPS with the ``ssl_context`` given to ``start``)."""

    def __init__(self, app_or_profile: web.Application | Profile | str = DEFAULT_PROFILE, **app_options: Any):
        if isinstance(app_or_profile, web.Application):
            if app_options:
                raise TypeError(
                    "pass options to create_replica_app, not to ReplicaServer, when giving an app"
                )
            self.app = app_or_profile
        else:
            self.app = create_replica_app(app_or_profile, **app_options)
        self._runner: web.AppRunner | None = None
        self.host: str | None = None
        self.port: int | None = None
        self.scheme = "http"

    @property
    def state(self) -> ReplicaState:
        """The replica's profile, cache, engine and metrics."""
        return self.app[STATE_KEY]

    @property
    def cache(self) -> PrefixCache:
        """The replica's prefix cache (for tests, benchmarks and the gateway's oracle picker)."""
        return self.state.cache

    @property
    def engine(self) -> Engine:
        """The replica's engine."""
        return self.state.engine

    @property
    def profile(self) -> Profile:
        """The replica's profile."""
        return self.state.profile

    @property
    def base_url(self) -> str:
        """``http(s)://host:port`` once started."""
        if self.port is None:
            raise RuntimeError("replica server not started")
        return f"{self.scheme}://{self.host}:{self.port}"

    def reset(self) -> None:
        """Drop the prefix cache (what a pod restart does)."""
        self.cache.reset()

    async def start(
        self, host: str = "127.0.0.1", port: int = 0, ssl_context: ssl.SSLContext | None = None
    ) -> int:
        """Listen on ``host:port`` (0 picks a free port); returns the port."""
        if self._runner is not None:
            raise RuntimeError("replica server already started")
        runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context, backlog=1024)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.host = host
        self.port = int(runner.addresses[0][1])
        self.scheme = "https" if ssl_context is not None else "http"
        return self.port

    async def stop(self) -> None:
        """Stop serving: in-flight requests end (aborted), the socket closes, the cache is gone."""
        if self._runner is None:
            return
        await self.engine.stop()
        runner, self._runner = self._runner, None
        await runner.cleanup()
