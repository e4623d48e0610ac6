"""EPP scorers: each turns (request, endpoints, their load) into a score in [0, 1] per endpoint.

Sources (facts): GAIE v1.0.1 prefix / queue / kv-cache-utilization scorers; llm-d's
``load-aware-scorer`` (``QueueThresholdDefault = 128``; 0.5 for an empty queue, else
``0.5 × (1 − min(waiting, threshold) / threshold)``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from rhaii_nb.twin.gateway.prefix_index import PrefixIndex


@dataclass(frozen=True)
class EndpointLoad:
    """What the EPP last scraped from one replica's ``/metrics``."""

    waiting: float = 0.0  # vllm:num_requests_waiting
    running: float = 0.0  # vllm:num_requests_running
    kv_usage: float = 0.0  # vllm:kv_cache_usage_perc, 0–1


@dataclass(frozen=True)
class ScoringInput:
    """One request as the scorers see it."""

    hashes: Sequence[int]  # the prompt's chained block hashes (prefix_index.block_hashes)
    endpoints: Sequence[str]
    loads: Mapping[str, EndpointLoad]

    def load(self, endpoint: str) -> EndpointLoad:
        """The endpoint's load, or an idle one if it has not been scraped yet."""
        return self.loads.get(endpoint) or EndpointLoad()


class Scorer(Protocol):
    """A scoring plugin of the EPP's scheduling profile."""

    name: str

    def score(self, request: ScoringInput) -> dict[str, float]:
        """Score in [0, 1] for every endpoint of the request."""
        ...


class PrefixCacheScorer:
    """``prefix-cache-scorer``: share of the prompt's blocks the endpoint is believed to hold."""

    name = "prefix-cache-scorer"

    def __init__(self, index: PrefixIndex) -> None:
        self.index = index

    def score(self, request: ScoringInput) -> dict[str, float]:
        """matched leading blocks / total blocks (0 for a prompt shorter than one block)."""
        total = len(request.hashes)
        if total == 0:
            return dict.fromkeys(request.endpoints, 0.0)
        matched = self.index.match(request.hashes, request.endpoints)
        return {name: matched[name] / total for name in request.endpoints}


class LoadAwareScorer:
    """``load-aware-scorer`` (llm-d): prefers endpoints with a short waiting queue."""

    name = "load-aware-scorer"

    def __init__(self, threshold: int = 128) -> None:
        if threshold < 1:
            raise ValueError(f"load-aware threshold must be >= 1, got {threshold}")
        self.threshold = threshold

    def score(self, request: ScoringInput) -> dict[str, float]:
        """0.5 for an empty queue, falling linearly to 0 at ``threshold`` waiting requests."""
        scores: dict[str, float] = {}
        for name in request.endpoints:
            waiting = request.load(name).waiting
            if waiting <= 0:
                scores[name] = 0.5
            else:
                scores[name] = 0.5 * (1.0 - min(waiting, self.threshold) / self.threshold)
        return scores


class QueueScorer:
    """``queue-scorer`` (GAIE): min-max normalised waiting count, shortest queue scores 1."""

    name = "queue-scorer"

    def score(self, request: ScoringInput) -> dict[str, float]:
        """(max − waiting) / (max − min); every endpoint scores 1 when all queues are equal."""
        waiting = {name: request.load(name).waiting for name in request.endpoints}
        if not waiting:
            return {}
        low, high = min(waiting.values()), max(waiting.values())
        if high == low:
            return dict.fromkeys(waiting, 1.0)
        return {name: (high - w) / (high - low) for name, w in waiting.items()}


class KvCacheUtilizationScorer:
    """``kv-cache-utilization-scorer`` (GAIE): 1 − KV-cache usage."""

    name = "kv-cache-utilization-scorer"

    def score(self, request: ScoringInput) -> dict[str, float]:
        """1 − ``vllm:kv_cache_usage_perc`` (clamped to [0, 1])."""
        return {name: 1.0 - min(1.0, max(0.0, request.load(name).kv_usage)) for name in request.endpoints}


SCORER_NAMES = (
    PrefixCacheScorer.name,
    LoadAwareScorer.name,
    QueueScorer.name,
    KvCacheUtilizationScorer.name,
)
