"""The twin's serving path in its own process: gateway (cache-aware routing applied) + N replicas.

``python -m benchmarks.scale_server REPLICAS`` builds ``benchmarks.calibration.gateway_stack`` (store,
the objects KServe creates, the guide's EnvoyFilters, an EPP pod with its sidecar, HTTPS replicas)
with the ``FIXED`` profile, prints ``READY {"url": ..., "rss_bytes": ...}`` and serves until its
stdin closes. One process and one event loop, like the twin daemon.
"""

from __future__ import annotations

import asyncio
import json
import sys

from benchmarks.calibration import gateway_stack
from benchmarks.common import rss_bytes
from rhaii_nb.twin.inference.profiles import CPU_TEST

MODEL_TIME_S = 0.050
# Every request costs exactly MODEL_TIME_S of model time (the per-request overhead sleep) and the
# engine's steps take no time, so whatever a client measures beyond it was added by the twin's
# HTTP, TLS, gateway, EPP and event loop (and the client itself).
FIXED = CPU_TEST.with_overrides(
    name="fixed-50ms",
    max_num_seqs=1024,
    max_waiting=4096,
    request_overhead_s=MODEL_TIME_S,
    prefill_base_s=0.0,
    prefill_tokens_per_s=1e12,
    decode_base_s=0.0,
    decode_per_seq_s=0.0,
    jitter=0.0,
)


async def serve(replicas: int) -> None:
    """Serve the stack until stdin closes."""
    async with gateway_stack(replicas, profile=FIXED) as (url, _servers):  # type: ignore[arg-type]
        print("READY " + json.dumps({"url": url, "rss_bytes": rss_bytes()}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
