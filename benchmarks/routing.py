"""Routing quality on a shared-prefix workload: round-robin vs the twin's EPP scheduler vs an oracle.

P prefixes × S suffixes (``rhaii_nb.workload.shared_prefix_workload``, shuffled) are sent with the
helpers' client (``rhaii_nb.measure.request_once``) to replica servers whose KV cache is bounded,
``concurrency`` at a time. Before each request a policy picks the replica:

- **round-robin** — ``RoundRobinPicker``, what the gateway does without the EPP;
- **scheduler** — ``Scheduler`` with RHAII's default profile (prefix-cache 2 + load-aware 1), fed the
  replicas' ``/metrics`` scraped every 75 ms exactly as the twin's EPP does;
- **oracle** — ``OraclePicker`` reading each replica's *real* prefix cache (an upper bound).

Each policy starts on fresh replicas. Hit rate is token-level, as vLLM counts it: cached prompt
tokens / prompt tokens. Replicas use the TPU v6e profile with every duration divided by 10 (same
shape, four times faster) so the sweep fits the time budget; the KV cache is cut to ``KV_BLOCKS``
blocks per replica so that not every prefix fits everywhere. ``python -m benchmarks.routing``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from benchmarks.common import Figure, ms, percentile
from rhaii_nb import measure
from rhaii_nb.twin.gateway.loads import SCRAPE_INTERVAL_S, scrape_load
from rhaii_nb.twin.gateway.scheduler import OraclePicker, RoundRobinPicker, Scheduler
from rhaii_nb.twin.gateway.scorers import EndpointLoad
from rhaii_nb.twin.inference import ReplicaServer, tokenizer
from rhaii_nb.twin.inference.profiles import TPU_V6E_QWEN25_3B, Profile
from rhaii_nb.workload import WorkloadPrompt, shared_prefix_workload

SPEED_UP = 4.0
KV_BLOCKS = 64  # 8,192 tokens per replica: about seven 1,024-token prefixes
PREFIX_TOKENS = 1024  # eight 128-token blocks
MAX_TOKENS = 4
HEADLINE = {"replicas": 3, "prefixes": 12, "suffixes": 8}
SWEEP = [(3, 3), (8, 8), (8, 32), (16, 16), (16, 64)]  # (replicas, prefixes); the headline is (3, 12)
SWEEP_SUFFIXES = 4
SHARE_TARGET = 0.9  # the scheduler's hit rate as a share of the oracle's (chosen here, see README)
POLICIES = ("round-robin", "scheduler", "oracle")


def fast_profile(kv_blocks: int = KV_BLOCKS) -> Profile:
    """The TPU v6e profile with every duration divided by ``SPEED_UP`` and a bounded KV cache."""
    base = TPU_V6E_QWEN25_3B
    return base.with_overrides(
        name=f"tpu-v6e-qwen2.5-3b-x{SPEED_UP:g}",
        num_kv_blocks=kv_blocks,
        request_overhead_s=base.request_overhead_s / SPEED_UP,
        prefill_base_s=base.prefill_base_s / SPEED_UP,
        prefill_tokens_per_s=base.prefill_tokens_per_s * SPEED_UP,
        decode_base_s=base.decode_base_s / SPEED_UP,
        decode_per_seq_s=base.decode_per_seq_s / SPEED_UP,
    )


@dataclass
class PolicyRun:
    """One policy over one workload: hit rates and latency percentiles."""

    policy: str
    replicas: int
    prefixes: int
    requests: int
    failed: int
    token_hit_rate: float
    request_hit_rate: float
    p50_ms: float
    p90_ms: float
    ttft_p50_ms: float
    spread: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return dict(self.__dict__)


def _picker(policy: str, servers: dict[str, ReplicaServer]) -> Any:
    if policy == "round-robin":
        return RoundRobinPicker()
    if policy == "scheduler":
        return Scheduler(seed=7)
    if policy == "oracle":
        return OraclePicker(oracle_cached_tokens(servers), seed=7)
    raise ValueError(f"unknown policy {policy!r}; known: {', '.join(POLICIES)}")


async def _scrape_forever(
    session: aiohttp.ClientSession, servers: dict[str, ReplicaServer], loads: dict[str, EndpointLoad]
) -> None:
    while True:
        names = list(servers)
        results = await asyncio.gather(*(scrape_load(session, servers[n].base_url, False) for n in names))
        loads.clear()
        loads.update({n: load for n, load in zip(names, results, strict=True) if load is not None})
        await asyncio.sleep(SCRAPE_INTERVAL_S)


def oracle_cached_tokens(servers: dict[str, ReplicaServer]) -> Callable[[str, str], int]:
    """``oracle_from_servers`` with the prompt tokenized once, not once per replica (same answers)."""

    @functools.lru_cache(maxsize=4096)
    def token_ids(prompt: str) -> tuple[int, ...]:
        return tuple(tokenizer.encode(prompt))

    def cached_tokens(endpoint: str, prompt: str) -> int:
        cache = servers[endpoint].cache
        ids = list(token_ids(prompt))
        return int(cache.cached_prefix_tokens(cache.hash_blocks(ids), len(ids)))

    return cached_tokens


async def run_policy(
    policy: str, replicas: int, prompts: list[WorkloadPrompt], concurrency: int
) -> PolicyRun:
    """Fresh replicas, one policy, the whole workload; returns its hit rates and latencies."""
    prefixes = len({p.prefix_id for p in prompts})
    profile = fast_profile()
    servers: dict[str, ReplicaServer] = {}
    records: list[dict[str, Any]] = []
    try:
        for index in range(replicas):
            name = f"replica-{index:02d}"
            server = ReplicaServer(profile, replica_name=name, seed=index)
            await server.start("127.0.0.1", 0)
            servers[name] = server
        endpoints = {name: measure.Endpoint(s.base_url, timeout_s=60) for name, s in servers.items()}
        picker = _picker(policy, servers)
        loads: dict[str, EndpointLoad] = {}
        queue = list(enumerate(prompts))
        queue.reverse()
        async with (
            aiohttp.ClientSession() as scrape_session,
            measure.Endpoint(next(iter(endpoints.values())).base_url).client(concurrency) as client,
        ):
            scraper = asyncio.create_task(_scrape_forever(scrape_session, servers, loads))

            async def worker() -> None:
                while queue:
                    index, prompt = queue.pop()
                    name = picker.pick(prompt.text, list(servers), loads, model=measure.DEFAULT_MODEL)
                    record = await measure.request_once(
                        client, endpoints[name], prompt.text, max_tokens=MAX_TOKENS, index=index
                    )
                    record["replica"] = name
                    records.append(record)

            try:
                await asyncio.gather(*(worker() for _ in range(concurrency)))
            finally:
                scraper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await scraper
    finally:
        for server in servers.values():
            await server.stop()
    ok = [r for r in records if r["error"] is None]
    prompt_tokens = sum(r["prompt_tokens"] for r in ok)
    cached = sum(r["cached_tokens"] for r in ok)
    spread: dict[str, int] = {}
    for r in ok:
        spread[r["replica"]] = spread.get(r["replica"], 0) + 1
    return PolicyRun(
        policy,
        replicas,
        prefixes,
        len(records),
        len(records) - len(ok),
        cached / prompt_tokens if prompt_tokens else float("nan"),
        sum(1 for r in ok if r["cached_tokens"] > 0) / len(ok) if ok else float("nan"),
        ms(percentile([r["latency_s"] for r in ok], 50)),
        ms(percentile([r["latency_s"] for r in ok], 90)),
        ms(percentile([r["ttft_s"] for r in ok], 50)),
        dict(sorted(spread.items())),
    )


async def _compare(replicas: int, prefixes: int, suffixes: int) -> dict[str, PolicyRun]:
    prompts = shared_prefix_workload(
        prefixes, suffixes, PREFIX_TOKENS, seed=0, order="shuffled", suffix_tokens=20
    )
    concurrency = 2 * replicas
    return {p: await run_policy(p, replicas, prompts, concurrency) for p in POLICIES}


def run(quick: bool = False) -> dict[str, Any]:
    """The headline comparison (3 replicas) plus the replicas × prefixes sweep; figures + raw runs."""
    headline = asyncio.run(_compare(HEADLINE["replicas"], HEADLINE["prefixes"], HEADLINE["suffixes"]))
    sweep = []
    for replicas, prefixes in SWEEP[:2] if quick else SWEEP:
        runs = asyncio.run(_compare(replicas, prefixes, SWEEP_SUFFIXES))
        sweep.append({"replicas": replicas, "prefixes": prefixes, "runs": runs})
    return {"figures": figures(headline, sweep), "headline": headline, "sweep": sweep,
            "profile": fast_profile().__dict__, "kv_blocks": KV_BLOCKS}  # fmt: skip


def _ratio(value: float, reference: float) -> float:
    return value / reference if reference > 0 else float("nan")


def _share(runs: dict[str, PolicyRun]) -> float:
    return _ratio(runs["scheduler"].token_hit_rate, runs["oracle"].token_hit_rate)


def _gain(runs: dict[str, PolicyRun], field: str) -> float:
    base = getattr(runs["round-robin"], field)
    return (1.0 - getattr(runs["scheduler"], field) / base) * 100.0 if base > 0 else float("nan")


def figures(headline: dict[str, PolicyRun], sweep: list[dict[str, Any]]) -> list[Figure]:
    """The table rows: headline hit rates and gains, then one share/gain row per sweep point."""
    rr, sched, oracle = (headline[p] for p in POLICIES)
    where = f"{HEADLINE['replicas']} replicas, {HEADLINE['prefixes']}×{HEADLINE['suffixes']} prompts"
    share = _share(headline)
    out = [
        Figure(
            f"prefix-cache hit rate, EPP scheduler ({where})",
            sched.token_hit_rate * 100,
            "%",
            peer=f"round-robin {rr.token_hit_rate * 100:.1f} %; oracle {oracle.token_hit_rate * 100:.1f} %",
        ),
        Figure(
            "scheduler hit rate as share of oracle's",
            share * 100,
            "%",
            f"≥ {SHARE_TARGET * 100:.0f} %",
            share >= SHARE_TARGET,
            f"round-robin {_ratio(rr.token_hit_rate, oracle.token_hit_rate) * 100:.1f} %",
        ),
        Figure(
            "scheduler p50 latency gain over round-robin",
            _gain(headline, "p50_ms"),
            "%",
            "> 0 %",
            _gain(headline, "p50_ms") > 0,
            f"p50 sched {sched.p50_ms:.1f} / rr {rr.p50_ms:.1f} / oracle {oracle.p50_ms:.1f} ms",
        ),
        Figure(
            "scheduler p90 latency gain over round-robin",
            _gain(headline, "p90_ms"),
            "%",
            "> 0 %",
            _gain(headline, "p90_ms") > 0,
            f"p90 sched {sched.p90_ms:.1f} / rr {rr.p90_ms:.1f} / oracle {oracle.p90_ms:.1f} ms",
        ),
    ]
    for point in sweep:
        runs = point["runs"]
        share = _share(runs)
        out.append(
            Figure(
                f"share of oracle, {point['replicas']} replicas × {point['prefixes']} prefixes",
                share * 100,
                "%",
                f"≥ {SHARE_TARGET * 100:.0f} %",
                share >= SHARE_TARGET,
                "hit rr {:.0f} / sched {:.0f} / oracle {:.0f} %; p50 gain {:.0f} %".format(
                    *(runs[p].token_hit_rate * 100 for p in POLICIES), _gain(runs, "p50_ms")
                ),
            )
        )
    return out


def main() -> int:
    """Run this benchmark alone and print its rows."""
    from benchmarks.common import render_table

    started = time.monotonic()
    result = run()
    print(render_table(result["figures"]))
    for run_ in result["headline"].values():
        print(run_)
    print(f"{time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
