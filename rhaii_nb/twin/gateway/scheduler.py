"""The EPP scheduler as a library: weighted scorers + max-score pick, and baselines to compare with.

``Scheduler(config).pick(prompt, endpoints, loads)`` is what the twin's gateway calls when
cache-aware routing is applied (all three EnvoyFilters + a ready EPP with its sidecar). Benchmarks
and notebooks can call the same objects directly to compare routing policies side by side:

- ``Scheduler`` — RHAII EA1's profile by default: prefix-cache-scorer 2.0 + load-aware-scorer 1.0,
  max-score picker with a random (seeded) tie-break, optimistic insert into the prefix index.
- ``RoundRobinPicker`` — what the gateway does when the EPP is bypassed.
- ``RandomPicker`` — cache-blind random choice.
- ``OraclePicker`` — knows each replica's *actual* KV cache (an upper bound for any approximate
  index); it needs a ``cached_tokens(endpoint, prompt)`` function, e.g. built from replica servers.

Endpoints are plain names (the gateway uses pod names). ``loads`` maps a name to ``EndpointLoad``;
a missing entry counts as idle.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from rhaii_nb.twin.gateway.prefix_index import (
    DEFAULT_BLOCK_CHARS,
    DEFAULT_LRU_CAPACITY,
    DEFAULT_MAX_BLOCKS,
    PrefixIndex,
    block_hashes,
)
from rhaii_nb.twin.gateway.scorers import (
    SCORER_NAMES,
    EndpointLoad,
    KvCacheUtilizationScorer,
    LoadAwareScorer,
    PrefixCacheScorer,
    QueueScorer,
    Scorer,
    ScoringInput,
)

RHAII_DEFAULT_WEIGHTS: dict[str, float] = {"prefix-cache-scorer": 2.0, "load-aware-scorer": 1.0}


@dataclass
class SchedulerConfig:
    """Scorers with their weights and the prefix index's parameters (RHAII EA1 defaults)."""

    weights: dict[str, float] = field(default_factory=lambda: dict(RHAII_DEFAULT_WEIGHTS))
    block_chars: int = DEFAULT_BLOCK_CHARS
    max_blocks: int = DEFAULT_MAX_BLOCKS
    lru_capacity: int = DEFAULT_LRU_CAPACITY
    load_threshold: int = 128

    def __post_init__(self) -> None:
        unknown = sorted(set(self.weights) - set(SCORER_NAMES))
        if unknown:
            raise ValueError(f"unknown scorer(s) {unknown}; known scorers: {', '.join(SCORER_NAMES)}")
        negative = {name: w for name, w in self.weights.items() if w < 0}
        if negative:
            raise ValueError(f"scorer weights must be >= 0, got {negative}")

    @classmethod
    def from_endpoint_picker_config(cls, text: str, profile: str | None = None) -> SchedulerConfig:
        """Read an ``EndpointPickerConfig`` (the EPP's ``--config-text``): scorers, weights, parameters.

        Uses the named profile, else the first one. Plugins other than the known scorers (profile
        handler, picker) are accepted and ignored; the picker is always max-score.
        """
        doc = yaml.safe_load(text) or {}
        if not isinstance(doc, dict) or doc.get("kind", "EndpointPickerConfig") != "EndpointPickerConfig":
            raise ValueError("EPP config is not an EndpointPickerConfig document")
        plugins: dict[str, dict[str, Any]] = {}
        for plugin in doc.get("plugins") or []:
            ptype = plugin.get("type")
            if not ptype:
                raise ValueError(f"EPP config plugin without a type: {plugin!r}")
            plugins[plugin.get("name") or ptype] = {"type": ptype, **(plugin.get("parameters") or {})}
        profiles = doc.get("schedulingProfiles") or []
        if not profiles:
            raise ValueError("EPP config has no schedulingProfiles")
        chosen = next((p for p in profiles if p.get("name") == profile), None) if profile else profiles[0]
        if chosen is None:
            names = [p.get("name") for p in profiles]
            raise ValueError(f"EPP config has no scheduling profile {profile!r}; it has {names}")
        config = cls(weights={})
        for ref in chosen.get("plugins") or []:
            plugin = plugins.get(ref.get("pluginRef"), {"type": ref.get("pluginRef")})
            ptype = plugin["type"]
            if ptype not in SCORER_NAMES:
                continue
            config.weights[ptype] = float(ref.get("weight", 1.0))
            if ptype == "prefix-cache-scorer":
                config.block_chars = int(plugin.get("hashBlockSize", config.block_chars))
                config.max_blocks = int(plugin.get("maxPrefixBlocksToMatch", config.max_blocks))
                config.lru_capacity = int(plugin.get("lruCapacityPerServer", config.lru_capacity))
            if ptype == "load-aware-scorer":
                config.load_threshold = int(plugin.get("threshold", config.load_threshold))
        config.__post_init__()
        return config


@dataclass(frozen=True)
class Pick:
    """One scheduling decision, with the per-scorer scores that led to it."""

    endpoint: str
    totals: dict[str, float]  # endpoint → weighted sum
    scores: dict[str, dict[str, float]]  # scorer → endpoint → raw score
    prompt_blocks: int


class Scheduler:
    """EPP-style scheduler: weighted scorers, max-score pick with random tie-break, optimistic insert."""

    def __init__(self, config: SchedulerConfig | None = None, *, seed: int | None = 0) -> None:
        self.config = config or SchedulerConfig()
        self.index = PrefixIndex(self.config.lru_capacity)
        self._rng = random.Random(seed)
        self._scorers: list[tuple[Scorer, float]] = [
            (self._make_scorer(name), weight) for name, weight in self.config.weights.items()
        ]

    def _make_scorer(self, name: str) -> Scorer:
        if name == PrefixCacheScorer.name:
            return PrefixCacheScorer(self.index)
        if name == LoadAwareScorer.name:
            return LoadAwareScorer(self.config.load_threshold)
        if name == QueueScorer.name:
            return QueueScorer()
        return KvCacheUtilizationScorer()

    @property
    def uses_prefix_index(self) -> bool:
        """Whether the prefix-cache scorer is part of the profile."""
        return PrefixCacheScorer.name in self.config.weights

    def hashes(self, prompt: str, model: str = "") -> list[int]:
        """The prompt's block hashes with this scheduler's block size and cap."""
        return block_hashes(
            prompt, model, block_chars=self.config.block_chars, max_blocks=self.config.max_blocks
        )

    def decide(
        self,
        prompt: str,
        endpoints: Sequence[str],
        loads: Mapping[str, EndpointLoad] | None = None,
        *,
        model: str = "",
    ) -> Pick:
        """Score every endpoint, pick the best (ties broken at random), and record the pick."""
        if not endpoints:
            raise ValueError("no endpoints to pick from")
        hashes = self.hashes(prompt, model) if self.uses_prefix_index else []
        request = ScoringInput(hashes=hashes, endpoints=list(endpoints), loads=loads or {})
        totals = dict.fromkeys(request.endpoints, 0.0)
        scores: dict[str, dict[str, float]] = {}
        for scorer, weight in self._scorers:
            result = scorer.score(request)
            scores[scorer.name] = result
            for name in request.endpoints:
                totals[name] += weight * result.get(name, 0.0)
        # max-score picker: shuffle, then take the first maximum (GAIE shuffles before a stable sort).
        candidates = list(request.endpoints)
        self._rng.shuffle(candidates)
        best = max(candidates, key=lambda name: totals[name])
        if self.uses_prefix_index and hashes:
            self.index.record(best, hashes)
        return Pick(endpoint=best, totals=totals, scores=scores, prompt_blocks=len(hashes))

    def pick(
        self,
        prompt: str,
        endpoints: Sequence[str],
        loads: Mapping[str, EndpointLoad] | None = None,
        *,
        model: str = "",
    ) -> str:
        """The endpoint the EPP sends this prompt to."""
        return self.decide(prompt, endpoints, loads, model=model).endpoint

    def forget(self, endpoint: str) -> None:
        """Drop an endpoint that left the pool from the prefix index."""
        self.index.forget(endpoint)


class RoundRobinPicker:
    """Cache-blind rotation over the endpoints (sorted by name), like Envoy without the EPP."""

    def __init__(self) -> None:
        self._counter = 0

    def pick(
        self,
        prompt: str,
        endpoints: Sequence[str],
        loads: Mapping[str, EndpointLoad] | None = None,
        *,
        model: str = "",
    ) -> str:
        """The next endpoint in rotation."""
        if not endpoints:
            raise ValueError("no endpoints to pick from")
        ordered = sorted(endpoints)
        choice = ordered[self._counter % len(ordered)]
        self._counter += 1
        return choice


class RandomPicker:
    """Cache-blind uniform random choice (seeded)."""

    def __init__(self, seed: int | None = 0) -> None:
        self._rng = random.Random(seed)

    def pick(
        self,
        prompt: str,
        endpoints: Sequence[str],
        loads: Mapping[str, EndpointLoad] | None = None,
        *,
        model: str = "",
    ) -> str:
        """A random endpoint."""
        if not endpoints:
            raise ValueError("no endpoints to pick from")
        return self._rng.choice(sorted(endpoints))


class OraclePicker:
    """Picks the endpoint whose real KV cache holds the most of the prompt (ties: shortest queue, random).

    ``cached_tokens(endpoint, prompt)`` must answer from the replica's actual prefix cache, e.g. via
    ``oracle_from_servers``.
    """

    def __init__(self, cached_tokens: Callable[[str, str], int], seed: int | None = 0) -> None:
        self.cached_tokens = cached_tokens
        self._rng = random.Random(seed)

    def pick(
        self,
        prompt: str,
        endpoints: Sequence[str],
        loads: Mapping[str, EndpointLoad] | None = None,
        *,
        model: str = "",
    ) -> str:
        """The endpoint with the longest really-cached prefix."""
        if not endpoints:
            raise ValueError("no endpoints to pick from")
        loads = loads or {}
        candidates = list(endpoints)
        self._rng.shuffle(candidates)
        idle = EndpointLoad()
        return max(
            candidates,
            key=lambda name: (self.cached_tokens(name, prompt), -(loads.get(name) or idle).waiting),
        )


def oracle_from_servers(servers: Mapping[str, Any]) -> Callable[[str, str], int]:
    """``cached_tokens`` for ``OraclePicker`` from replica servers (``ReplicaServer`` objects by name).

    Tokenizes the prompt text as the replica does (for chat, pass the text the chat template
    renders: ``tokenizer.apply_chat_template(messages)``) and asks the replica's real prefix cache,
    without touching its LRU order or statistics.
    """
    from rhaii_nb.twin.inference import tokenizer

    def cached_tokens(endpoint: str, prompt: str) -> int:
        cache = servers[endpoint].cache
        token_ids = tokenizer.encode(prompt)
        return int(cache.cached_prefix_tokens(cache.hash_blocks(token_ids), len(token_ids)))

    return cached_tokens
