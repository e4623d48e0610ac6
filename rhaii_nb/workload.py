"""Prompts for the cache demos: long shared prefixes, P prefixes x S suffixes, and short-prompt notes.

Token counts use the twin's tokenizer, built to approximate Qwen2.5's (~1.3 tokens per English
word); against real vLLM the true counts differ by a few percent, which does not matter for
choosing a prefix "well above one 128-token block".
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from rhaii_nb.twin.inference.tokenizer import count_tokens

TPU_BLOCK_SIZE = 128  # tokens per KV block in vLLM on TPU
GUIDE_SHORT_PROMPT = "Translate to French: Hello world"

_WORD_TEXT = (
    "the model serves requests from many users while the scheduler keeps each replica busy and the cache "
    "holds recent prefixes so repeated context costs less time every team writes a clear system prompt "
    "that explains policies tone format and examples before the question arrives customers ask about "
    "orders invoices shipping returns accounts passwords warranties upgrades and support hours agents "
    "answer politely cite the relevant policy section and avoid guessing when information is missing "
    "latency matters because people wait for the first words throughput matters because hardware is "
    "expensive operators watch dashboards alerts and logs to keep the service healthy and predictable"
)
_WORDS = tuple(_WORD_TEXT.split())


def estimate_tokens(text: str) -> int:
    """Approximate token count of ``text`` for a Qwen2.5-class tokenizer."""
    return count_tokens(text)


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(8, 16))]
    return " ".join(words).capitalize() + "."


def long_prefix(tokens: int, *, seed: int | str = 0, label: str | None = None) -> str:
    """Deterministic English-like text of about ``tokens`` tokens (never fewer).

    ``label`` starts the text (e.g. ``"Policy 3"``) so that different prefixes differ from their
    first block on; the same ``(tokens, seed, label)`` always gives the same text.
    """
    if tokens < 1:
        raise ValueError(f"tokens must be at least 1, got {tokens}")
    rng = random.Random(f"{seed}/{label}/{tokens}")
    parts = [f"{label}:" if label else "Context:"]
    text = parts[0]
    while count_tokens(text) < tokens:
        parts.append(_sentence(rng))
        text = " ".join(parts)
    # trim whole words from the end while staying at or above the target
    words = text.split(" ")
    while len(words) > 1 and count_tokens(" ".join(words[:-1])) >= tokens:
        words.pop()
    return " ".join(words)


@dataclass(frozen=True)
class WorkloadPrompt:
    """One prompt of a shared-prefix workload."""

    prefix_id: int
    suffix_id: int
    text: str
    prefix_tokens: int


def shared_prefix_workload(
    prefixes: int = 3,
    suffixes: int = 10,
    prefix_tokens: int = 1500,
    *,
    suffix_tokens: int = 20,
    seed: int | str = 0,
    order: str = "interleaved",
) -> list[WorkloadPrompt]:
    """P prefixes x S suffixes (like inference-perf's ``shared_prefix`` / vLLM's prefix_repetition).

    ``order="interleaved"`` cycles prefixes (p0 s0, p1 s0, ..., p0 s1, ...) so a cache-blind router
    spreads each prefix over replicas; ``"grouped"`` sends each prefix's prompts together; ``"shuffled"``
    is a seeded random order.
    """
    if prefixes < 1 or suffixes < 1 or prefix_tokens < 1:
        raise ValueError("prefixes, suffixes and prefix_tokens must be at least 1")
    if order not in ("interleaved", "grouped", "shuffled"):
        raise ValueError(f"order must be 'interleaved', 'grouped' or 'shuffled', not {order!r}")
    heads = [long_prefix(prefix_tokens, seed=seed, label=f"Policy {p}") for p in range(prefixes)]
    prompts = [
        WorkloadPrompt(
            p,
            s,
            f"{heads[p]} {long_prefix(suffix_tokens, seed=f'{seed}/{p}', label=f'Question {s}')}",
            estimate_tokens(heads[p]),
        )
        for s in range(suffixes)
        for p in range(prefixes)
    ]
    if order == "grouped":
        prompts.sort(key=lambda w: (w.prefix_id, w.suffix_id))
    elif order == "shuffled":
        random.Random(f"order/{seed}").shuffle(prompts)
    return prompts


def cache_note(prompt: str, block_size: int = TPU_BLOCK_SIZE) -> str | None:
    """A warning when ``prompt`` cannot hit vLLM's prefix cache (not more than one KV block), else None."""
    tokens = estimate_tokens(prompt)
    if tokens > block_size:
        return None
    return (
        f"The prompt has about {tokens} tokens, not more than one {block_size}-token KV block: vLLM caches "
        "only full blocks and always recomputes the last prompt token, so this prompt can never hit the "
        f"prefix cache. Use a shared prefix longer than {block_size} tokens, e.g. "
        "rhaii_nb.workload.long_prefix(300) + your question."
    )


def default_cache_prompt(prefix_tokens: int = 300) -> str:
    """The measuring helpers' default: a shared prefix well above one TPU block, then the guide's prompt."""
    return f"{long_prefix(prefix_tokens, label='Translation office instructions')} {GUIDE_SHORT_PROMPT}"


def fresh_cache_prompt(prefix_tokens: int = 300) -> str:
    """Like ``default_cache_prompt`` but with a prefix no server has seen yet (a random label), so the
    first request is a real cache miss also when the test runs again on the same service."""
    import uuid

    label = f"Translation office instructions {uuid.uuid4().hex[:8]}"
    return f"{long_prefix(prefix_tokens, label=label)} {GUIDE_SHORT_PROMPT}"
