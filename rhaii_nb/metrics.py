"""Scrape vLLM replicas' ``/metrics`` and turn them into per-replica prefix-cache figures.

Works the same on real vLLM (through ``kubectl port-forward`` or the API server's service proxy)
and on the twin's replicas. Parsing uses ``prometheus_client.parser``.

    before = replica_stats({"pod-a": url_a, "pod-b": url_b})
    ...run a test...
    after = replica_stats({"pod-a": url_a, "pod-b": url_b})
    window = stats_delta(before, after)   # hit rate of what happened in between
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import pandas as pd
from prometheus_client.parser import text_string_to_metric_families

VerifyType = bool | str | ssl.SSLContext

QUERIES = "vllm:prefix_cache_queries"
HITS = "vllm:prefix_cache_hits"
RUNNING = "vllm:num_requests_running"
WAITING = "vllm:num_requests_waiting"
KV_USAGE = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
SUCCESS = "vllm:request_success"
STATS_COLUMNS = ["replica", "queries", "hits", "hit_rate", "requests", "running", "waiting", "kv_usage"]


def parse_metrics(text: str, model_name: str | None = None) -> dict[str, float]:
    """Sum each sample name over its label sets (optionally only for one ``model_name``).

    Keys are sample names as exposed, e.g. ``vllm:prefix_cache_hits_total``.
    """
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if model_name is not None and sample.labels.get("model_name", model_name) != model_name:
                continue
            values[sample.name] = values.get(sample.name, 0.0) + float(sample.value)
    return values


def _first(values: Mapping[str, float], *names: str) -> float:
    for name in names:
        if name in values:
            return values[name]
    return float("nan")


def stats_from_values(replica: str, values: Mapping[str, float]) -> dict[str, Any]:
    """One replica's row: prefix-cache tokens queried/hit, hit rate, requests, load and KV usage."""
    queries = _first(values, f"{QUERIES}_total", QUERIES, "vllm:gpu_prefix_cache_queries_total")
    hits = _first(values, f"{HITS}_total", HITS, "vllm:gpu_prefix_cache_hits_total")
    return {
        "replica": replica,
        "queries": queries,
        "hits": hits,
        "hit_rate": hits / queries if queries and queries == queries else float("nan"),
        "requests": _first(values, f"{SUCCESS}_total", SUCCESS),
        "running": _first(values, RUNNING),
        "waiting": _first(values, WAITING),
        "kv_usage": _first(values, *KV_USAGE),
    }


def _named(urls: Mapping[str, str] | Sequence[str]) -> dict[str, str]:
    if isinstance(urls, Mapping):
        return dict(urls)
    return {url: url for url in urls}


async def replica_stats_async(
    urls: Mapping[str, str] | Sequence[str],
    *,
    verify: VerifyType = True,
    model_name: str | None = None,
    timeout_s: float = 10.0,
    headers: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Scrape every replica's metrics URL at once; one row per replica (see ``STATS_COLUMNS``).

    ``urls`` maps a replica name to its ``.../metrics`` URL (a plain list uses the URLs as names).
    A replica that cannot be scraped raises ``RuntimeError`` naming it and the cause.
    """
    from rhaii_nb.measure import tls_verify

    named = _named(urls)
    async with httpx.AsyncClient(
        verify=tls_verify(verify), timeout=timeout_s, headers=dict(headers or {})
    ) as client:

        async def one(name: str, url: str) -> dict[str, Any]:
            try:
                response = await client.get(url)
                response.raise_for_status()
            except httpx.HTTPError as exc:
                raise RuntimeError(f"cannot scrape metrics of replica {name!r} at {url}: {exc!r}") from None
            return stats_from_values(name, parse_metrics(response.text, model_name))

        rows = await asyncio.gather(*(one(name, url) for name, url in named.items()))
    return pd.DataFrame(rows, columns=STATS_COLUMNS)


def replica_stats(urls: Mapping[str, str] | Sequence[str], **options: Any) -> pd.DataFrame:
    """Synchronous ``replica_stats_async`` (safe inside Jupyter's running event loop)."""
    from rhaii_nb.measure import run_sync

    return run_sync(replica_stats_async(urls, **options))


def stats_delta(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """What happened between two scrapes, per replica: queried/hit tokens, hit rate, requests served.

    A counter that went down (the replica restarted, its cache was lost) counts from zero.
    """
    merged = after.merge(before, on="replica", how="left", suffixes=("", "_before")).fillna(
        {"queries_before": 0.0, "hits_before": 0.0, "requests_before": 0.0}
    )
    out = pd.DataFrame({"replica": merged["replica"]})
    for column in ("queries", "hits", "requests"):
        now, then = merged[column], merged[f"{column}_before"]
        out[column] = now.where(now < then, now - then)
    out["hit_rate"] = (out["hits"] / out["queries"]).where(out["queries"] > 0)
    out["kv_usage"] = merged["kv_usage"]
    return out


def replica_metrics_urls(session: Any, params: Any) -> dict[str, str]:
    """Pod name → ``/metrics`` URL of each vLLM pod, through the Kubernetes API's pod proxy (TLS to the
    API verified against the cluster CA; the same path works on GKE and the twin)."""
    from rhaii_nb import names
    from rhaii_nb.probes import WORKLOAD_PORT

    pods = session.core.list_namespaced_pod(
        params.namespace, label_selector=names.workload_selector(params.service_name)
    ).items
    base = f"{session.kube_host}/api/v1/namespaces/{params.namespace}/pods"
    return {
        pod.metadata.name: f"{base}/https:{pod.metadata.name}:{WORKLOAD_PORT}/proxy/metrics"
        for pod in sorted(pods, key=lambda p: p.metadata.name)
        if pod.status.phase == "Running" and not pod.metadata.deletion_timestamp
    }


def service_stats(session: Any, params: Any) -> pd.DataFrame:
    """``replica_stats`` of every running vLLM pod of the service (see ``replica_metrics_urls``)."""
    session.api_client  # noqa: B018 - resolves the API host and CA
    urls = replica_metrics_urls(session, params)
    if not urls:
        raise RuntimeError(
            f"no running vLLM pods of {params.namespace}/{params.service_name}: "
            "run 04_inference_service first"
        )
    token = session.kube_token()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return replica_stats(urls, verify=session.ssl_context(), headers=headers)
