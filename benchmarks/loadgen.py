"""The load generator (``rhaii_nb.measure``) against a fixed-delay server, next to ``hey`` and ``wrk``.

- **Accuracy**: every tool sends the same streaming completion body, ``concurrency`` at a time, to a
  server that answers after exactly ``DELAY_MS``; a tool's p50/p99 overhead is its measured latency
  minus that delay. Target: our p50 overhead ≤ 2 ms and within 1.5× of each established tool's.
- **Capacity**: against the zero-delay path, each tool runs at concurrency 1, 2, 4, … ; its capacity
  is the highest rate it reached while its p50 latency stayed within the 2 ms accuracy budget (past
  that, its own timing no longer says what the server did). Target: ≥ 40 × the guide's 25 req/s.

``hey`` and ``wrk`` come from Debian (``apt-get install -y hey wrk``); a missing tool is reported,
never faked. Each tool gets one core (``hey -cpus 1``, ``wrk -t1``) like our single event loop, and
the server runs in its own process. ``python -m benchmarks.loadgen`` runs this part alone.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import ChildProcess, Figure, ms, percentile
from rhaii_nb import measure

DELAY_MS = 50
ACCURACY_CONCURRENCY = 10  # the guide's parallel test
ACCURACY_SECONDS = 5.0
CAPACITY_LEVELS = (1, 2, 4, 8, 16, 32)
CAPACITY_SECONDS = 2.0
BUDGET_MS = 2.0  # the accuracy target doubles as the "timing still good" bound for capacity
GUIDE_RATE = 25.0
CAPACITY_TARGET = 40 * GUIDE_RATE
PROMPT = "Translate to French: Hello world"
BODY = {
    "model": "/mnt/models",
    "prompt": PROMPT,
    "max_tokens": 10,
    "temperature": 0,
    "stream": True,
    "stream_options": {"include_usage": True},
}
WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = [[%s]]
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH_JSON {\\"requests\\": %%d, \\"duration_us\\": %%d, \\"p50_us\\": %%d, \\"p99_us\\": %%d, "
    .. "\\"errors\\": %%d, \\"non2xx\\": %%d}\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
"""


TOOLS = ("rhaii_nb.measure", "hey", "wrk", "aiohttp loop (reference)", "httpx loop (previous transport)")


@dataclass
class ToolRun:
    """One tool's run at one concurrency: rate and latency percentiles (ms), or why it failed."""

    tool: str
    concurrency: int
    requests: int
    rate: float
    p50_ms: float
    p99_ms: float
    errors: int = 0
    failure: str = ""

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return dict(self.__dict__)


async def _ours_async(url: str, concurrency: int, seconds: float) -> ToolRun:
    endpoint = measure.Endpoint(url, timeout_s=30.0)
    result = await measure.load_async(
        endpoint, [PROMPT], requests=10_000_000, concurrency=concurrency, duration_s=seconds
    )
    ok = result.df[result.df["error"].isna()]["latency_s"].tolist()
    return ToolRun(
        TOOLS[0],
        concurrency,
        len(ok),
        result.req_per_s,
        ms(percentile(ok, 50)),
        ms(percentile(ok, 99)),
        result.failed,
    )


def run_ours(url: str, concurrency: int, seconds: float) -> ToolRun:
    """Our load generator, the way the notebooks use it (streaming, one shared keep-alive client)."""
    return asyncio.run(_ours_async(url, concurrency, seconds))


async def _aiohttp_async(url: str, concurrency: int, seconds: float) -> ToolRun:
    import aiohttp

    latencies: list[float] = []
    errors = 0
    started = time.perf_counter()
    deadline = started + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                begin = time.perf_counter()
                async with session.post(url + "/v1/completions", json=BODY) as response:
                    async for _line in response.content:  # read the SSE stream line by line, as ours does
                        pass
                    if response.status != 200:
                        errors += 1
                        continue
                latencies.append(time.perf_counter() - begin)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - started
    return ToolRun(
        "aiohttp loop (reference)",
        concurrency,
        len(latencies),
        len(latencies) / wall,
        ms(percentile(latencies, 50)),
        ms(percentile(latencies, 99)),
        errors,
    )


def run_aiohttp_reference(url: str, concurrency: int, seconds: float) -> ToolRun:
    """A bare aiohttp closed loop in Python: shows how much of our overhead is the HTTP client library."""
    return asyncio.run(_aiohttp_async(url, concurrency, seconds))


async def _httpx_async(url: str, concurrency: int, seconds: float) -> ToolRun:
    latencies: list[float] = []
    errors = 0
    started = time.perf_counter()
    deadline = started + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    transport = httpx.AsyncHTTPTransport(
        limits=limits, socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
    )
    async with httpx.AsyncClient(transport=transport, timeout=30.0) as client:

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                begin = time.perf_counter()
                async with client.stream("POST", url + "/v1/completions", json=BODY) as response:
                    async for _line in response.aiter_lines():  # to the end: the connection is reused
                        pass
                    if response.status_code != 200:
                        errors += 1
                        continue
                latencies.append(time.perf_counter() - begin)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - started
    return ToolRun(
        TOOLS[4],
        concurrency,
        len(latencies),
        len(latencies) / wall,
        ms(percentile(latencies, 50)),
        ms(percentile(latencies, 99)),
        errors,
    )


def run_httpx_reference(url: str, concurrency: int, seconds: float) -> ToolRun:
    """The transport ``rhaii_nb.measure`` used before (httpx), at its best: TCP_NODELAY on and every
    body read to its end so connections are reused. Shows why the load loop moved to aiohttp."""
    return asyncio.run(_httpx_async(url, concurrency, seconds))


def run_hey(url: str, concurrency: int, seconds: float, body_file: Path) -> ToolRun:
    """``hey`` with per-request CSV output (its exact latencies, not its rounded histogram)."""
    if shutil.which("hey") is None:
        return ToolRun("hey", concurrency, 0, 0, 0, 0, failure="hey not installed (apt-get install -y hey)")
    command = ["hey", "-z", f"{seconds:g}s", "-c", str(concurrency), "-cpus", "1", "-m", "POST"]
    command += ["-T", "application/json", "-D", str(body_file), "-o", "csv", url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    ok = [float(r["response-time"]) for r in rows if r.get("status-code") == "200"]
    if done.returncode != 0 or not ok:
        return ToolRun("hey", concurrency, 0, 0, 0, 0, failure=f"hey failed: {done.stderr.strip()[:300]}")
    span = max(float(r["offset"]) + float(r["response-time"]) for r in rows)
    return ToolRun(
        "hey",
        concurrency,
        len(ok),
        len(ok) / span,
        ms(percentile(ok, 50)),
        ms(percentile(ok, 99)),
        len(rows) - len(ok),
    )


def run_wrk(url: str, concurrency: int, seconds: float, script: Path) -> ToolRun:
    """``wrk`` with one thread; percentiles from its HdrHistogram via a Lua ``done`` hook."""
    if shutil.which("wrk") is None:
        return ToolRun("wrk", concurrency, 0, 0, 0, 0, failure="wrk not installed (apt-get install -y wrk)")
    # wrk takes whole seconds only ("-d1.5s" makes it exit silently with status 1).
    command = ["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "-s", str(script), url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if done.returncode != 0 or line is None:
        return ToolRun(
            "wrk",
            concurrency,
            0,
            0,
            0,
            0,
            failure=f"wrk failed: {(done.stderr or done.stdout).strip()[:300]}",
        )
    data = json.loads(line[len("BENCH_JSON ") :])
    return ToolRun(
        "wrk",
        concurrency,
        data["requests"],
        data["requests"] / (data["duration_us"] / 1e6),
        data["p50_us"] / 1000.0,
        data["p99_us"] / 1000.0,
        data["errors"] + data["non2xx"],
    )


def _server_overshoot(base: str) -> dict[str, Any]:
    return httpx.get(f"{base}/stats", timeout=10).json()


def _reset_overshoot(base: str) -> None:
    httpx.post(f"{base}/stats", timeout=10).raise_for_status()


def _run_tool(
    base: str, path: str, concurrency: int, seconds: float, files: dict[str, Path], index: int
) -> ToolRun:
    """Tool ``index`` of ``TOOLS`` against ``base + path``."""
    url = f"{base}{path}"
    if index == 0:
        return run_ours(url, concurrency, seconds)
    if index == 3:
        return run_aiohttp_reference(url, concurrency, seconds)
    if index == 4:
        return run_httpx_reference(url, concurrency, seconds)
    if index == 1:
        return run_hey(url + "/v1/completions", concurrency, seconds, files["body"])
    return run_wrk(url + "/v1/completions", concurrency, seconds, files["wrk"])


def capacity_of(runs: list[ToolRun]) -> tuple[float, int | None]:
    """Highest rate among runs whose p50 latency stayed within the budget, and its concurrency."""
    good = [r for r in runs if not r.failure and r.requests and r.p50_ms <= BUDGET_MS]
    if not good:
        return 0.0, None
    best = max(good, key=lambda r: r.rate)
    return best.rate, best.concurrency


def run(quick: bool = False) -> dict[str, Any]:
    """Accuracy and capacity of the three tools on one fixed-delay server; figures + raw runs."""
    seconds = ACCURACY_SECONDS / (2 if quick else 1)
    with tempfile.TemporaryDirectory(prefix="rhaii-bench-loadgen-") as tmp:
        files = {"body": Path(tmp) / "body.json", "wrk": Path(tmp) / "post.lua"}
        files["body"].write_text(json.dumps(BODY))
        files["wrk"].write_text(WRK_SCRIPT % json.dumps(BODY))
        with ChildProcess("benchmarks.fixed_server") as server:
            base = f"http://127.0.0.1:{server.ready}"
            # One tool at a time, so the server's sleep overshoot can be read per tool.
            accuracy: list[ToolRun] = []
            overshoot: dict[str, Any] = {}
            for index in range(len(TOOLS)):
                _reset_overshoot(base)
                accuracy.append(
                    _run_tool(base, f"/d/{DELAY_MS}", ACCURACY_CONCURRENCY, seconds, files, index)
                )
                overshoot[accuracy[-1].tool] = _server_overshoot(base)
            capacity: dict[str, list[ToolRun]] = {name: [] for name in TOOLS}
            levels = CAPACITY_LEVELS[:4] if quick else CAPACITY_LEVELS
            for concurrency in levels:
                for index in range(len(TOOLS)):
                    tool_run = _run_tool(base, "/d/0", concurrency, CAPACITY_SECONDS, files, index)
                    capacity[tool_run.tool].append(tool_run)
    return {"figures": figures(accuracy, capacity), "accuracy": accuracy, "capacity": capacity,
            "server_overshoot": overshoot}  # fmt: skip


def _peer_text(runs: list[ToolRun], value: Callable[[ToolRun], float]) -> str:
    return "; ".join(f"{r.tool} {r.failure}" if r.failure else f"{r.tool} {value(r):.2f} ms" for r in runs)


def figures(accuracy: list[ToolRun], capacity: dict[str, list[ToolRun]]) -> list[Figure]:
    """The table rows of this benchmark."""
    ours, peers, references = accuracy[0], accuracy[1:3], accuracy[3:]
    out: list[Figure] = []
    p50 = ours.p50_ms - DELAY_MS
    out.append(
        Figure(
            f"load generator p50 overhead ({DELAY_MS} ms server, c={ACCURACY_CONCURRENCY})",
            None if ours.failure else p50,
            "ms",
            f"≤ {BUDGET_MS:g} ms",
            None if ours.failure else p50 <= BUDGET_MS,
            _peer_text(peers, lambda r: r.p50_ms - DELAY_MS),
            digits=2,
        )
    )
    for peer in peers:
        if peer.failure or ours.failure:
            out.append(Figure(f"p50 overhead vs {peer.tool}", None, "×", "≤ 1.5×", None, note=peer.failure))
            continue
        peer_overhead = max(peer.p50_ms - DELAY_MS, 0.01)  # a tool cannot beat the server: floor at 10 µs
        ratio = p50 / peer_overhead
        out.append(
            Figure(
                f"p50 overhead vs {peer.tool}",
                ratio,
                "×",
                "≤ 1.5×",
                ratio <= 1.5,
                f"{peer.tool} {peer.p50_ms - DELAY_MS:.2f} ms",
                digits=2,
            )
        )
    out.append(
        Figure(
            "load generator p99 overhead",
            None if ours.failure else ours.p99_ms - DELAY_MS,
            "ms",
            "—",
            None,
            _peer_text(peers, lambda r: r.p99_ms - DELAY_MS),
            digits=2,
        )
    )
    for reference in references:
        out.append(
            Figure(
                f"p50 overhead, {reference.tool}",
                None if reference.failure else reference.p50_ms - DELAY_MS,
                "ms",
                "—",
                None,
                f"p99 {reference.p99_ms - DELAY_MS:.2f} ms (diagnosis, see README)",
                digits=2,
            )
        )
    rate, level = capacity_of(capacity["rhaii_nb.measure"])
    peer_caps = []
    for tool in TOOLS[1:]:
        runs = capacity[tool]
        failure = "" if any(not r.failure for r in runs) else runs[0].failure if runs else "not run"
        peer_rate, peer_level = capacity_of(runs)
        peer_caps.append(
            f"{tool} {failure}" if failure else f"{tool} {peer_rate:,.0f} req/s (c={peer_level})"
        )
    out.append(
        Figure(
            f"load generator capacity (p50 ≤ {BUDGET_MS:g} ms, 0 ms server)",
            rate,
            "req/s",
            f"≥ {CAPACITY_TARGET:,.0f} req/s",
            rate >= CAPACITY_TARGET,
            "; ".join(peer_caps),
            note=(f"at concurrency {level}" if level else "p50 above the budget at every level")
            + f"; highest rate at any level {max((r.rate for r in capacity[TOOLS[0]]), default=0):,.0f}",
            digits=0,
        )
    )
    return out


def main() -> int:
    """Run this benchmark alone and print its rows."""
    from benchmarks.common import render_table

    started = time.monotonic()
    result = run()
    print(render_table(result["figures"]))
    for tool, runs in result["capacity"].items():
        print(tool, [(r.concurrency, round(r.rate), round(r.p50_ms, 2)) for r in runs])
    print(f"{time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
