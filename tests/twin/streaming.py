"""Timing one streamed completion, shared by the replica and gateway tests of the prefix cache."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import httpx

from rhaii_nb.twin.inference.profiles import Profile


@dataclass
class StreamTiming:
    """What one streamed completion showed: time to its first token and its usage."""

    first_s: float
    cached: int
    prompt_tokens: int
    replica: str  # the gateway's x-rhaii-replica header ("" when talking to a replica directly)


async def stream_ttft(
    client: httpx.AsyncClient, url: str, prompt: str, model: str = "/mnt/models"
) -> StreamTiming:
    """Stream one 4-token completion from ``url`` and time its first token."""
    payload = {"model": model, "prompt": prompt, "max_tokens": 4, "stream": True,
               "stream_options": {"include_usage": True}}  # fmt: skip
    started = time.perf_counter()
    first = None
    cached = prompt_tokens = -1
    async with client.stream("POST", url, json=payload) as response:
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk["choices"] and first is None:
                first = time.perf_counter() - started
            if chunk.get("usage"):
                cached = chunk["usage"]["prompt_tokens_details"]["cached_tokens"]
                prompt_tokens = chunk["usage"]["prompt_tokens"]
    assert first is not None
    return StreamTiming(first, cached, prompt_tokens, response.headers.get("x-rhaii-replica", ""))


def modelled_prefill_s(profile: Profile, prompt_tokens: int, cached: int) -> float:
    """The prefill step a replica's engine sleeps (before jitter) for this request alone."""
    return profile.prefill_base_s + (prompt_tokens - cached) / profile.prefill_tokens_per_s
