"""vLLM's Prometheus metrics for one replica (its own ``CollectorRegistry``).

Names, units and histogram buckets follow vLLM V1 (and llm-d-inference-sim's copy of them); every
series carries the ``model_name`` label. Gauges are read from the engine at scrape time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
                10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)  # fmt: skip
TOKEN_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0,
                         7.5, 10.0, 20.0, 40.0, 80.0)  # fmt: skip
REQUEST_LATENCY_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0,
                           60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)  # fmt: skip


class ReplicaMetrics:
    """The metric families one replica exposes on ``/metrics``."""

    def __init__(self, model_name: str, *, block_size: int, num_blocks: int) -> None:
        self.model_name = model_name
        self.registry = CollectorRegistry()
        labels = ["model_name"]
        reg = self.registry

        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(name, doc, labels, registry=reg)

        def counter(name: str, doc: str, extra: tuple[str, ...] = ()) -> Counter:
            return Counter(name, doc, [*labels, *extra], registry=reg)

        def histogram(name: str, doc: str, buckets: tuple[float, ...]) -> Histogram:
            return Histogram(name, doc, labels, buckets=buckets, registry=reg)

        self._running = gauge("vllm:num_requests_running", "Number of requests in model execution batches.")
        self._waiting = gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.")
        self._kv_usage = gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.")
        self._gpu_usage = gauge("vllm:gpu_cache_usage_perc", "Deprecated alias of vllm:kv_cache_usage_perc.")
        self.prefix_queries = counter(
            "vllm:prefix_cache_queries", "Prefix cache queries, in terms of tokens."
        )
        self.prefix_hits = counter("vllm:prefix_cache_hits", "Prefix cache hits, in terms of tokens.")
        self.prompt_tokens = counter("vllm:prompt_tokens", "Number of prefill tokens processed.")
        self.generation_tokens = counter("vllm:generation_tokens", "Number of generation tokens processed.")
        self.request_success = counter(
            "vllm:request_success", "Count of successfully processed requests.", ("finish_reason",)
        )
        self.ttft = histogram(
            "vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", TTFT_BUCKETS
        )
        self.tpot = histogram(
            "vllm:time_per_output_token_seconds",
            "Histogram of time per output token in seconds.",
            TOKEN_LATENCY_BUCKETS,
        )
        self.itl = histogram(
            "vllm:inter_token_latency_seconds",
            "Histogram of inter-token latency in seconds.",
            TOKEN_LATENCY_BUCKETS,
        )
        self.e2e = histogram(
            "vllm:e2e_request_latency_seconds",
            "Histogram of end to end request latency in seconds.",
            REQUEST_LATENCY_BUCKETS,
        )
        self.queue_time = histogram(
            "vllm:request_queue_time_seconds",
            "Histogram of time spent in WAITING phase for request.",
            REQUEST_LATENCY_BUCKETS,
        )
        self.prefill_time = histogram(
            "vllm:request_prefill_time_seconds",
            "Histogram of time spent in PREFILL phase for request.",
            REQUEST_LATENCY_BUCKETS,
        )
        self._token_series: tuple[Any, Any] | None = None
        cache_info = Info("vllm:cache_config", "Information of the LLMEngine CacheConfig", registry=reg)
        cache_info.info({"block_size": str(block_size), "num_gpu_blocks": str(num_blocks),
                         "enable_prefix_caching": "True"})  # fmt: skip

    def bind_gauges(
        self, running: Callable[[], float], waiting: Callable[[], float], kv_usage: Callable[[], float]
    ) -> None:
        """Read the gauges from the engine whenever ``/metrics`` is scraped."""
        name = self.model_name
        self._running.labels(model_name=name).set_function(running)
        self._waiting.labels(model_name=name).set_function(waiting)
        self._kv_usage.labels(model_name=name).set_function(kv_usage)
        self._gpu_usage.labels(model_name=name).set_function(kv_usage)

    def record_admission(self, prompt_tokens: int, cached_tokens: int, queue_s: float) -> None:
        """A request got its KV blocks and enters prefill."""
        name = self.model_name
        self.prefix_queries.labels(model_name=name).inc(prompt_tokens)
        self.prefix_hits.labels(model_name=name).inc(cached_tokens)
        self.prompt_tokens.labels(model_name=name).inc(prompt_tokens)
        self.queue_time.labels(model_name=name).observe(queue_s)

    def record_first_token(self, ttft_s: float, prefill_s: float) -> None:
        """The prefill of a request ended with its first token."""
        self.ttft.labels(model_name=self.model_name).observe(ttft_s)
        self.prefill_time.labels(model_name=self.model_name).observe(prefill_s)

    def record_token_gap(self, gap_s: float) -> None:
        """One more output token after ``gap_s`` seconds (per token: the labelled series are kept)."""
        if self._token_series is None:
            self._token_series = (
                self.itl.labels(model_name=self.model_name),
                self.tpot.labels(model_name=self.model_name),
            )
        for series in self._token_series:
            series.observe(gap_s)

    def record_finish(self, finish_reason: str, output_tokens: int, e2e_s: float) -> None:
        """A request finished normally."""
        name = self.model_name
        self.generation_tokens.labels(model_name=name).inc(output_tokens)
        self.request_success.labels(model_name=name, finish_reason=finish_reason).inc()
        self.e2e.labels(model_name=name).observe(e2e_s)

    def exposition(self, names: Iterable[str] = ()) -> tuple[bytes, str]:
        """The Prometheus text body and its content type; only the families in ``names`` when given
        (prometheus_client's ``?name[]=...`` filter, which vLLM's ``/metrics`` app honours too)."""
        wanted = list(names)
        registry = self.registry.restricted_registry(wanted) if wanted else self.registry
        return generate_latest(registry), CONTENT_TYPE_LATEST
