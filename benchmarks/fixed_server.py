"""An OpenAI-shaped server that answers after a known, fixed delay: the ruler for load generators.

``POST /d/<ms>/v1/completions`` sleeps ``<ms>`` milliseconds, then answers like vLLM: a JSON
completion, or (with ``"stream": true`` in the body) the same as SSE chunks ending with
``data: [DONE]``. ``/d/0/...`` answers at once (the capacity test). ``GET /stats`` gives how much
the server's own sleeps overshot the nominal delay (asyncio's timer granularity), ``POST /stats``
resets it.

Run as a child process (``python -m benchmarks.fixed_server``): prints ``READY <port>`` and serves
until its stdin closes.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from aiohttp import web

from benchmarks.common import percentile

_CHUNK = {
    "id": "cmpl-bench",
    "object": "text_completion",
    "created": 0,
    "model": "/mnt/models",
    "choices": [{"index": 0, "text": " ok", "logprobs": None, "finish_reason": None}],
}
_USAGE = {"prompt_tokens": 8, "completion_tokens": 1, "total_tokens": 9, "prompt_tokens_details": None}
_LAST = {**_CHUNK, "choices": [{"index": 0, "text": "", "logprobs": None, "finish_reason": "length"}]}
SSE_BODY = (
    f"data: {json.dumps(_CHUNK)}\n\ndata: {json.dumps({**_LAST, 'usage': _USAGE})}\n\ndata: [DONE]\n\n"
).encode()
JSON_BODY = json.dumps(
    {**_CHUNK, "choices": [{**_CHUNK["choices"][0], "finish_reason": "length"}], "usage": _USAGE}
).encode()
OVERSHOOT = web.AppKey("overshoot", list)


async def completions(request: web.Request) -> web.Response:
    """Sleep the path's delay, then answer (SSE when the body asks to stream)."""
    try:
        delay_s = int(request.match_info["ms"]) / 1000.0
    except ValueError:
        return web.json_response({"error": {"message": "delay must be whole milliseconds"}}, status=400)
    body = await request.read()
    started = time.perf_counter()
    if delay_s > 0:
        await asyncio.sleep(delay_s)
        request.app[OVERSHOOT].append(time.perf_counter() - started - delay_s)
    if b'"stream": true' in body or b'"stream":true' in body:
        return web.Response(body=SSE_BODY, content_type="text/event-stream")
    return web.Response(body=JSON_BODY, content_type="application/json")


async def stats(request: web.Request) -> web.Response:
    """GET: the sleeps' overshoot percentiles in ms; POST: reset them."""
    values = request.app[OVERSHOOT]
    if request.method == "POST":
        values.clear()
        return web.json_response({"reset": True})
    return web.json_response(
        {
            "count": len(values),
            "overshoot_p50_ms": percentile(values, 50) * 1000 if values else None,
            "overshoot_p99_ms": percentile(values, 99) * 1000 if values else None,
        }
    )


def create_app() -> web.Application:
    """The fixed-delay application."""
    app = web.Application()
    app[OVERSHOOT] = []
    app.router.add_post("/d/{ms}/v1/completions", completions)
    app.router.add_route("*", "/stats", stats)
    return app


async def serve() -> None:
    """Serve on a free port of 127.0.0.1 until stdin closes."""
    runner = web.AppRunner(create_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
    await site.start()
    print(f"READY {runner.addresses[0][1]}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(serve())
