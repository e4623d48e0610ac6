"""Mask secret values in anything a helper prints, logs or raises.

A process-wide registry holds the known secret values; ``register_params(params)`` loads them from
the params' secret files. ``redact(text)`` masks every registered value (and any extra ones given).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any

MASK = "***"
# Shorter strings would mask ordinary words; real tokens and passwords are longer.
MIN_SECRET_LENGTH = 6

_lock = threading.Lock()
_registry: set[str] = set()


def register(*values: str) -> None:
    """Add secret values to the registry (short or empty ones are ignored)."""
    with _lock:
        _registry.update(v for v in values if isinstance(v, str) and len(v) >= MIN_SECRET_LENGTH)


def register_params(params: Any) -> list[str]:
    """Register the values in ``params.hf_token_file`` / ``params.pull_secret_file``; return them."""
    from rhaii_nb.secret_files import secret_values_of_files

    values = secret_values_of_files(
        getattr(params, "hf_token_file", None), getattr(params, "pull_secret_file", None)
    )
    register(*values)
    return values


def known_secrets() -> frozenset[str]:
    """The registered secret values (for tests and for helpers scanning outputs)."""
    with _lock:
        return frozenset(_registry)


def clear() -> None:
    """Forget every registered value (tests)."""
    with _lock:
        _registry.clear()


def redact(text: str, secrets: Iterable[str] | None = None) -> str:
    """``text`` with each secret replaced by ``***``; ``secrets`` None means the registry only."""
    values = set(known_secrets())
    if secrets is not None:
        values.update(v for v in secrets if isinstance(v, str) and len(v) >= MIN_SECRET_LENGTH)
    if not values or not text:
        return text
    for value in sorted(values, key=len, reverse=True):  # longest first: a password inside its JSON
        text = text.replace(value, MASK)
    return text


def redact_known(text: str) -> str:
    """``redact(text)`` against the registry."""
    return redact(text)


def redact_data(data: Any, secrets: Iterable[str] | None = None) -> Any:
    """Redact every string inside nested dicts/lists (e.g. a summary before writing it)."""
    if isinstance(data, str):
        return redact(data, secrets)
    if isinstance(data, dict):
        return {key: redact_data(value, secrets) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [redact_data(value, secrets) for value in data]
    return data


class RedactingFilter(logging.Filter):
    """Logging filter that masks registered secrets in every record's message."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message with secrets masked; never drops a record."""
        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True
