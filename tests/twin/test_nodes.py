"""Nodes of the twin's GKE node pools: GKE's labels/taints/capacity, NotReady → Ready, resize evictions,
scenario node-loss, quota-short, and a deleted cluster leaving nothing behind."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from rhaii_nb.gcp_catalog import load_catalog
from rhaii_nb.twin.context import Clock, TwinContext
from rhaii_nb.twin.controllers import nodelifecycle
from rhaii_nb.twin.gke import nodes
from rhaii_nb.twin.gke.cluster import precreate, state
from rhaii_nb.twin.pki import Pki
from rhaii_nb.twin.store import Store

TPU_SELECTOR = "cloud.google.com/gke-tpu-accelerator=tpu-v6e-slice"


def make_ctx(home: Path, scenarios: frozenset[str] = frozenset(), time_scale: float = 0.001) -> TwinContext:
    ctx = TwinContext(store=Store(), home=home, clock=Clock(time_scale), scenarios=scenarios, pki=Pki(home))
    ctx.endpoints["kubernetes"] = "https://127.0.0.1:16443"
    return ctx


def list_nodes(ctx: TwinContext, selector: str | None = None) -> list[dict[str, Any]]:
    return ctx.store.list(ctx.store.resource("", "v1", "nodes"), label_selector=selector)[0]


def is_ready(node: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"])


def create_pod(
    ctx: TwinContext, name: str, node: str, *, running: bool = True, workload: bool = True
) -> None:
    pods = ctx.store.resource("", "v1", "pods")
    labels = {"kserve.io/component": "workload"} if workload else {"app": "other"}
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": labels},
        "spec": {"nodeName": node, "containers": [{"name": "main", "image": "vllm"}]},
    }
    ctx.store.create(pods, pod, namespace="default", field_manager="test")
    if running:
        ctx.store.patch(pods, name, {"status": {"phase": "Running"}}, "merge", namespace="default",
                        subresource="status", field_manager="kubelet")  # fmt: skip


def pod_names(ctx: TwinContext) -> list[str]:
    return [p["metadata"]["name"] for p in ctx.store.list(ctx.store.resource("", "v1", "pods"))[0]]


async def wait_for(predicate, what: str, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


@pytest.mark.timeout(30)
def test_precreated_cluster_has_the_guides_nodes_with_gkes_labels_taints_and_capacity(tmp_path):
    async def scenario() -> None:
        ctx = make_ctx(tmp_path)
        started = []

        async def start() -> None:
            started.append(True)

        ctx.start_kube_api = start
        cluster = await precreate(ctx, "rhaii-tpu-scaleout-cluster")
        assert started == [True] and ctx.cluster["name"] == "rhaii-tpu-scaleout-cluster"
        assert cluster.status == "RUNNING"

        tpu = list_nodes(ctx, TPU_SELECTOR)
        assert len(tpu) == 3 and all(is_ready(n) for n in tpu)
        for node in tpu:
            name = node["metadata"]["name"]
            assert re.fullmatch(r"gke-rhaii-tpu-scaleout-cluster-tpu-pool-[0-9a-f]{8}-[a-z0-9]{4}", name), (
                name
            )
            labels = node["metadata"]["labels"]
            assert labels["cloud.google.com/gke-tpu-topology"] == "2x2"
            assert labels["cloud.google.com/gke-nodepool"] == "tpu-pool"
            assert labels["node.kubernetes.io/instance-type"] == "ct6e-standard-4t"
            assert labels["cloud.google.com/machine-family"] == "ct6e"
            assert labels["topology.kubernetes.io/zone"] == "europe-west4-a"
            assert labels["topology.kubernetes.io/region"] == "europe-west4"
            assert labels["kubernetes.io/hostname"] == name
            assert node["spec"]["taints"] == [
                {"key": "google.com/tpu", "value": "present", "effect": "NoSchedule"}
            ]
            assert node["status"]["capacity"]["google.com/tpu"] == "4"
            assert node["status"]["allocatable"]["google.com/tpu"] == "4"
            assert node["status"]["capacity"]["cpu"] == "180"
        system = list_nodes(ctx, "cloud.google.com/gke-nodepool=default-pool")
        assert len(system) == 2 and all(is_ready(n) for n in system)
        assert all("taints" not in n["spec"] or n["spec"]["taints"] == [] for n in system)
        assert all("google.com/tpu" not in n["status"]["capacity"] for n in system)

    asyncio.run(scenario())


def test_allocatable_follows_gke_reservations():
    catalog = load_catalog()
    cap, alloc = nodes.capacity(catalog.machine_types["ct6e-standard-4t"])
    # 6% of core 1 + 1% of core 2 + 0.5% of cores 3-4 + 0.25% of the other 176 = 520m reserved
    assert alloc["cpu"] == "179480m"
    assert int(alloc["memory"].removesuffix("Ki")) < int(cap["memory"].removesuffix("Ki"))
    cpu_cap, cpu_alloc = nodes.capacity(catalog.cpu_machine_types["n1-standard-4"])
    assert cpu_cap["cpu"] == "4" and cpu_alloc["cpu"] == "3920m"  # 60 + 10 + 2 × 5 = 80m reserved


@pytest.mark.timeout(30)
def test_nodes_register_not_ready_then_become_ready(tmp_path):
    async def scenario() -> None:
        ctx = make_ctx(tmp_path, time_scale=0.002)
        seen: list[tuple[str, bool, bool]] = []

        def record(event, rt) -> None:
            if rt.plural == "nodes" and event.type in ("ADDED", "MODIFIED"):
                taints = {t["key"] for t in event.object["spec"].get("taints", [])}
                seen.append((event.type, is_ready(event.object), "node.kubernetes.io/not-ready" in taints))

        ctx.store.subscribe(record)
        gke = state(ctx)
        op = gke.create_cluster("p", "europe-west4-a", {"cluster": {"name": "c1", "initialNodeCount": 1}})
        await op.wait(timeout=10)
        assert op.status_message == ""
        assert seen[0] == ("ADDED", False, True)
        assert ("MODIFIED", True, False) in seen
        assert all(is_ready(n) for n in list_nodes(ctx))
        assert op.to_json()["progress"]["metrics"] == [
            {"name": "NODES_TOTAL", "intValue": "1"},
            {"name": "NODES_DONE", "intValue": "1"},
        ]

    asyncio.run(scenario())


@pytest.mark.timeout(30)
def test_resize_down_evicts_the_pods_of_removed_nodes_and_zero_is_allowed(tmp_path):
    async def scenario() -> None:
        ctx = make_ctx(tmp_path)
        cluster = await precreate(ctx, "c1")
        tpu_nodes = list(cluster.pools["tpu-pool"].nodes)  # in creation order: a resize removes the newest
        for i, node in enumerate(tpu_nodes):
            create_pod(ctx, f"vllm-{i}", node)
        create_pod(
            ctx,
            "system",
            list_nodes(ctx, "cloud.google.com/gke-nodepool=default-pool")[0]["metadata"]["name"],
        )
        gke = state(ctx)

        op = gke.set_node_pool_size("twin-project", "europe-west4-a", "c1", "tpu-pool", {"nodeCount": 2})
        await op.wait(timeout=10)
        assert sorted(n["metadata"]["name"] for n in list_nodes(ctx, TPU_SELECTOR)) == sorted(tpu_nodes[:2])
        assert sorted(pod_names(ctx)) == ["system", "vllm-0", "vllm-1"]  # the last node went with its pod
        events = ctx.store.list(ctx.store.resource("", "v1", "events"), namespace="default")[0]
        assert any(e["reason"] == "Evicted" and e["involvedObject"]["name"] == "vllm-2" for e in events)

        op = gke.set_node_pool_size("twin-project", "europe-west4-a", "c1", "tpu-pool", {"nodeCount": 0})
        await op.wait(timeout=10)
        assert list_nodes(ctx, TPU_SELECTOR) == [] and pod_names(ctx) == ["system"]
        assert (
            cluster.pools["tpu-pool"].to_json("twin-project", "europe-west4-a", "c1")["status"] == "RUNNING"
        )

    asyncio.run(scenario())


@pytest.mark.timeout(30)
def test_node_loss_removes_a_tpu_node_running_a_replica_and_the_pool_reports_it(tmp_path):
    async def scenario() -> None:
        ctx = make_ctx(tmp_path, scenarios=frozenset({"node-loss"}))
        cluster = await precreate(ctx, "c1")
        pool = cluster.pools["tpu-pool"]
        controller = asyncio.create_task(nodelifecycle.run(ctx))
        try:
            await asyncio.sleep(0.5)
            assert len(pool.nodes) == 3, "no node may be lost before a replica runs"
            victim = pool.nodes[1]
            create_pod(ctx, "other", pool.nodes[0], workload=False)
            create_pod(ctx, "vllm-0", victim)
            await wait_for(lambda: len(pool.nodes) == 2, "a TPU node to be lost")
        finally:
            controller.cancel()
        assert victim not in [n["metadata"]["name"] for n in list_nodes(ctx)]
        assert pod_names(ctx) == ["other"]
        body = pool.to_json("twin-project", "europe-west4-a", "c1")
        assert body["status"] == "RUNNING_WITH_ERROR" and body["initialNodeCount"] == 3
        assert body["statusMessage"].startswith(
            f"2 of 3 nodes available in node pool tpu-pool: node {victim} was lost"
        )

    asyncio.run(scenario())


@pytest.mark.timeout(30)
def test_quota_short_precreate_gets_two_tpu_nodes(tmp_path):
    async def scenario() -> None:
        ctx = make_ctx(tmp_path, scenarios=frozenset({"quota-short"}))
        cluster = await precreate(ctx, "c1")
        assert len(list_nodes(ctx, TPU_SELECTOR)) == 2
        assert "Quota 'TPUS_PER_TPU_FAMILY' exceeded" in cluster.pools["tpu-pool"].status_message

    asyncio.run(scenario())


@pytest.mark.timeout(30)
def test_deleting_the_cluster_stops_its_api_and_leaves_an_empty_store(tmp_path):
    async def scenario() -> None:
        ctx = make_ctx(tmp_path)
        calls: list[str] = []

        async def start() -> None:
            calls.append("start")

        async def stop() -> None:
            calls.append("stop")

        ctx.start_kube_api, ctx.stop_kube_api = start, stop
        await precreate(ctx, "c1")
        store = ctx.store
        store.create(store.resource("", "v1", "namespaces"), {"metadata": {"name": "rhaii-inference"}})
        store.create(
            store.resource("", "v1", "configmaps"),
            {"metadata": {"name": "cm", "namespace": "rhaii-inference"}, "data": {"a": "b"}},
            namespace="rhaii-inference",
        )
        create_pod(ctx, "vllm-0", list_nodes(ctx, TPU_SELECTOR)[0]["metadata"]["name"])

        op = state(ctx).delete_cluster("twin-project", "europe-west4-a", "c1")
        await op.wait(timeout=10)
        assert calls == ["start", "stop"] and ctx.cluster is None
        remaining = {(rt.plural, obj["metadata"]["name"]) for rt, obj in store.all_objects()}
        assert remaining == {
            ("namespaces", n) for n in ("default", "kube-system", "kube-public", "kube-node-lease")
        }

        again = await precreate(ctx, "c2")  # a new cluster may be born afterwards
        assert again.status == "RUNNING" and calls[-1] == "start"

    asyncio.run(scenario())


@pytest.mark.timeout(30)
def test_a_restarted_twin_keeps_its_cluster_and_restarts_its_api(tmp_path):
    async def scenario() -> None:
        first = make_ctx(tmp_path)
        await precreate(first, "c1")
        await (
            state(first)
            .set_node_pool_size("twin-project", "europe-west4-a", "c1", "tpu-pool", {"nodeCount": 2})
            .wait(timeout=10)
        )
        snapshot = first.store.dump()

        second = make_ctx(tmp_path)  # same home: what the daemon does after `twin down` / `twin up`
        second.store.restore(snapshot)
        calls: list[str] = []

        async def start() -> None:
            calls.append("start")

        second.start_kube_api = start
        gke = state(second)
        await gke.resume()
        assert calls == ["start"] and second.cluster["name"] == "c1"
        cluster = gke.cluster("twin-project", "europe-west4-a", "c1")
        assert cluster.to_json()["currentNodeCount"] == 4
        assert cluster.pools["tpu-pool"].target == 2 and cluster.pools["tpu-pool"].status == "RUNNING"

    asyncio.run(scenario())
