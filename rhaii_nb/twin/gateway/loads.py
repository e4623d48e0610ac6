"""The EPP's view of replica load: ``/metrics`` scraped in the background, parsed as Prometheus text.

Like the GAIE EPP (which refreshes every 50 ms) the twin's EPP keeps, per endpoint, the last values
of ``vllm:num_requests_waiting``, ``vllm:num_requests_running`` and ``vllm:kv_cache_usage_perc``
(older vLLM: ``vllm:gpu_cache_usage_perc``). An endpoint it cannot scrape (down, or blocked by a
NetworkPolicy) keeps no entry, so scorers treat it as idle.

The scrape asks for just those families (``/metrics?name[]=...``, prometheus_client's filter, which
vLLM's metrics app honours): rendering a replica's ~130 samples, mostly histograms, took a few ms of
the event loop per replica every 75 ms and was most of the latency the twin added under load.
"""

from __future__ import annotations

import ssl

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from rhaii_nb.twin.gateway.scorers import EndpointLoad

SCRAPE_INTERVAL_S = 0.075
SCRAPE_TIMEOUT_S = 1.0
WAITING = "vllm:num_requests_waiting"
RUNNING = "vllm:num_requests_running"
KV_USAGE = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")


_WANTED = frozenset((WAITING, RUNNING, *KV_USAGE))
_QUERY = [("name[]", name) for name in (WAITING, RUNNING, *KV_USAGE)]


def _wanted_lines(text: str) -> str:
    """Only the lines of the three gauges (samples and their ``# HELP``/``# TYPE``), for a server that
    ignores ``name[]`` and sends its whole body (~130 samples, mostly histograms)."""
    kept = []
    for line in text.splitlines():
        if line.startswith("#"):
            fields = line.split(None, 3)
            if len(fields) >= 3 and fields[2] in _WANTED:
                kept.append(line)
        elif line.split("{", 1)[0].split(" ", 1)[0] in _WANTED:
            kept.append(line)
    return "\n".join(kept) + "\n"


def parse_load(text: str) -> EndpointLoad:
    """The load gauges from a vLLM ``/metrics`` body (summed over label sets, e.g. per model)."""
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(_wanted_lines(text)):
        for sample in family.samples:
            if sample.name in (WAITING, RUNNING, *KV_USAGE):
                values[sample.name] = values.get(sample.name, 0.0) + float(sample.value)
    kv = next((values[name] for name in KV_USAGE if name in values), 0.0)
    return EndpointLoad(waiting=values.get(WAITING, 0.0), running=values.get(RUNNING, 0.0), kv_usage=kv)


async def scrape_load(
    session: aiohttp.ClientSession, base_url: str, ssl_context: ssl.SSLContext | bool
) -> EndpointLoad | None:
    """GET ``<base_url>/metrics`` and parse it; None when the replica does not answer 200 in time."""
    try:
        async with session.get(
            f"{base_url}/metrics",
            params=_QUERY,
            ssl=ssl_context,
            timeout=aiohttp.ClientTimeout(total=SCRAPE_TIMEOUT_S),
        ) as resp:
            if resp.status != 200:
                return None
            return parse_load(await resp.text())
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None
