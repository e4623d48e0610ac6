"""The engine of the vLLM stand-in: a FCFS waiting queue and continuous batching in real time.

Each scheduler step (one ``asyncio.sleep``) does what one vLLM engine step does:

1. admit waiting requests in arrival order while fewer than ``max_num_seqs`` run and their KV
   blocks can be allocated (cache hits are taken, new blocks may evict cached ones); a request
   whose blocks are not free keeps everyone behind it waiting;
2. sleep for the step: the prefill of the admitted requests (their *uncached* tokens only) plus
   one decode step for the already running ones, whose cost grows with the batch size;
3. the admitted requests emit their first token (and their prompt blocks become cache entries),
   the running ones one more token; finished requests release their blocks.

Latency is real wall time and is never scaled by the twin's ``time_scale``. Back-to-back steps are
timed against their planned end, not from when the event loop happened to wake: a timer fires up to
~1 ms late (epoll's millisecond resolution plus the loop's own work), and over a request's steps that
lateness would add up to latency the profile does not model. Only lateness up to ``CATCH_UP_S`` is
made up; a longer stall (a busy machine) is not compressed out of later steps.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from dataclasses import dataclass, field

from rhaii_nb.twin.inference.metrics import ReplicaMetrics
from rhaii_nb.twin.inference.prefix_cache import Allocation, BlockHash, PrefixCache
from rhaii_nb.twin.inference.profiles import Profile


class EngineFull(Exception):
    """The waiting queue is full; the server answers 429."""


_DONE = None  # end-of-stream marker in a request's token queue
CATCH_UP_S = 0.002  # timer lateness a step may absorb from the previous one


@dataclass(eq=False)
class EngineRequest:
    """One request inside the engine: its prompt, its planned output and its progress."""

    request_id: str
    token_ids: list[int]
    block_hashes: list[BlockHash]
    output: list[str]  # tokens the request will emit (already cut to max_tokens / natural end)
    finish_reason: str  # "stop" or "length" once all of ``output`` is emitted
    arrival: float = field(default_factory=time.monotonic)
    allocation: Allocation | None = None
    emitted: int = 0
    admitted_at: float | None = None
    first_token_at: float | None = None
    last_token_at: float | None = None
    finished_at: float | None = None
    aborted: bool = False
    tokens: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)

    @property
    def num_prompt_tokens(self) -> int:
        """Prompt length in tokens."""
        return len(self.token_ids)

    @property
    def cached_tokens(self) -> int:
        """Prompt tokens served from the prefix cache (0 before admission)."""
        return self.allocation.cached_tokens if self.allocation else 0

    @property
    def done(self) -> bool:
        """Whether the request has emitted all its tokens (or was aborted)."""
        return self.aborted or self.emitted >= len(self.output)

    async def stream(self):  # -> AsyncIterator[str]
        """Yield the output tokens as the engine produces them."""
        while True:
            piece = await self.tokens.get()
            if piece is _DONE:
                return
            yield piece


class Engine:
    """Continuous batching over one replica's prefix cache."""

    def __init__(
        self, profile: Profile, cache: PrefixCache, *, seed: int = 0, metrics: ReplicaMetrics | None = None
    ) -> None:
        self.profile = profile
        self.cache = cache
        self.metrics = metrics
        self._rng = random.Random(seed)
        self._waiting: deque[EngineRequest] = deque()
        self._running: list[EngineRequest] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._step_end: float | None = None  # loop time the previous step was planned to end
        self.steps = 0
        self.max_batch_seen = 0

    # ---- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the scheduler loop (idempotent)."""
        if self._task is None or self._task.done():
            self._wake = asyncio.Event()
            self._task = asyncio.create_task(self._loop(), name="replica-engine")

    async def stop(self) -> None:
        """Stop the loop and end every request's stream (they finish with ``abort``)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for request in [*self._waiting, *self._running]:
            self._end(request, aborted=True)
        self._waiting.clear()
        self._running.clear()

    # ---- requests ------------------------------------------------------------------------------
    def submit(self, request: EngineRequest) -> None:
        """Queue a request; raises ``EngineFull`` when the waiting queue is at capacity."""
        if self._task is None:
            raise RuntimeError("engine not started; call `await engine.start()` first")
        if len(self._waiting) >= self.profile.max_waiting:
            raise EngineFull(f"the waiting queue is full ({self.profile.max_waiting} requests)")
        self._waiting.append(request)
        self._wake.set()

    def abort(self, request: EngineRequest) -> None:
        """Give up on a request (client went away); its blocks are released at the next step."""
        if request.finished_at is None:
            request.aborted = True
            self._wake.set()

    @property
    def num_running(self) -> int:
        """Requests holding KV blocks (prefilling or decoding)."""
        return len(self._running)

    @property
    def num_waiting(self) -> int:
        """Requests queued for admission."""
        return len(self._waiting)

    # ---- the loop ------------------------------------------------------------------------------
    def _admit(self) -> list[EngineRequest]:
        admitted: list[EngineRequest] = []
        while self._waiting and len(self._running) + len(admitted) < self.profile.max_num_seqs:
            request = self._waiting[0]
            if request.aborted:
                self._waiting.popleft()
                self._end(request, aborted=True)
                continue
            allocation = self.cache.allocate(
                request.block_hashes,
                request.num_prompt_tokens,
                request.num_prompt_tokens + len(request.output),
            )
            if allocation is None:
                break  # not enough free KV blocks: wait for running requests to finish
            self._waiting.popleft()
            request.allocation = allocation
            request.admitted_at = time.monotonic()
            admitted.append(request)
            if self.metrics:
                self.metrics.record_admission(
                    request.num_prompt_tokens, allocation.cached_tokens, request.admitted_at - request.arrival
                )
        return admitted

    def _step_seconds(self, admitted: list[EngineRequest], decoding: list[EngineRequest]) -> float:
        profile = self.profile
        seconds = 0.0
        if admitted:
            uncached = sum(r.allocation.uncached_tokens for r in admitted if r.allocation)
            seconds += profile.prefill_base_s + uncached / profile.prefill_tokens_per_s
        if decoding:
            seconds += profile.decode_base_s + profile.decode_per_seq_s * len(decoding)
        if profile.jitter > 0:
            seconds *= min(1.3, max(0.7, self._rng.gauss(1.0, profile.jitter)))
        return seconds

    async def _loop(self) -> None:
        while True:
            self._reap_aborted()
            if not self._waiting and not self._running:
                self._wake.clear()
                self._step_end = None
                await self._wake.wait()
                continue
            admitted = self._admit()
            decoding = list(self._running)
            if not admitted and not decoding:
                # Only blocked or aborted requests are waiting; wait for something to change.
                self._wake.clear()
                self._step_end = None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=0.05)
                continue
            self.max_batch_seen = max(self.max_batch_seen, len(decoding) + len(admitted))
            await self._sleep_step(self._step_seconds(admitted, decoding))
            self.steps += 1
            now = time.monotonic()
            for request in admitted:
                if request.allocation:
                    self.cache.commit(request.allocation)
                self._running.append(request)
                self._emit(request, now)
            for request in decoding:
                self._emit(request, now)
            for request in [r for r in self._running if r.done]:
                self._running.remove(request)
                self._end(request, aborted=request.aborted)

    async def _sleep_step(self, seconds: float) -> None:
        """Sleep until the step's planned end: the previous step's planned end (if the loop woke at most
        ``CATCH_UP_S`` after it) or now, plus ``seconds``."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        start = self._step_end if self._step_end is not None and now - self._step_end <= CATCH_UP_S else now
        self._step_end = start + seconds
        await asyncio.sleep(max(0.0, self._step_end - now))

    def _reap_aborted(self) -> None:
        for request in [r for r in self._running if r.aborted]:
            self._running.remove(request)
            self._end(request, aborted=True)

    def _emit(self, request: EngineRequest, now: float) -> None:
        if request.done:
            return
        request.tokens.put_nowait(request.output[request.emitted])
        request.emitted += 1
        if request.first_token_at is None:
            request.first_token_at = now
            if self.metrics and request.admitted_at is not None:
                self.metrics.record_first_token(now - request.arrival, now - request.admitted_at)
        elif self.metrics and request.last_token_at is not None:
            self.metrics.record_token_gap(now - request.last_token_at)
        request.last_token_at = now

    def _end(self, request: EngineRequest, *, aborted: bool) -> None:
        if request.finished_at is not None:
            return
        request.finished_at = time.monotonic()
        if request.allocation is not None:
            self.cache.free(request.allocation)
        if aborted:
            request.aborted = True
            request.finish_reason = "abort"
        elif self.metrics:
            self.metrics.record_finish(
                request.finish_reason, request.emitted, request.finished_at - request.arrival
            )
        request.tokens.put_nowait(_DONE)
