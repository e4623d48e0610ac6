"""The EPP scheduler library: prefix index, scorers, weights, pickers (no sockets needed)."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from rhaii_nb.twin.gateway.prefix_index import PrefixIndex, block_hashes
from rhaii_nb.twin.gateway.scheduler import (
    OraclePicker,
    RandomPicker,
    RoundRobinPicker,
    Scheduler,
    SchedulerConfig,
    oracle_from_servers,
)
from rhaii_nb.twin.gateway.scorers import EndpointLoad, LoadAwareScorer, QueueScorer, ScoringInput
from rhaii_nb.twin.gateway.server import epp_config_from_pod, request_prompt

PODS = ["pod-a", "pod-b", "pod-c"]


def waiting(a: float, b: float, c: float) -> dict[str, EndpointLoad]:
    """Loads with these waiting counts for pod-a, pod-b, pod-c."""
    return {name: EndpointLoad(waiting=w) for name, w in zip(PODS, (a, b, c), strict=True)}


SHARED = "You are a meticulous assistant; you answer in plain, short language. " * 8  # 560 characters


def test_block_hashes_chain_and_ignore_the_partial_tail() -> None:
    assert block_hashes("x" * 63) == []  # shorter than one 64-character block: no hashes
    one = block_hashes("a" * 64 + "tail")
    assert len(one) == 1
    two = block_hashes("a" * 128)
    assert two[0] == one[0] and len(two) == 2
    # Chaining: the same second block after a different first block hashes differently.
    assert block_hashes("b" * 64 + "a" * 64)[1] != two[1]
    # The model name seeds the root, like GAIE's hash(0).
    assert block_hashes("a" * 64, "model-x") != block_hashes("a" * 64, "model-y")
    assert len(block_hashes("z" * 64 * 300)) == 256  # MaxPrefixBlocksToMatch


def test_prefix_index_lru_evicts_least_recent_blocks() -> None:
    index = PrefixIndex(capacity_per_endpoint=4)
    first = block_hashes("a" * 64 * 3)
    index.record("pod-a", first)
    assert index.match(first, ["pod-a", "pod-b"]) == {"pod-a": 3, "pod-b": 0}
    index.record("pod-a", block_hashes("b" * 64 * 2))  # 5 blocks > 4: the oldest goes
    assert index.size("pod-a") == 4
    assert index.match(first, ["pod-a"]) == {"pod-a": 0}  # the chain's head was evicted, no leading match


def test_rhaii_default_profile_and_optimistic_insert() -> None:
    scheduler = Scheduler(seed=7)
    assert scheduler.config.weights == {"prefix-cache-scorer": 2.0, "load-aware-scorer": 1.0}
    first = scheduler.decide(SHARED + "question 0", PODS)
    assert first.prompt_blocks == len(SHARED + "question 0") // 64
    assert all(v == 0.5 for v in first.totals.values())  # idle everywhere, nothing cached yet: a tie
    picks = [scheduler.pick(SHARED + f"question {i}", PODS) for i in range(1, 10)]
    assert set(picks) == {first.endpoint}
    decision = scheduler.decide(SHARED + "question 10", PODS)
    assert decision.scores["prefix-cache-scorer"][first.endpoint] == pytest.approx(1.0)
    assert decision.totals[first.endpoint] == pytest.approx(2.5)


def test_ties_are_broken_at_random_but_reproducibly() -> None:
    def run(seed: int) -> list[str]:
        scheduler = Scheduler(seed=seed)
        return [scheduler.pick(f"{i:03d}" * 30, PODS) for i in range(30)]  # all different prefixes

    assert run(1) == run(1)
    assert len(set(run(1))) == 3  # spread by the random tie-break


def test_load_aware_scorer_follows_llm_d() -> None:
    scorer = LoadAwareScorer()
    loads = {
        "pod-a": EndpointLoad(waiting=0),
        "pod-b": EndpointLoad(waiting=64),
        "pod-c": EndpointLoad(waiting=500),
    }
    scores = scorer.score(ScoringInput(hashes=[], endpoints=PODS, loads=loads))
    assert scores == {"pod-a": 0.5, "pod-b": 0.25, "pod-c": 0.0}


def test_queue_scorer_min_max_normalises() -> None:
    loads = {
        "pod-a": EndpointLoad(waiting=2),
        "pod-b": EndpointLoad(waiting=6),
        "pod-c": EndpointLoad(waiting=4),
    }
    assert QueueScorer().score(ScoringInput([], PODS, loads)) == {"pod-a": 1.0, "pod-b": 0.0, "pod-c": 0.5}
    assert QueueScorer().score(ScoringInput([], PODS, {})) == dict.fromkeys(PODS, 1.0)


def test_a_long_queue_outweighs_a_partial_prefix_match() -> None:
    scheduler = Scheduler(seed=0)
    prompt = SHARED[:512]  # 8 blocks
    scheduler.index.record("pod-a", scheduler.hashes(prompt[:128]))  # pod-a holds 2 of 8 blocks
    loads = {"pod-a": EndpointLoad(waiting=128)}
    # pod-a: 2.0 * 2/8 + 1.0 * 0 = 0.5; the idle others: 0 + 0.5 — a tie, so a full queue cancels the match.
    decision = scheduler.decide(prompt, PODS, loads)
    assert decision.totals == {"pod-a": pytest.approx(0.5), "pod-b": 0.5, "pod-c": 0.5}
    full = Scheduler(seed=0)
    full.index.record("pod-a", full.hashes(SHARED))
    assert full.pick(SHARED, PODS, loads) == "pod-a"  # a full match (2.0) beats any load


def test_weights_configurable_and_validated() -> None:
    load_only = Scheduler(SchedulerConfig(weights={"queue-scorer": 1.0}), seed=3)
    loads = {
        "pod-a": EndpointLoad(waiting=5),
        "pod-b": EndpointLoad(waiting=0),
        "pod-c": EndpointLoad(waiting=9),
    }
    assert {load_only.pick(SHARED, PODS, loads) for _ in range(5)} == {"pod-b"}
    assert load_only.index.endpoints() == []  # no prefix scorer → no optimistic insert
    with pytest.raises(ValueError, match="unknown scorer"):
        SchedulerConfig(weights={"prefix-scorer": 1.0})
    with pytest.raises(ValueError, match=">= 0"):
        SchedulerConfig(weights={"queue-scorer": -1.0})


EPP_CONFIG = """
apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: single-profile-handler
- name: prefix
  type: prefix-cache-scorer
  parameters: {hashBlockSize: 32, maxPrefixBlocksToMatch: 10, lruCapacityPerServer: 99}
- type: load-aware-scorer
  parameters: {threshold: 16}
- type: max-score-picker
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: prefix
    weight: 3
  - pluginRef: load-aware-scorer
    weight: 0.5
  - pluginRef: max-score-picker
"""


def test_config_from_endpoint_picker_config_and_epp_pod_args() -> None:
    config = SchedulerConfig.from_endpoint_picker_config(EPP_CONFIG)
    assert config.weights == {"prefix-cache-scorer": 3.0, "load-aware-scorer": 0.5}
    assert (config.block_chars, config.max_blocks, config.lru_capacity, config.load_threshold) == (
        32,
        10,
        99,
        16,
    )
    pod = {
        "spec": {
            "containers": [{"name": "main", "args": ["--grpc-port", "9002", "--config-text", EPP_CONFIG]}]
        }
    }
    assert epp_config_from_pod(pod).weights == config.weights
    assert epp_config_from_pod({"spec": {"containers": [{"name": "main"}]}}).weights == {
        "prefix-cache-scorer": 2.0,
        "load-aware-scorer": 1.0,
    }
    with pytest.raises(ValueError, match="no scheduling profile 'pd'"):
        SchedulerConfig.from_endpoint_picker_config(EPP_CONFIG, profile="pd")


def test_baseline_pickers() -> None:
    rr = RoundRobinPicker()
    assert [rr.pick("p", PODS) for _ in range(6)] == PODS * 2
    random_picker = RandomPicker(seed=1)
    counts = Counter(random_picker.pick("p", PODS) for _ in range(300))
    assert set(counts) == set(PODS) and min(counts.values()) > 60
    with pytest.raises(ValueError, match="no endpoints"):
        rr.pick("p", [])


def test_oracle_picker_reads_the_replicas_real_cache() -> None:
    from rhaii_nb.twin.inference import tokenizer
    from rhaii_nb.twin.inference.server import ReplicaServer

    servers = {name: ReplicaServer("cpu-test", replica_name=name) for name in PODS}
    prompt = SHARED + "what now?"
    tokens = tokenizer.encode(prompt)
    cache = servers["pod-c"].cache
    allocation = cache.allocate(cache.hash_blocks(tokens), len(tokens), len(tokens) + 1)
    cache.commit(allocation)
    cache.free(allocation)
    oracle = OraclePicker(oracle_from_servers(servers))
    assert oracle.pick(prompt, PODS) == "pod-c"
    assert oracle.cached_tokens("pod-a", prompt) == 0


def test_request_prompt_for_completions_and_chat() -> None:
    assert request_prompt(b'{"model": "m", "prompt": "hello"}') == ("hello", "m")
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
    ]
    chat = json.dumps({"model": "m", "messages": messages}).encode()
    assert request_prompt(chat) == ("be brief\nhi", "m")
    assert request_prompt(b"not json") == ("", "")
