"""Pod logs: tail (with ``follow``) and detect the start-up milestones the guide tells people to watch.

:data:`MILESTONES` is the one table of patterns (storage initializer and vLLM on TPU, in the guide's
order). :func:`follow_milestones` streams a container's log with the kubernetes client
(``read_namespaced_pod_log(follow=True, _preload_content=False)``), reports each milestone as it
appears with its time since the start, and stops at the last one (or a timeout naming the milestones
still missing).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

import pandas as pd

from rhaii_nb.display import Live, elapsed
from rhaii_nb.pods import WaitTimeout


@dataclass(frozen=True)
class Milestone:
    """A log line that marks progress; ``value`` is the first capture group (e.g. seconds, tokens)."""

    key: str
    description: str
    pattern: re.Pattern[str]
    container: str = "main"


def _m(key: str, description: str, pattern: str, container: str = "main") -> Milestone:
    return Milestone(key, description, re.compile(pattern), container)


MILESTONES: list[Milestone] = [
    _m(
        "model_copied",
        "model downloaded to /mnt/models",
        r"Successfully copied (\S+) to /mnt/models",
        "storage-initializer",
    ),
    _m("shards_loaded", "checkpoint shards 100%", r"Loading safetensors checkpoint shards: 100%"),
    _m("weights_loaded", "weights loaded (seconds)", r"Loading weights took ([\d.]+) seconds"),
    _m("kv_cache", "KV cache allocated (tokens)", r"(?:GPU|TPU) KV cache size: ([\d,]+) tokens"),
    _m("xla_compiling", "XLA compilation started", r"Compiling the model with different input shapes"),
    _m("xla_compiled", "XLA compilation done", r"Compiled the model with different input shapes"),
    _m("server_up", "server up", r"Uvicorn running on (\S+)|Application startup complete"),
]


@dataclass
class MilestoneHit:
    """A milestone seen in the log."""

    key: str
    description: str
    value: str
    seconds: float  # since following started
    line: str


def find_milestones(
    lines: list[str], milestones: list[Milestone] | None = None
) -> list[tuple[Milestone, str]]:
    """The milestones present in ``lines`` (first occurrence each), in table order, with their value."""
    found = []
    for milestone in milestones or MILESTONES:
        for line in lines:
            match = milestone.pattern.search(line)
            if match:
                found.append(
                    (milestone, next((g for g in match.groups() if g), "") if match.groups() else "")
                )
                break
    return found


def tail(
    session: Any,
    pod: str,
    namespace: str,
    container: str | None = "main",
    lines: int = 20,
    previous: bool = False,
) -> list[str]:
    """The last ``lines`` lines of a container's log (``previous`` = the crashed instance)."""
    text = session.core.read_namespaced_pod_log(
        pod, namespace, container=container, tail_lines=lines, previous=previous
    )
    return text.splitlines() if text else []


def stream_lines(
    session: Any,
    pod: str,
    namespace: str,
    container: str | None = "main",
    timeout: float = 60.0,
    since_seconds: int | None = None,
) -> Any:
    """Yield log lines as the container writes them (``follow``), until it ends or ``timeout`` passes."""
    response = session.core.read_namespaced_pod_log(
        pod,
        namespace,
        container=container,
        follow=True,
        _preload_content=False,
        since_seconds=since_seconds,
        _request_timeout=(10, timeout),
    )
    buffer = b""
    try:
        for chunk in response.stream(4096, decode_content=True):
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                yield line.decode("utf-8", "replace").rstrip("\r")
        if buffer:
            yield buffer.decode("utf-8", "replace")
    finally:
        response.close()
        response.release_conn()


def follow_milestones(
    session: Any,
    pod: str,
    namespace: str,
    *,
    timeout: float,
    milestones: list[Milestone] | None = None,
    show: bool = True,
) -> pd.DataFrame:
    """Follow the pod's logs and report each milestone as it appears; returns them as a DataFrame.

    Columns: ``milestone``, ``description``, ``value``, ``seconds`` (since following started), ``line``.
    Milestones already in the log when following starts are reported at 0 s. Raises
    :class:`~rhaii_nb.pods.WaitTimeout` naming the milestones still missing when ``timeout`` passes.
    """
    from kubernetes.client.exceptions import ApiException

    table = milestones or MILESTONES
    started = time.monotonic()
    deadline = started + timeout
    hits: dict[str, MilestoneHit] = {}
    live = Live(enabled=show, min_interval_s=0.0)
    containers = list(dict.fromkeys(m.container for m in table))
    try:
        for container in containers:
            wanted = [m for m in table if m.container == container]
            while not all(m.key in hits for m in wanted) and time.monotonic() < deadline:
                try:
                    for line in stream_lines(
                        session, pod, namespace, container, timeout=deadline - time.monotonic()
                    ):
                        for milestone in wanted:
                            if milestone.key not in hits:
                                match = milestone.pattern.search(line)
                                if match:
                                    value = (
                                        next((g for g in match.groups() if g), "") if match.groups() else ""
                                    )
                                    hits[milestone.key] = MilestoneHit(
                                        milestone.key,
                                        milestone.description,
                                        value,
                                        round(time.monotonic() - started, 3),
                                        line,
                                    )
                                    live.update(
                                        _frame(table, hits).to_string(index=False)
                                        if not live._kernel
                                        else _frame(table, hits)
                                    )
                        if all(m.key in hits for m in wanted) or time.monotonic() >= deadline:
                            break
                    else:
                        # the stream ended: the container finished or restarted, or is not started yet
                        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
                except ApiException as exc:
                    if exc.status not in (400, 404):  # 400: container still waiting to start
                        raise
                    time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
                except _read_timeouts():
                    pass
    finally:
        live.close()
    missing = [m.description for m in table if m.key not in hits]
    if missing:
        raise WaitTimeout(
            f"Timed out after {elapsed(timeout)} following the logs of {namespace}/{pod}: still missing "
            f"{', '.join(missing)}. Last lines:\n"
            + "\n".join(f"  {line}" for line in _last_lines(session, pod, namespace))
        )
    return _frame(table, hits)


def service_milestones(
    session: Any, params: Any, *, timeout: float | None = None, show: bool = True
) -> pd.DataFrame:
    """``follow_milestones`` on the service's first vLLM pod (by name): model download, weights, KV cache,
    XLA compilation, server up. A pod that started earlier reports every milestone at 0 s."""
    from rhaii_nb import names

    pods = session.core.list_namespaced_pod(
        params.namespace, label_selector=names.workload_selector(params.service_name)
    ).items
    live = sorted(p.metadata.name for p in pods if not p.metadata.deletion_timestamp)
    if not live:
        raise WaitTimeout(
            f"no vLLM pod of {params.namespace}/{params.service_name} to follow: "
            "apply the LLMInferenceService first (04_inference_service)"
        )
    timeout = timeout if timeout is not None else params.wait_s("ready_timeout_s")
    return follow_milestones(session, live[0], params.namespace, timeout=timeout, show=show)


def _frame(table: list[Milestone], hits: dict[str, MilestoneHit]) -> pd.DataFrame:
    rows = [
        {
            "milestone": m.key,
            "description": m.description,
            "value": hits[m.key].value,
            "seconds": hits[m.key].seconds,
            "line": hits[m.key].line,
        }
        for m in table
        if m.key in hits
    ]
    return pd.DataFrame(rows, columns=["milestone", "description", "value", "seconds", "line"])


def _last_lines(session: Any, pod: str, namespace: str) -> list[str]:
    try:
        return tail(session, pod, namespace, "main", lines=5)
    except Exception:
        return ["(log not available)"]


def _read_timeouts() -> tuple[type[BaseException], ...]:
    import urllib3

    return (urllib3.exceptions.ReadTimeoutError, urllib3.exceptions.ProtocolError, TimeoutError)
