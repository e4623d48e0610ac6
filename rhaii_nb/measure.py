"""Measuring the service the way the guide does — and better: cache test, throughput, TTFT, sweeps.

Every helper talks plain OpenAI-compatible HTTP with one shared ``aiohttp.ClientSession`` (HTTP/1.1
keep-alive, TCP_NODELAY, a pool sized to the concurrency), so it runs unchanged against real vLLM
behind the real gateway and against the twin: only ``base_url`` (which may carry a path prefix such
as ``http://GATEWAY/rhaii-inference/qwen-3b-tpu-svc``) and the TLS ``verify`` setting differ.

Why aiohttp and not httpx (measured, ``benchmarks/loadgen.py``): httpx costs ~1.2 ms of client CPU
per request here against ~0.3 ms for aiohttp, and its pool adds tens of ms under concurrency
(encode/httpx#3215), which a load generator's latencies would include. Every response body is read
to its end, even after ``data: [DONE]``: a connection given back with unread bytes is closed, and
each request would then pay a new TCP (and TLS) handshake. TLS verification is built by httpx's
``create_ssl_context``, so ``verify`` means exactly what it meant with httpx.

Each call is synchronous for notebooks (``asyncio.run``, or a worker thread when Jupyter's loop
is running); the ``*_async`` versions are the real implementations. Every request becomes one row
of a pandas DataFrame (``RECORD_COLUMNS``); results are small dataclasses with ``.df`` and a
``summary()`` dict that a success-criteria cell can check.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import math
import ssl
import time
import uuid
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

import aiohttp
import httpx
import pandas as pd

from rhaii_nb.workload import GUIDE_SHORT_PROMPT, cache_note, default_cache_prompt, long_prefix

T = TypeVar("T")
VerifyType = bool | str | ssl.SSLContext
DEFAULT_MODEL = "/mnt/models"
REPLICA_HEADER = "x-rhaii-replica"
FALLBACK_REPLICA_HEADERS = ("x-inference-pod", "x-gateway-destination-endpoint")
RECORD_COLUMNS = [
    "i",
    "t_start",
    "latency_s",
    "ttft_s",
    "status",
    "replica",
    "prompt_tokens",
    "cached_tokens",
    "completion_tokens",
    "hit",
    "error",
    "label",
]


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, also inside a running loop (Jupyter)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="rhaii-measure") as pool:
        return pool.submit(asyncio.run, coro).result()


def tls_verify(verify: VerifyType) -> bool | ssl.SSLContext:
    """httpx's ``verify`` from ours: a CA bundle path becomes an SSL context trusting that CA."""
    if isinstance(verify, str):
        return ssl.create_default_context(cafile=verify)
    return verify


def ssl_context(verify: VerifyType) -> ssl.SSLContext:
    """The client SSL context for ``verify``, built exactly as httpx builds it: ``True`` trusts
    ``SSL_CERT_FILE``/``SSL_CERT_DIR`` if set, else certifi's bundle; ``False`` checks nothing; a path
    trusts that CA bundle; an ``SSLContext`` is used as it is."""
    return httpx.create_ssl_context(verify=tls_verify(verify))


def env_proxy(url: str) -> str | None:
    """The proxy the environment gives ``url`` as httpx reads it (``HTTPS_PROXY``/``HTTP_PROXY``, else
    ``ALL_PROXY``; none for hosts in ``NO_PROXY``), credentials in the URL.

    Looked up once per client: aiohttp's ``trust_env`` looks it up (and ``~/.netrc``) in a worker
    thread on every request, which a load generator's latencies would include."""
    host = urlsplit(url).hostname
    if host and proxy_bypass(host):
        return None
    proxies = getproxies()
    return proxies.get(urlsplit(url).scheme) or proxies.get("all")


@dataclass(frozen=True)
class Endpoint:
    """Where and how to reach the OpenAI-compatible service."""

    base_url: str
    model: str = DEFAULT_MODEL
    verify: VerifyType = True
    headers: Mapping[str, str] = field(default_factory=dict)
    replica_header: str = REPLICA_HEADER
    timeout_s: float = 60.0

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {self.base_url!r}")
        if self.verify is False and self.base_url.startswith("https://"):
            # Loud on purpose: the guide's `curl -k` habit is what this project replaces.
            import warnings

            warnings.warn(
                f"TLS verification is OFF for {self.base_url}; pass verify=<CA bundle path> instead.",
                stacklevel=3,
            )

    def url(self, path: str) -> str:
        """Full URL of an API path such as ``/v1/completions``."""
        return self.base_url.rstrip("/") + "/" + path.lstrip("/")

    def client(self, concurrency: int = 1) -> aiohttp.ClientSession:
        """One shared keep-alive client with a pool sized to ``concurrency`` (call it inside a running
        event loop; use it as ``async with endpoint.client(n) as client``).

        Timeouts as before: ``timeout_s`` to get a connection from the pool and between two reads,
        at most 10 s to connect."""
        https = self.base_url.startswith("https://")
        connector = aiohttp.TCPConnector(
            limit=max(1, concurrency), limit_per_host=0, ssl=ssl_context(self.verify) if https else True
        )
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=self.timeout_s,
            sock_connect=min(10.0, self.timeout_s),
            sock_read=self.timeout_s,
        )
        return aiohttp.ClientSession(
            connector=connector,
            headers=dict(self.headers),
            timeout=timeout,
            proxy=env_proxy(self.base_url),
        )


def _endpoint(base_url: str | Endpoint, model: str, options: Mapping[str, Any]) -> Endpoint:
    if isinstance(base_url, Endpoint):
        if options:
            raise TypeError(f"options {sorted(options)} go into the Endpoint, not the call")
        return base_url
    return Endpoint(base_url, model, **options)


def _error_text(status: int, body: bytes) -> str:
    try:
        data = json.loads(body)
        error = data.get("error", data)
        message = error.get("message") if isinstance(error, dict) else str(error)
    except (ValueError, AttributeError):
        message = body.decode("utf-8", "replace")[:200]
    return f"HTTP {status}: {message}"


def _replica_of(headers: Mapping[str, str], header: str) -> str | None:
    for name in (header, *FALLBACK_REPLICA_HEADERS):
        if name in headers:
            return headers[name]
    return None


def _transport_error(exc: BaseException) -> str:
    """A transport failure as ``Kind: message``, with the kinds httpx used (stable error texts)."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        kind = "ConnectTimeout"
    elif isinstance(exc, aiohttp.ClientConnectorError):
        kind = "ConnectError"
    elif isinstance(exc, TimeoutError):
        kind = "ReadTimeout"
    elif isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError)):
        kind = "RemoteProtocolError"
    else:
        kind = type(exc).__name__
    return f"{kind}: {exc or type(exc).__name__}"


class _StreamTally:
    """What the SSE events of a streamed completion said: time to the first text, whether choices
    came, the usage, a stream error, and whether ``data: [DONE]`` was seen."""

    def __init__(self) -> None:
        self.ttft_s = math.nan
        self.has_choices = False
        self.usage: dict[str, Any] | None = None
        self.error: str | None = None
        self.done = False

    def feed(self, line: bytes, elapsed_s: float) -> None:
        """One line of the body, which arrived ``elapsed_s`` after the request started."""
        if self.done or not line.startswith(b"data:"):
            return
        data = line[5:].strip()
        if data == b"[DONE]":
            self.done = True
            return
        if not math.isnan(self.ttft_s) and b'"usage"' not in data and b'"error"' not in data:
            return  # one more token: nothing left to learn from it, skip decoding it
        chunk = json.loads(data)
        if "error" in chunk:
            self.error = f"stream error: {chunk['error']}"
            self.done = True
            return
        choices = chunk.get("choices") or []
        if choices:
            self.has_choices = True
            first = choices[0]
            if math.isnan(self.ttft_s) and (first.get("text") or (first.get("delta") or {}).get("content")):
                self.ttft_s = elapsed_s
        self.usage = chunk.get("usage") or self.usage


async def request_once(
    client: aiohttp.ClientSession,
    endpoint: Endpoint,
    prompt: str,
    *,
    max_tokens: int = 10,
    stream: bool = True,
    t0: float | None = None,
    index: int = 0,
    label: str = "",
) -> dict[str, Any]:
    """Send one completion; return its record (latency, TTFT, status, replica, usage, error)."""
    payload: dict[str, Any] = {
        "model": endpoint.model,
        "prompt": prompt,
        "max_tokens": max_tokens,
        "temperature": 0,
    }
    if stream:
        payload["stream"] = True
        payload["stream_options"] = {"include_usage": True}
    started = time.perf_counter()
    record: dict[str, Any] = {
        "i": index,
        "t_start": started - (t0 if t0 is not None else started),
        "ttft_s": math.nan,
        "status": 0,
        "replica": None,
        "error": None,
        "label": label,
    }
    usage: dict[str, Any] | None = None
    has_choices = False
    ended: float | None = None  # when the whole answer was in (before the client's own bookkeeping)
    try:
        async with client.post(endpoint.url("/v1/completions"), json=payload) as response:
            record["status"] = response.status
            record["replica"] = _replica_of(response.headers, endpoint.replica_header)
            if response.status != 200:
                record["error"] = _error_text(response.status, await response.read())
            elif stream:
                tally = _StreamTally()
                pending = b""
                # Whole reads split here (cheaper than a readline per event; each event of a read gets
                # the read's arrival time), to the end of the body, also after [DONE], so the
                # connection goes back to the pool open.
                async for data in response.content.iter_any():
                    arrived_s = time.perf_counter() - started
                    *lines, pending = (pending + data).split(b"\n")
                    for line in lines:
                        tally.feed(line, arrived_s)
                tally.feed(pending, time.perf_counter() - started)
                ended = time.perf_counter()
                has_choices, usage, record["ttft_s"] = tally.has_choices, tally.usage, tally.ttft_s
                record["error"] = tally.error
            else:
                body = json.loads(await response.read())
                ended = time.perf_counter()
                has_choices = bool(body.get("choices"))
                usage = body.get("usage")
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        record["error"] = _transport_error(exc)
    record["latency_s"] = (ended if ended is not None else time.perf_counter()) - started
    if record["error"] is None and not has_choices:
        record["error"] = "response has no choices"
    details = (usage or {}).get("prompt_tokens_details") or {}
    cached = details.get("cached_tokens")
    record["prompt_tokens"] = (usage or {}).get("prompt_tokens", math.nan)
    record["completion_tokens"] = (usage or {}).get("completion_tokens", math.nan)
    record["cached_tokens"] = math.nan if cached is None else cached
    record["hit"] = None if cached is None else cached > 0
    return record


def records_frame(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Records → DataFrame with ``RECORD_COLUMNS``, ordered by request index."""
    frame = pd.DataFrame(list(records), columns=RECORD_COLUMNS)
    return frame.sort_values("i", kind="stable").reset_index(drop=True)


def latency_percentiles(df: pd.DataFrame, column: str = "latency_s") -> dict[str, float]:
    """p50/p90/p99 and mean of successful requests (linear interpolation, like numpy)."""
    values = df.loc[df["error"].isna(), column].dropna().astype(float)
    if values.empty:
        return {"p50": math.nan, "p90": math.nan, "p99": math.nan, "mean": math.nan}
    quantiles = values.quantile([0.5, 0.9, 0.99])
    return {
        "p50": float(quantiles[0.5]),
        "p90": float(quantiles[0.9]),
        "p99": float(quantiles[0.99]),
        "mean": float(values.mean()),
    }


# ---- the bounded load loop ----------------------------------------------------------------------
@dataclass
class LoadResult:
    """A finished load run: one row per request plus wall time."""

    df: pd.DataFrame
    wall_s: float
    concurrency: int
    notes: list[str] = field(default_factory=list)

    @property
    def succeeded(self) -> int:
        """Requests answered 200 with choices."""
        return int(self.df["error"].isna().sum())

    @property
    def failed(self) -> int:
        """Requests that failed (HTTP error, transport error or no choices)."""
        return int(self.df["error"].notna().sum())

    @property
    def req_per_s(self) -> float:
        """Completed requests per second of wall time (the guide's throughput)."""
        return self.succeeded / self.wall_s if self.wall_s > 0 else math.nan

    def summary(self) -> dict[str, Any]:
        """Numbers a criteria cell checks: req/s, latency and TTFT percentiles, errors, hit rate."""
        latency = latency_percentiles(self.df)
        ttft = latency_percentiles(self.df, "ttft_s")
        known = self.df["hit"].dropna()
        errors = self.df["error"].dropna().value_counts().to_dict()
        return {
            "requests": len(self.df),
            "succeeded": self.succeeded,
            "failed": self.failed,
            "concurrency": self.concurrency,
            "wall_s": self.wall_s,
            "req_per_s": self.req_per_s,
            "latency_p50_s": latency["p50"],
            "latency_p90_s": latency["p90"],
            "latency_p99_s": latency["p99"],
            "latency_mean_s": latency["mean"],
            "ttft_p50_s": ttft["p50"],
            "ttft_p99_s": ttft["p99"],
            "hit_rate": float(known.astype(bool).mean()) if len(known) else math.nan,
            "replicas": self.df["replica"].dropna().value_counts().to_dict(),
            "errors": errors,
        }


async def load_async(
    endpoint: Endpoint,
    prompts: Sequence[str] | Callable[[int], str],
    *,
    requests: int,
    concurrency: int = 1,
    duration_s: float | None = None,
    max_tokens: int = 10,
    stream: bool = True,
    labels: Sequence[str] | None = None,
) -> LoadResult:
    """Closed-loop load: ``concurrency`` workers send up to ``requests`` requests, stopping early at
    ``duration_s`` (no new request starts after it; in-flight ones end within the request timeout).
    """
    if requests < 1 or concurrency < 1:
        raise ValueError(f"requests ({requests}) and concurrency ({concurrency}) must be at least 1")
    if not callable(prompts) and not prompts:
        raise ValueError("prompts is empty; give at least one prompt")

    def prompt_for(i: int) -> str:
        return prompts(i) if callable(prompts) else prompts[i % len(prompts)]

    records: list[dict[str, Any]] = []
    counter = iter(range(requests))
    progress = _LoadProgress(requests)
    async with endpoint.client(concurrency) as client:
        t0 = time.perf_counter()
        deadline = t0 + duration_s if duration_s is not None else math.inf

        async def worker() -> None:
            for i in counter:
                if time.perf_counter() >= deadline:
                    return
                label = labels[i % len(labels)] if labels else ""
                records.append(
                    await request_once(
                        client,
                        endpoint,
                        prompt_for(i),
                        max_tokens=max_tokens,
                        stream=stream,
                        t0=t0,
                        index=i,
                        label=label,
                    )
                )
                progress.update(records, time.perf_counter() - t0)
                # Responses that arrive together are handled one after another on this loop: let the
                # others take their end time before this worker builds and sends its next request.
                await asyncio.sleep(0)

        # A hard stop even if a server trickles bytes forever: the time bound plus one request timeout.
        budget = (
            duration_s if duration_s is not None else math.ceil(requests / concurrency) * endpoint.timeout_s
        )
        notes: list[str] = []
        tasks = [asyncio.create_task(worker()) for _ in range(min(concurrency, requests))]
        _, pending = await asyncio.wait(tasks, timeout=budget + endpoint.timeout_s + 5)
        for task in pending:
            task.cancel()
        if pending:
            notes.append(
                f"stopped after {budget + endpoint.timeout_s + 5:.0f} s with requests still in flight"
            )
        await asyncio.gather(*tasks, return_exceptions=True)
        wall = time.perf_counter() - t0
    progress.close(records, wall)
    return LoadResult(records_frame(records), wall, concurrency, notes)


class _LoadProgress:
    """One in-place line in a notebook while a load runs longer than a moment (nothing headless).

    ``update`` runs after every request, so it costs O(1) and redraws at most every ``REDRAW_S``:
    the load generator's own time is part of every latency it measures."""

    QUIET_S = 2.0  # a load done within this shows nothing: only long waits get a progress line
    REDRAW_S = 1.0

    def __init__(self, requests: int) -> None:
        from rhaii_nb.display import Live, in_kernel

        self.requests = requests
        self.live = Live(enabled=in_kernel(), min_interval_s=self.REDRAW_S)
        self.shown = False
        self.errors = 0
        self.next_redraw_s = self.QUIET_S

    def _line(self, done: int, seconds: float) -> str:
        from rhaii_nb.display import elapsed

        return f"requests {done}/{self.requests} · errors {self.errors} · {elapsed(seconds)}"

    def update(self, records: list[dict[str, Any]], seconds: float) -> None:
        """Count the newest record; show the count so far once the load has run for ``QUIET_S``."""
        if records and records[-1].get("error") is not None:
            self.errors += 1
        if seconds >= self.next_redraw_s and self.live.enabled:
            self.shown = True
            self.next_redraw_s = seconds + self.REDRAW_S
            self.live.update(self._line(len(records), seconds))

    def close(self, records: list[dict[str, Any]], seconds: float) -> None:
        """The final count, if a line was shown."""
        if self.shown:
            self.live.update(self._line(len(records), seconds))
        self.live.close()


def load(
    base_url: str | Endpoint,
    prompts: Sequence[str] | Callable[[int], str],
    *,
    model: str = DEFAULT_MODEL,
    requests: int = 20,
    concurrency: int = 1,
    duration_s: float | None = None,
    max_tokens: int = 10,
    stream: bool = True,
    labels: Sequence[str] | None = None,
    **endpoint_options: Any,
) -> LoadResult:
    """Synchronous ``load_async`` against ``base_url`` (see ``Endpoint`` for the options)."""
    endpoint = _endpoint(base_url, model, endpoint_options)
    return run_sync(
        load_async(
            endpoint,
            prompts,
            requests=requests,
            concurrency=concurrency,
            duration_s=duration_s,
            max_tokens=max_tokens,
            stream=stream,
            labels=labels,
        )
    )


# ---- the guide's tests --------------------------------------------------------------------------
@dataclass
class CacheTestResult:
    """The guide's cache-routing test: the first request (miss) against the repeats."""

    df: pd.DataFrame
    notes: list[str]

    def _successful(self) -> pd.DataFrame:
        return self.df[self.df["error"].isna()]

    @property
    def first_latency_s(self) -> float:
        """End-to-end latency of the first request."""
        return float(self.df["latency_s"].iloc[0])

    @property
    def rest_mean_latency_s(self) -> float:
        """Mean end-to-end latency of the later successful requests."""
        return float(self._successful()["latency_s"].iloc[1:].mean()) if len(self.df) > 1 else math.nan

    @property
    def speedup_pct(self) -> float:
        """The guide's figure: (1 - mean(rest) / first) x 100."""
        return (1.0 - self.rest_mean_latency_s / self.first_latency_s) * 100.0

    @property
    def ttft_speedup_pct(self) -> float:
        """The same for time to first token (where the cache acts)."""
        ttft = self._successful()["ttft_s"]
        if len(ttft) < 2 or math.isnan(ttft.iloc[0]):
            return math.nan
        return (1.0 - float(ttft.iloc[1:].mean()) / float(ttft.iloc[0])) * 100.0

    def summary(self) -> dict[str, Any]:
        """Numbers a criteria cell checks."""
        rest = self.df.iloc[1:]
        known_hits = rest["hit"].dropna()
        return {
            "requests": len(self.df),
            "failed": int(self.df["error"].notna().sum()),
            "first_latency_s": self.first_latency_s,
            "rest_mean_latency_s": self.rest_mean_latency_s,
            "speedup_pct": self.speedup_pct,
            "first_ttft_s": float(self.df["ttft_s"].iloc[0]),
            "rest_mean_ttft_s": float(rest["ttft_s"].mean()) if len(rest) else math.nan,
            "ttft_speedup_pct": self.ttft_speedup_pct,
            "all_faster_than_first": bool((rest["latency_s"] < self.first_latency_s).all())
            if len(rest)
            else False,
            "hits": int(known_hits.astype(bool).sum()),
            "hit_rate_after_first": float(known_hits.astype(bool).mean()) if len(known_hits) else math.nan,
            "replicas": rest["replica"].dropna().nunique(),
            "notes": list(self.notes),
        }


async def cache_test_async(
    endpoint: Endpoint,
    prompt: str | None = None,
    *,
    requests: int = 10,
    max_tokens: int = 10,
    stream: bool = True,
    block_size: int = 128,
) -> CacheTestResult:
    """Send the same prompt ``requests`` times in a row (the guide's section 3)."""
    if requests < 2:
        raise ValueError(f"requests must be at least 2 (a first request and repeats), got {requests}")
    prompt = prompt if prompt is not None else default_cache_prompt()
    notes = [note] if (note := cache_note(prompt, block_size)) else []
    result = await load_async(
        endpoint, [prompt], requests=requests, concurrency=1, max_tokens=max_tokens, stream=stream
    )
    df = result.df
    df["faster_than_first"] = df["latency_s"] < df["latency_s"].iloc[0]
    df.loc[0, "faster_than_first"] = False
    return CacheTestResult(df, notes)


def cache_test(
    base_url: str | Endpoint,
    model: str = DEFAULT_MODEL,
    prompt: str | None = None,
    requests: int = 10,
    *,
    max_tokens: int = 10,
    stream: bool = True,
    block_size: int = 128,
    **endpoint_options: Any,
) -> CacheTestResult:
    """The guide's cache-routing test: first vs later latency, speed-up %, hits, with a note when the
    prompt cannot hit (default prompt: a ~300-token shared prefix plus the guide's question)."""
    endpoint = _endpoint(base_url, model, endpoint_options)
    return run_sync(
        cache_test_async(
            endpoint, prompt, requests=requests, max_tokens=max_tokens, stream=stream, block_size=block_size
        )
    )


def throughput_test(
    base_url: str | Endpoint,
    model: str = DEFAULT_MODEL,
    requests: int = 20,
    concurrency: int = 10,
    *,
    prompt: str | None = None,
    max_tokens: int = 10,
    duration_s: float | None = 120.0,
    stream: bool = True,
    **endpoint_options: Any,
) -> LoadResult:
    """The guide's throughput test: ``requests`` prompts ``"<prompt> <i>"``, ``concurrency`` at a time;
    req/s, real p50/p90/p99 and errors (``.summary()``). Stops by itself after ``duration_s``."""
    endpoint = _endpoint(base_url, model, endpoint_options)
    base = prompt if prompt is not None else default_cache_prompt()
    result = run_sync(
        load_async(
            endpoint,
            lambda i: f"{base} {i}",
            requests=requests,
            concurrency=concurrency,
            duration_s=duration_s,
            max_tokens=max_tokens,
            stream=stream,
        )
    )
    if (note := cache_note(base)) is not None:
        result.notes.append(note)
    return result


def ttft(
    base_url: str | Endpoint,
    prompt: str = GUIDE_SHORT_PROMPT,
    model: str = DEFAULT_MODEL,
    **endpoint_options: Any,
) -> float:
    """Time to the first generated text of one streaming request, in seconds."""
    endpoint = _endpoint(base_url, model, endpoint_options)
    result = run_sync(load_async(endpoint, [prompt], requests=1, max_tokens=4, stream=True))
    row = result.df.iloc[0]
    if row["error"] is not None:
        raise RuntimeError(f"the TTFT request failed: {row['error']}")
    return float(row["ttft_s"])


# ---- cache behaviour phase ----------------------------------------------------------------------
@dataclass
class SweepResult:
    """Prefix-length sweep: per length, a cold request on a fresh prefix then warm repeats."""

    df: pd.DataFrame  # one row per request, with columns length, role ("cold"/"warm")

    def table(self) -> pd.DataFrame:
        """Per length: cold and median warm TTFT, TTFT cut %, median cached tokens, whether it hit."""
        ok = self.df[self.df["error"].isna()]
        cold = ok[ok["role"] == "cold"].groupby("length")["ttft_s"].median()
        warm_rows = ok[ok["role"] == "warm"].groupby("length")
        warm = warm_rows["ttft_s"].median()
        table = pd.DataFrame({"cold_ttft_s": cold, "warm_ttft_s": warm})
        table["ttft_cut_pct"] = (1.0 - table["warm_ttft_s"] / table["cold_ttft_s"]) * 100.0
        table["cached_tokens"] = warm_rows["cached_tokens"].median()
        table["prompt_tokens"] = warm_rows["prompt_tokens"].median()
        table["hit"] = table["cached_tokens"] > 0
        return table.reset_index()

    def summary(self) -> dict[str, Any]:
        """Where caching starts to pay: the shortest length that hit, the longest that did not, the cut."""
        table = self.table()
        hits = table[table["hit"]]
        misses = table[~table["hit"]]
        longest = table.iloc[-1] if len(table) else None
        return {
            "lengths": [int(v) for v in table["length"]],
            "shortest_hit_length": int(hits["length"].min()) if len(hits) else None,
            "longest_miss_length": int(misses["length"].max()) if len(misses) else None,
            "ttft_cut_at_longest_pct": float(longest["ttft_cut_pct"]) if longest is not None else math.nan,
            "failed": int(self.df["error"].notna().sum()),
        }


async def prefix_sweep_async(
    endpoint: Endpoint, lengths: Sequence[int], *, repeats: int = 3, max_tokens: int = 4
) -> SweepResult:
    """For each prefix length: a fresh prefix (never seen by the server), sent once cold, then
    ``repeats`` times with different questions after it."""
    frames = []
    for length in lengths:
        nonce = uuid.uuid4().hex[:8]
        prefix = long_prefix(length, seed=nonce, label=f"Sweep {nonce}")
        prompts = [f"{prefix} Question {k}: what changes?" for k in range(repeats + 1)]
        result = await load_async(
            endpoint,
            prompts,
            requests=repeats + 1,
            concurrency=1,
            max_tokens=max_tokens,
            labels=["cold"] + ["warm"] * repeats,
        )
        frame = result.df.assign(length=length, role=result.df["label"])
        frames.append(frame)
    return SweepResult(pd.concat(frames, ignore_index=True))


def prefix_sweep(
    base_url: str | Endpoint,
    model: str = DEFAULT_MODEL,
    lengths: Sequence[int] = (64, 128, 256, 512, 1024, 1536),
    *,
    repeats: int = 3,
    max_tokens: int = 4,
    **endpoint_options: Any,
) -> SweepResult:
    """How the cache's gain grows with the shared prefix length (none below one KV block)."""
    endpoint = _endpoint(base_url, model, endpoint_options)
    return run_sync(prefix_sweep_async(endpoint, lengths, repeats=repeats, max_tokens=max_tokens))


# ---- the service of a run -----------------------------------------------------------------------
def gateway_endpoint(session: Any, params: Any, *, model: str | None = None) -> Endpoint:
    """The service behind the inference gateway as an :class:`Endpoint` (model id from ``/v1/models``)."""
    from rhaii_nb.probes import detect_model

    return Endpoint(
        session.service_base_url(),
        model or detect_model(session, params, via="external"),
        timeout_s=getattr(params, "request_timeout_s", 60.0),
    )


@dataclass
class PrefixSpecificResult:
    """The guide's proof that the cache is prefix-specific: prefix A cold, A repeated, then prefix B."""

    df: pd.DataFrame  # one row per request; column ``step``: "A first", "A repeat", "B first"

    def _ttft(self, step: str) -> float:
        rows = self.df[(self.df["step"] == step) & self.df["error"].isna()]
        return float(rows["ttft_s"].median()) if len(rows) else math.nan

    def summary(self) -> dict[str, Any]:
        """TTFTs of each step and the two ratios a criteria cell checks."""
        a_first, a_repeat, b_first = self._ttft("A first"), self._ttft("A repeat"), self._ttft("B first")
        return {
            "prompt_tokens": float(self.df["prompt_tokens"].median()),
            "a_first_ttft_s": a_first,
            "a_repeat_ttft_s": a_repeat,
            "b_first_ttft_s": b_first,
            "repeat_ttft_cut_pct": (1.0 - a_repeat / a_first) * 100.0,
            "b_vs_repeat_ratio": b_first / a_repeat,
            "repeat_cached_tokens": float(self.df[self.df["step"] == "A repeat"]["cached_tokens"].median()),
            "b_cached_tokens": float(self.df[self.df["step"] == "B first"]["cached_tokens"].iloc[0]),
            "failed": int(self.df["error"].notna().sum()),
        }


def prefix_specific_test(
    endpoint: Endpoint, *, prefix_tokens: int = 1500, repeats: int = 4, max_tokens: int = 4
) -> PrefixSpecificResult:
    """Prefix A (fresh, ``prefix_tokens`` long: many KV blocks) once cold, ``repeats`` times again with
    other questions, then a different prefix B of the same length: A repeats are fast, B is slow again."""
    nonce = uuid.uuid4().hex[:8]
    prefix_a = long_prefix(prefix_tokens, seed=nonce, label=f"Handbook A {nonce}")
    prefix_b = long_prefix(prefix_tokens, seed=nonce, label=f"Handbook B {nonce}")
    prompts = [f"{prefix_a} Question {k}: what applies here?" for k in range(repeats + 1)]
    prompts.append(f"{prefix_b} Question 0: what applies here?")
    steps = ["A first"] + ["A repeat"] * repeats + ["B first"]
    result = run_sync(
        load_async(
            endpoint, prompts, requests=len(prompts), concurrency=1, max_tokens=max_tokens, labels=steps
        )
    )
    return PrefixSpecificResult(result.df.assign(step=result.df["label"]))
