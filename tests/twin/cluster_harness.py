"""In-process cluster for the cluster-behaviour tests: a store, a TwinContext and the controllers
running on the test's event loop, with Node objects made the way GKE registers them."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import yaml

from rhaii_nb.twin.context import Clock, TwinContext
from rhaii_nb.twin.pki import Pki
from rhaii_nb.twin.podlogs import PodLogs
from rhaii_nb.twin.store import Store

REPO = Path(__file__).resolve().parents[2]
# The guide's workload namespace and LLMInferenceService, and the controllers that serve it.
NAMESPACE = "rhaii-inference"
SERVICE = "qwen-3b-tpu-svc"
RHAII_CONTROLLERS = ("scheduler", "kubelet", "deployments", "garbage", "llmisvc", "gatewayclass")
# The CI profile's time scale (as the daemon fixtures use): 15 real minutes take 1.8 s.
CI_TIME_SCALE = 0.002
TPU_TAINT = {"key": "google.com/tpu", "value": "present", "effect": "NoSchedule"}


def make_ctx(
    home: Path, *, time_scale: float = CI_TIME_SCALE, scenarios: tuple[str, ...] = ()
) -> TwinContext:
    """A twin context with a fresh store, CA, pod logs and a gateway endpoint."""
    ctx = TwinContext(
        store=Store(),
        home=home,
        clock=Clock(time_scale),
        scenarios=frozenset(scenarios),
        pki=Pki(home),
        logs=PodLogs(),
    )
    ctx.endpoints["gateway"] = "http://127.0.0.1:18080"
    return ctx


def guide_service(replicas: int = 3) -> dict[str, Any]:
    """The guide's LLMInferenceService (the project's manifest) with ``replicas`` replicas."""
    body = yaml.safe_load((REPO / "manifests" / "llmisvc-tpu-caching.yaml").read_text())
    body["spec"]["replicas"] = replicas
    return body


def tpu_node(name: str, *, ready: bool = True, pool: str = "tpu-pool") -> dict[str, Any]:
    """A ct6e-standard-4t node: TPU labels, the google.com/tpu taint, 4 chips."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "cloud.google.com/gke-nodepool": pool,
                "cloud.google.com/gke-tpu-accelerator": "tpu-v6e-slice",
                "cloud.google.com/gke-tpu-topology": "2x2",
                "node.kubernetes.io/instance-type": "ct6e-standard-4t",
                "kubernetes.io/hostname": name,
            },
        },
        "spec": {"taints": [dict(TPU_TAINT)]},
        "status": {
            "capacity": {"cpu": "180", "memory": "737280Mi", "google.com/tpu": "4", "pods": "110"},
            "allocatable": {"cpu": "179500m", "memory": "700000Mi", "google.com/tpu": "4", "pods": "110"},
            "conditions": [
                {"type": "Ready", "status": "True" if ready else "False", "reason": "KubeletReady"}
            ],
        },
    }


def cpu_node(name: str, *, pool: str = "default-pool") -> dict[str, Any]:
    """An n1-standard-4 node of the default pool, for system and operator pods."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "cloud.google.com/gke-nodepool": pool,
                "node.kubernetes.io/instance-type": "n1-standard-4",
                "kubernetes.io/hostname": name,
            },
        },
        "spec": {},
        "status": {
            "capacity": {"cpu": "4", "memory": "15Gi", "pods": "110"},
            "allocatable": {"cpu": "3920m", "memory": "12Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
        },
    }


def rt(ctx: TwinContext, plural: str, group: str = "", version: str = "v1") -> Any:
    """A resource type of the context's store."""
    return ctx.store.resource(group, version, plural)


def add_nodes(ctx: TwinContext, nodes: list[dict[str, Any]]) -> None:
    """Register nodes (their status included, as the node's kubelet would report it)."""
    nodes_rt = rt(ctx, "nodes")
    for node in nodes:
        created = ctx.store.create(nodes_rt, node, field_manager="test")
        ctx.store.patch(
            nodes_rt,
            created["metadata"]["name"],
            {"status": node["status"]},
            "merge",
            subresource="status",
            field_manager="test",
        )


def ensure_namespace(ctx: TwinContext, name: str, labels: dict[str, str] | None = None) -> None:
    """Create a namespace if absent."""
    ns_rt = rt(ctx, "namespaces")
    if not ctx.store.exists(ns_rt, name):
        ctx.store.create(ns_rt, {"metadata": {"name": name, "labels": labels or {}}}, field_manager="test")


async def wait_for(
    predicate: Callable[[], Any], what: str, timeout: float = 45.0, interval: float = 0.02
) -> Any:
    """Poll until ``predicate()`` is truthy; fail naming ``what`` was missing after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for: {what}")
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def controllers(ctx: TwinContext, *modules: str) -> AsyncIterator[None]:
    """Run the named controller modules (``rhaii_nb.twin.controllers.<name>``) for the block."""
    tasks = []
    for name in modules:
        module = importlib.import_module(f"rhaii_nb.twin.controllers.{name}")
        tasks.append(asyncio.get_running_loop().create_task(module.run(ctx), name=name))
    try:
        await asyncio.sleep(0)
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for replica in ctx.replicas.all():
            with contextlib.suppress(Exception):
                await replica.server.stop()


def pod(name: str, namespace: str = "default", **spec: Any) -> dict[str, Any]:
    """A bare pod with one container (override any spec field)."""
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {"containers": [{"name": "main", "image": "registry.example/app:1.0"}], **spec},
    }
    return body


def container_status(pod_obj: dict[str, Any], name: str) -> dict[str, Any]:
    """A container's (or init container's) status entry."""
    status = pod_obj.get("status") or {}
    for entry in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        if entry["name"] == name:
            return entry
    return {}
