"""Hardware/model profiles of the vLLM stand-in: cache geometry, limits and latency parameters.

Latency model (per engine step, real wall time, never scaled by the twin's ``time_scale``):

- a request first pays ``request_overhead_s`` (HTTP handling, validation, tokenization);
- a step that admits new requests runs their prefill: ``prefill_base_s + uncached_tokens /
  prefill_tokens_per_s`` (all admitted requests' uncached tokens together);
- a step with running requests adds one decode step: ``decode_base_s + decode_per_seq_s * batch``;
- the step's duration is multiplied by ``N(1, jitter)`` clamped to [0.7, 1.3].
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    """Everything that makes one replica behave like a given model on given hardware."""

    name: str
    model: str  # the HuggingFace model the profile stands for
    block_size: int  # tokens per KV block (cache granularity)
    num_kv_blocks: int  # KV blocks of one replica
    max_model_len: int  # context window (prompt + output)
    max_num_seqs: int  # sequences decoded together (continuous batching)
    max_waiting: int  # waiting-queue capacity; a full queue answers 429
    request_overhead_s: float
    prefill_base_s: float
    prefill_tokens_per_s: float
    decode_base_s: float
    decode_per_seq_s: float
    jitter: float  # relative standard deviation of a step's duration

    def with_overrides(self, **changes: object) -> Profile:
        """A copy with some fields changed, e.g. ``profile.with_overrides(num_kv_blocks=64)``."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"unknown profile field(s) {sorted(unknown)}; known: {self.field_names()}")
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def field_names(cls) -> list[str]:
        """Names of the profile's fields."""
        return [f.name for f in dataclasses.fields(cls)]

    def kv_cache_tokens(self) -> int:
        """Tokens the replica's KV cache holds (vLLM logs this at start-up)."""
        return self.num_kv_blocks * self.block_size


TPU_V6E_QWEN25_3B = Profile(
    name="tpu-v6e-qwen2.5-3b",
    model="Qwen/Qwen2.5-3B-Instruct",
    # vLLM on TPU uses a 128-token KV block (rhaii-facts §6 TPU note): prompts under 128 tokens never hit.
    block_size=128,
    # One replica = one v6e 2x2 slice: 4 chips x 32 GiB HBM = 128 GiB. With vLLM's
    # gpu_memory_utilization 0.9 that is 115.2 GiB; minus ~6.2 GB bf16 weights (3.09 B params x 2 B)
    # and ~2 GiB of XLA workspace, ~108 GiB stay for the KV cache. Qwen2.5-3B stores
    # 2 (K,V) x 36 layers x 2 KV heads x 128 head_dim x 2 bytes = 36,864 B per token, so
    # 108 GiB / 36,864 B ~= 3.1 M tokens. The guide's expected log line says exactly
    # "TPU KV cache size: 3145728 tokens" = 24,576 blocks of 128; we use that figure.
    num_kv_blocks=24_576,
    max_model_len=2048,  # the guide's `--max-model-len 2048`
    max_num_seqs=128,  # the later manifest's `--max-num-seqs 128`
    # vLLM has no waiting-queue bound; llm-d-inference-sim answers 429 past 1000. We use 1024.
    max_waiting=1024,
    # Calibration against the guide's tests (max_tokens 10, short prompt): serial ~6.3 req/s means
    # ~159 ms per request = overhead 6 ms + prefill ~21 ms + 9 decode steps of 13.5 ms (9 ms base +
    # 4.5 ms for the one sequence) = ~149 ms of model time, plus ~10 ms that the client, HTTP and the
    # event loop's timer granularity add (measured by benchmarks/calibration.py: 6.3 req/s).
    # Physically: one decode step of a 3B model on four v6e chips reads ~1.5 GB of weights per chip
    # (~1 ms at 1.6 TB/s); the rest of the 9 ms base is XLA dispatch, sampling and the scheduler's
    # Python work, which is what dominates small models on vLLM.
    request_overhead_s=0.006,
    prefill_base_s=0.020,
    # The later measurement on the real deployment (7d17b91: miss ~442 ms vs hit ~405 ms on a
    # ~150-token prompt, one 128-token block cached) implies ~3.5 k tokens/s of *effective* prefill
    # for small TPU-padded batches; the v6e compute bound for 6 GFLOP/token is far higher. We take
    # 6 k tokens/s: a cache hit on ~150 tokens saves ~21 ms (~11 % end to end, near the measured 8 %),
    # and a 1,500-token shared prefix costs ~250 ms of prefill, so its hit cuts TTFT by ~80 %.
    prefill_tokens_per_s=6_000.0,
    decode_base_s=0.009,
    # Per-sequence host work per step (sampling, detokenization, output processing in Python)
    # dominates a 3B model's decode on vLLM. 4.5 ms per sequence puts the guide's parallel test
    # (20 requests, concurrency 10) at ~18 req/s on one replica and ~25 req/s through the gateway
    # with 3 replicas: the guide's ~25 req/s, above the later measured ~10.7 req/s.
    decode_per_seq_s=0.0045,
    jitter=0.03,
)

CPU_TEST = Profile(
    name="cpu-test",
    model="Qwen/Qwen2.5-3B-Instruct",
    block_size=16,  # vLLM's CUDA default; small so tests hit with short prompts
    num_kv_blocks=1024,
    max_model_len=2048,
    max_num_seqs=32,
    max_waiting=512,
    request_overhead_s=0.0,
    prefill_base_s=0.001,
    prefill_tokens_per_s=200_000.0,
    decode_base_s=0.001,
    decode_per_seq_s=0.00002,
    jitter=0.0,
)

PROFILES: dict[str, Profile] = {p.name: p for p in (TPU_V6E_QWEN25_3B, CPU_TEST)}
DEFAULT_PROFILE = TPU_V6E_QWEN25_3B.name


def get_profile(profile: str | Profile) -> Profile:
    """The profile called ``profile`` (or ``profile`` itself); KeyError naming the known ones."""
    if isinstance(profile, Profile):
        return profile
    try:
        return PROFILES[profile]
    except KeyError:
        raise KeyError(f"unknown replica profile {profile!r}; known: {', '.join(sorted(PROFILES))}") from None
