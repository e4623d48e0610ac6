"""Readable, deterministic generated text for the vLLM stand-in.

The answer to a prompt depends only on ``(seed, prompt)``: sentences drawn from a small phrase
bank, cut into tokens with the twin's tokenizer. A prompt asking to translate into French gets a
French-ish answer. Each answer has a natural length (its end-of-sequence point); a request that
allows fewer tokens stops early with ``finish_reason="length"``.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from rhaii_nb.twin.inference.tokenizer import pieces

_ENGLISH = [
    "Machine learning lets computers find patterns in data and improve with experience.",
    "A model learns from examples, then applies what it learned to new inputs.",
    "Inference is the step where a trained model answers a request.",
    "Caching the shared part of a prompt saves the work of computing it again.",
    "Large language models predict the next token from the tokens before it.",
    "The key and value tensors of earlier tokens are kept so that decoding stays fast.",
    "Routing similar requests to the same replica keeps their prefixes warm.",
    "Batching many sequences together makes better use of the accelerator.",
    "A good answer is short, accurate and easy to check.",
    "Tensor parallelism splits each layer across several chips.",
    "Every request is scheduled, prefilled once and then decoded token by token.",
    "Latency is the time a user waits; throughput is the work done per second.",
    "The scheduler balances cache affinity against the length of each queue.",
    "Small prompts barely touch the cache because a block must be full to be reused.",
    "Good observability turns a guess about performance into a measurement.",
    "Two plus two equals four, a fact that needs no accelerator at all.",
]
_FRENCH = [
    "Bonjour le monde.",
    "Bonjour à tout le monde, et bienvenue.",
    "Le modèle répond rapidement quand le préfixe est déjà en cache.",
    "La traduction est simple : bonjour signifie hello.",
    "Merci beaucoup, et bonne journée.",
    "Le monde est grand, mais la réponse est courte.",
]
_MIN_TOKENS, _MAX_TOKENS = 16, 96


@dataclass(frozen=True)
class Answer:
    """The text a replica generates for one prompt: its tokens and natural length."""

    tokens: list[str]  # enough tokens for any request (at least ``natural_length``)
    natural_length: int  # tokens before the model would emit end-of-sequence

    def take(self, max_tokens: int, ignore_eos: bool = False) -> tuple[list[str], str]:
        """The tokens a request gets and its ``finish_reason`` (``stop`` or ``length``)."""
        if not ignore_eos and self.natural_length <= max_tokens:
            return self.tokens[: self.natural_length], "stop"
        tokens = self.tokens
        while len(tokens) < max_tokens:  # ignore_eos: keep talking
            tokens = tokens + self.tokens
        return tokens[:max_tokens], "length"


def _rng(seed: int | str, prompt: str) -> random.Random:
    digest = hashlib.sha256(f"{seed}\x00{prompt}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def generate(prompt: str, *, seed: int | str = 0, min_tokens: int = 0) -> Answer:
    """The deterministic answer to ``prompt`` for a replica seeded with ``seed``."""
    rng = _rng(seed, prompt)
    bank = _FRENCH if "french" in prompt.lower() else _ENGLISH
    target = rng.randint(_MIN_TOKENS, _MAX_TOKENS)
    tokens: list[str] = []

    def add_sentence() -> None:
        tokens.extend(pieces((" " if tokens else "") + rng.choice(bank)))

    while len(tokens) < target:  # the answer ends at a sentence boundary
        add_sentence()
    natural = max(len(tokens), min_tokens)
    while len(tokens) <= natural:
        add_sentence()
    return Answer(tokens=tokens, natural_length=natural)
