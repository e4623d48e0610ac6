"""What every part of the twin shares: the store, the settings, the PKI and the replica registry.

The daemon builds one ``TwinContext`` and hands it to each server and controller. Parts talk to one
another only through the store (like real components through the Kubernetes API) and through the
few hooks below.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from rhaii_nb.twin.store import Store


@dataclass
class ReplicaInfo:
    """One running vLLM-like replica server, backing one workload pod."""

    namespace: str
    pod_name: str
    pod_uid: str
    labels: dict[str, str]
    host: str
    port: int
    ready: bool = False
    server: Any = None  # the ReplicaServer object (twin/inference/server.py)

    @property
    def base_url(self) -> str:
        """HTTPS URL of the replica's OpenAI-compatible server."""
        return f"https://{self.host}:{self.port}"


class ReplicaRegistry:
    """Pod key (``namespace/name``) → running replica server. Written by the kubelet, read by the gateway."""

    def __init__(self) -> None:
        self._replicas: dict[str, ReplicaInfo] = {}
        self._listeners: list[Callable[[], None]] = []

    def put(self, info: ReplicaInfo) -> None:
        """Register or replace the replica of a pod."""
        self._replicas[f"{info.namespace}/{info.pod_name}"] = info
        self._notify()

    def remove(self, namespace: str, pod_name: str) -> ReplicaInfo | None:
        """Forget a pod's replica; returns it (the caller stops its server)."""
        info = self._replicas.pop(f"{namespace}/{pod_name}", None)
        self._notify()
        return info

    def get(self, namespace: str, pod_name: str) -> ReplicaInfo | None:
        """The replica of one pod, if running."""
        return self._replicas.get(f"{namespace}/{pod_name}")

    def all(self) -> list[ReplicaInfo]:
        """Every registered replica."""
        return list(self._replicas.values())

    def on_change(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` after every put/remove."""
        self._listeners.append(callback)

    def _notify(self) -> None:
        for callback in self._listeners:
            callback()


@dataclass
class Clock:
    """Scaled time for simulated durations (cluster creation, model load, compile).

    ``time_scale`` multiplies real-world durations: 0.01 turns a 15-minute node pool into 9 s.
    Inference latency is never scaled.
    """

    time_scale: float = 1.0

    def scaled(self, real_seconds: float) -> float:
        """Wall-clock seconds the twin takes for something that takes ``real_seconds`` on GKE."""
        return max(0.0, real_seconds * self.time_scale)

    async def sleep(self, real_seconds: float) -> None:
        """Sleep for the scaled equivalent of ``real_seconds``."""
        await asyncio.sleep(self.scaled(real_seconds))

    @staticmethod
    def now() -> float:
        """Wall-clock time (epoch seconds)."""
        return time.time()


@dataclass
class TwinContext:
    """Shared state of one twin process."""

    store: Store
    home: Path
    clock: Clock = field(default_factory=Clock)
    scenarios: frozenset[str] = frozenset()
    pki: Any = None  # twin/pki.py: Pki (ca_cert_path, server_ssl_context(dns_names), ...)
    replicas: ReplicaRegistry = field(default_factory=ReplicaRegistry)
    # twin/podlogs.py: PodLogs — per-container log lines, written by the kubelet, served by the API.
    logs: Any = None
    # URLs of the twin's servers, filled in by the daemon: kubernetes, gke, gateway.
    endpoints: dict[str, str] = field(default_factory=dict)
    # Start/stop the Kubernetes API listener: the GKE API calls these when its cluster's control
    # plane comes up or is deleted, so the endpoint is unreachable while no cluster exists.
    start_kube_api: Callable[[], Awaitable[None]] | None = None
    stop_kube_api: Callable[[], Awaitable[None]] | None = None
    # Set by the GKE part: the cluster this Kubernetes API belongs to (name, location), or None.
    cluster: dict[str, Any] | None = None
    # Free-form per-part state (e.g. "gke" → its project/quota model); keys are part names.
    parts: dict[str, Any] = field(default_factory=dict)

    def scenario(self, name: str) -> bool:
        """Whether the named failure scenario is on."""
        return name in self.scenarios
