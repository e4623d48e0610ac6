"""A deterministic stand-in for Qwen2.5's byte-level BPE tokenizer.

Real vLLM tokenizes with the model's HuggingFace tokenizer; the twin cannot download it, so this
module cuts text into word and punctuation pieces the way a BPE vocabulary roughly does:

- a word keeps its leading space (``" hello"``), as GPT/Qwen byte-level BPE does;
- long words are split into chunks of at most ``_CHUNK`` letters, which brings ordinary English to
  roughly 1.3 tokens per word (the usual rule of thumb for Qwen/Llama vocabularies);
- digits are single tokens (Qwen splits numbers digit by digit);
- each punctuation mark is a token; runs of whitespace are one token;
- chat special tokens (``<|im_start|>``, ``<|im_end|>``, ``<|endoftext|>``) are single tokens.

Token ids are FNV-1a hashes of the piece text, so equal text always gives equal ids and a shared
text prefix gives a shared token prefix — which is all the prefix cache needs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache

VOCAB_SIZE = 151_936  # Qwen2.5's vocabulary size
SPECIAL_TOKENS: dict[str, int] = {
    "<|endoftext|>": 151_643,
    "<|im_start|>": 151_644,
    "<|im_end|>": 151_645,
}
_ORDINARY_IDS = 151_643  # ids below the special tokens
_CHUNK = 6
_PIECE = re.compile(
    r"<\|im_start\|>|<\|im_end\|>|<\|endoftext\|>"  # special tokens
    r"| ?[^\W\d_]+"  # a word with its optional leading space
    r"|\d"  # one digit
    r"| ?[^\s\w]"  # one punctuation mark with its optional leading space
    r"|_"  # underscore (a word character that is not a letter)
    r"|\s+",  # a run of whitespace
    re.UNICODE,
)
# Qwen2.5-Instruct's chat template adds this system prompt when the request has none.
DEFAULT_SYSTEM_PROMPT = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."


def _fnv1a_32(data: bytes) -> int:
    value = 0x811C9DC5
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value


@lru_cache(maxsize=65_536)
def _piece_id(piece: str) -> int:
    special = SPECIAL_TOKENS.get(piece)
    if special is not None:
        return special
    return _fnv1a_32(piece.encode("utf-8")) % _ORDINARY_IDS


def _split_word(piece: str) -> list[str]:
    """Cut a long word (with its leading space) into chunks, the leading space staying on the first."""
    if len(piece.strip()) <= _CHUNK + 1:
        return [piece]
    lead = " " if piece.startswith(" ") else ""
    word = piece[len(lead) :]
    chunks = [word[i : i + _CHUNK] for i in range(0, len(word), _CHUNK)]
    if len(chunks) > 1 and len(chunks[-1]) <= 2:  # glue a tiny tail back on, like a merge would
        tail = chunks.pop()
        chunks[-1] += tail
    chunks[0] = lead + chunks[0]
    return chunks


def pieces(text: str) -> list[str]:
    """Split ``text`` into token strings; ``"".join(pieces(t)) == t``."""
    out: list[str] = []
    position = 0
    for match in _PIECE.finditer(text):
        if match.start() != position:  # anything the pattern skipped (should not happen) stays a piece
            out.append(text[position : match.start()])
        piece = match.group(0)
        if piece.strip().isalpha() and piece not in SPECIAL_TOKENS:
            out.extend(_split_word(piece))
        else:
            out.append(piece)
        position = match.end()
    if position != len(text):
        out.append(text[position:])
    return out


def encode(text: str) -> list[int]:
    """Token ids of ``text``."""
    return [_piece_id(piece) for piece in pieces(text)]


def count_tokens(text: str) -> int:
    """Number of tokens of ``text`` (what ``usage.prompt_tokens`` reports for a completion)."""
    return len(pieces(text))


def apply_chat_template(messages: Iterable[Mapping[str, object]], add_generation_prompt: bool = True) -> str:
    """Render chat messages with Qwen2.5's ChatML template (system prompt added when absent).

    Raises ``ValueError`` naming the message when a message has no ``role`` or a non-text content.
    """
    rendered: list[str] = []
    items = list(messages)
    if not items or items[0].get("role") != "system":
        rendered.append(f"<|im_start|>system\n{DEFAULT_SYSTEM_PROMPT}<|im_end|>\n")
    for index, message in enumerate(items):
        role = message.get("role")
        if not isinstance(role, str) or not role:
            raise ValueError(f"messages[{index}] has no 'role'; give each message a role such as 'user'")
        rendered.append(f"<|im_start|>{role}\n{message_text(message, index)}<|im_end|>\n")
    if add_generation_prompt:
        rendered.append("<|im_start|>assistant\n")
    return "".join(rendered)


def message_text(message: Mapping[str, object], index: int = 0) -> str:
    """The text of one chat message: a string ``content`` or the text parts of a content list."""
    content = message.get("content")
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, Mapping) and part.get("type") == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            else:
                raise ValueError(
                    f"messages[{index}].content has a non-text part; this model accepts text only"
                )
        return "".join(texts)
    raise ValueError(f"messages[{index}].content must be a string or a list of text parts")
