"""Backoff on transient API errors: 429, 5xx, connection resets and timeouts — never on other 4xx.

One policy (:class:`Backoff`), three adapters for the three HTTP stacks the helpers use:

- :func:`urllib3_retry` — for the ``kubernetes`` client (its REST layer is a urllib3 ``PoolManager``
  built with ``Configuration.retries``);
- :func:`google_retry` — a ``google.api_core.retry.Retry`` for google-cloud-container calls;
- :class:`RetryTransport` / :class:`AsyncRetryTransport` — httpx transports (httpx's own transport
  retries only cover connection failures, not 429/5xx answers).

All honour ``Retry-After`` (capped by ``Backoff.cap_s``) and count the retries they make in
:data:`STATS`, so a notebook can say how many transient errors were absorbed.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import urllib3
from google.api_core import exceptions as gexc
from google.api_core import retry as gretry

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})

T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter, a per-sleep cap, and limits on attempts and total time."""

    base_s: float = 0.5
    cap_s: float = 10.0
    max_attempts: int = 6  # first try included
    max_total_s: float = 60.0
    jitter: bool = True

    def delay(self, retry_number: int, retry_after: float | None = None) -> float:
        """Seconds to sleep before retry ``retry_number`` (1-based); Retry-After wins when given."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.cap_s)
        ceiling = min(self.cap_s, self.base_s * (2 ** (retry_number - 1)))
        return random.uniform(ceiling / 2, ceiling) if self.jitter else ceiling


DEFAULT_BACKOFF = Backoff()


class RetryStats:
    """Thread-safe count of retries made, by stack (``kubernetes``, ``google``, ``httpx``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: dict[str, int] = {}

    def add(self, stack: str, why: str) -> None:
        """Count one retry and log it (INFO: the trainee sees retries happen, not their payloads)."""
        with self._lock:
            self.counts[stack] = self.counts.get(stack, 0) + 1
        log.info("retrying %s call after %s", stack, why)

    @property
    def total(self) -> int:
        """Retries made so far, all stacks together."""
        with self._lock:
            return sum(self.counts.values())


STATS = RetryStats()


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date); None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    parsed = email.utils.parsedate_tz(value)
    if parsed is None:
        return None
    return max(0.0, email.utils.mktime_tz(parsed) - time.time())


# --- kubernetes (urllib3) ------------------------------------------------------------------------


class _PolicyRetry(urllib3.util.Retry):
    """urllib3 ``Retry`` driven by a :class:`Backoff`: Retry-After on every retryable status, a deadline."""

    RETRY_AFTER_STATUS_CODES = RETRYABLE_STATUS
    policy: Backoff = DEFAULT_BACKOFF

    def __init__(self, *args: Any, policy: Backoff | None = None, started: float | None = None, **kw: Any):
        super().__init__(*args, **kw)
        self.policy = policy or DEFAULT_BACKOFF
        self.started = started if started is not None else time.monotonic()

    def new(self, **kw: Any) -> _PolicyRetry:
        """Copy carrying the policy and the start time across attempts."""
        kw.setdefault("policy", self.policy)
        kw.setdefault("started", self.started)
        return super().new(**kw)

    def get_backoff_time(self) -> float:
        """Exponential backoff with jitter from the policy, counted from the first retry."""
        return self.policy.delay(max(1, len(self.history)))

    def get_retry_after(self, response: Any) -> float | None:
        """The server's Retry-After, capped by the policy."""
        seconds = parse_retry_after(response.headers.get("Retry-After"))
        return None if seconds is None else min(seconds, self.policy.cap_s)

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: Any = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: Any = None,
    ) -> _PolicyRetry:
        """Count the retry; stop retrying (return the last answer) once the total time is used up."""
        if time.monotonic() - self.started > self.policy.max_total_s:
            if response is not None and not self.raise_on_status:
                return self.new(total=0, status=0)  # urllib3 then hands back this response
            if error is not None:
                raise error
        why = f"HTTP {response.status}" if response is not None else type(error).__name__
        STATS.add("kubernetes", f"{why} ({method} {url})")
        return super().increment(method, url, response, error, _pool, _stacktrace)


def urllib3_retry(policy: Backoff = DEFAULT_BACKOFF) -> urllib3.util.Retry:
    """A urllib3 ``Retry`` for ``kubernetes.client.Configuration.retries``.

    Retries every method on 429/5xx (Kubernetes writes are safe to repeat: a create answers 409
    AlreadyExists, apply and patch converge) and on connection errors; the final failing answer is
    returned (``raise_on_status=False``) so the client raises its usual ``ApiException``.
    """
    return _PolicyRetry(
        total=policy.max_attempts - 1,
        connect=policy.max_attempts - 1,
        read=policy.max_attempts - 1,
        status=policy.max_attempts - 1,
        redirect=0,
        allowed_methods=None,
        status_forcelist=RETRYABLE_STATUS,
        raise_on_status=False,
        respect_retry_after_header=True,
        policy=policy,
    )


# --- google-api-core -----------------------------------------------------------------------------

_GOOGLE_RETRYABLE = (
    gexc.TooManyRequests,
    gexc.InternalServerError,
    gexc.BadGateway,
    gexc.ServiceUnavailable,
    gexc.GatewayTimeout,
    gexc.ResourceExhausted,  # 429 from REST maps here in some versions
    ConnectionError,
    TimeoutError,
)


def _requests_errors() -> tuple[type[BaseException], ...]:
    import requests

    return (requests.ConnectionError, requests.Timeout)


def google_retryable(exc: Exception) -> bool:
    """Whether a google-api-core call error is transient (429/5xx/connection), never another 4xx."""
    if isinstance(exc, gexc.GoogleAPICallError):
        return exc.code in RETRYABLE_STATUS or isinstance(exc, _GOOGLE_RETRYABLE)
    return isinstance(exc, _GOOGLE_RETRYABLE + _requests_errors())


def _google_retry_after(exc: Exception) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    return parse_retry_after(headers.get("Retry-After")) if headers is not None else None


class _RetryAfterRetry(gretry.Retry):
    """``google.api_core.retry.Retry`` whose sleeps honour Retry-After and stop after max attempts."""

    def __init__(self, policy: Backoff) -> None:
        super().__init__(
            predicate=google_retryable,
            initial=policy.base_s,
            maximum=policy.cap_s,
            multiplier=2.0,
            timeout=policy.max_total_s,
        )
        self.policy = policy

    def __call__(
        self, func: Callable[..., T], on_error: Callable[[Exception], Any] | None = None
    ) -> Callable[..., T]:
        policy = self.policy

        def wrapped(*args: Any, **kwargs: Any) -> T:
            last: list[Exception] = []

            def remember(exc: Exception) -> None:
                last.append(exc)
                STATS.add("google", f"{type(exc).__name__} from {getattr(func, '__name__', 'call')}")
                if on_error is not None:
                    on_error(exc)

            def sleeps() -> Iterator[float]:
                for n in range(1, policy.max_attempts):
                    yield policy.delay(n, _google_retry_after(last[-1]) if last else None)
                # out of attempts: re-raise the last error instead of sleeping again
                raise last[-1]

            return gretry.retry_target(
                lambda: func(*args, **kwargs),
                self._predicate,
                sleeps(),
                timeout=self._timeout,
                on_error=remember,
            )

        return wrapped


def google_retry(policy: Backoff = DEFAULT_BACKOFF) -> gretry.Retry:
    """A ``retry=`` object for google-cloud-* client calls (429/5xx/connection errors, Retry-After)."""
    return _RetryAfterRetry(policy)


# --- generic and httpx ---------------------------------------------------------------------------


def call_with_retry(
    fn: Callable[[], T],
    *,
    retryable: Callable[[Exception], float | bool | None],
    policy: Backoff = DEFAULT_BACKOFF,
    stack: str = "call",
) -> T:
    """Call ``fn``; on an exception that ``retryable`` accepts, back off and try again.

    ``retryable(exc)`` returns False (not retryable), True (retry with backoff) or a float (retry
    after that many seconds, e.g. from Retry-After).
    """
    started = time.monotonic()
    for attempt in range(1, policy.max_attempts + 1):
        try:
            return fn()
        except Exception as exc:
            verdict = retryable(exc)
            if verdict is False or attempt == policy.max_attempts:
                raise
            pause = policy.delay(attempt, None if verdict is True else float(verdict))
            if time.monotonic() - started + pause > policy.max_total_s:
                raise
            STATS.add(stack, type(exc).__name__)
            time.sleep(pause)
    raise AssertionError("unreachable")  # pragma: no cover


def _httpx_pause(
    policy: Backoff, attempt: int, started: float, response: httpx.Response | None, error: Exception | None
) -> float | None:
    """Seconds to wait before trying again, or None when this answer (or error) goes to the caller.

    Retries transport errors and 429/5xx (honouring Retry-After) while attempts and the total budget
    last; a retry is counted in :data:`STATS`.
    """
    if error is not None:
        retry, after = isinstance(error, httpx.TransportError), None
    else:
        assert response is not None
        retry = response.status_code in RETRYABLE_STATUS
        after = parse_retry_after(response.headers.get("Retry-After")) if retry else None
    pause = policy.delay(attempt, after)
    out_of_budget = time.monotonic() - started + pause > policy.max_total_s
    if not retry or attempt == policy.max_attempts or out_of_budget:
        return None
    STATS.add("httpx", f"HTTP {response.status_code}" if response is not None else type(error).__name__)
    return pause


def _httpx_final(response: httpx.Response | None, error: Exception | None) -> httpx.Response:
    """The last attempt's outcome for the caller: its error raised, or its answer."""
    if error is not None:
        raise error
    assert response is not None
    return response


class RetryTransport(httpx.BaseTransport):
    """httpx transport retrying 429/5xx answers and transport errors, honouring Retry-After."""

    def __init__(
        self,
        inner: httpx.BaseTransport | None = None,
        policy: Backoff = DEFAULT_BACKOFF,
        **transport_kwargs: Any,
    ) -> None:
        self.inner = inner or httpx.HTTPTransport(**transport_kwargs)
        self.policy = policy

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send, retrying transient failures; the last answer or error goes to the caller."""
        started = time.monotonic()
        for attempt in range(1, self.policy.max_attempts + 1):
            response, error = None, None
            try:
                response = self.inner.handle_request(request)
            except httpx.TransportError as exc:
                error = exc
            pause = _httpx_pause(self.policy, attempt, started, response, error)
            if pause is None:
                return _httpx_final(response, error)
            if response is not None:
                response.close()
            time.sleep(pause)
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        """Close the wrapped transport."""
        self.inner.close()


class AsyncRetryTransport(httpx.AsyncBaseTransport):
    """Async twin of :class:`RetryTransport`."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport | None = None,
        policy: Backoff = DEFAULT_BACKOFF,
        **transport_kwargs: Any,
    ) -> None:
        self.inner = inner or httpx.AsyncHTTPTransport(**transport_kwargs)
        self.policy = policy

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send, retrying transient failures; the last answer or error goes to the caller."""
        started = time.monotonic()
        for attempt in range(1, self.policy.max_attempts + 1):
            response, error = None, None
            try:
                response = await self.inner.handle_async_request(request)
            except httpx.TransportError as exc:
                error = exc
            pause = _httpx_pause(self.policy, attempt, started, response, error)
            if pause is None:
                return _httpx_final(response, error)
            if response is not None:
                await response.aclose()
            await asyncio.sleep(pause)
        raise AssertionError("unreachable")  # pragma: no cover

    async def aclose(self) -> None:
        """Close the wrapped transport."""
        await self.inner.aclose()
