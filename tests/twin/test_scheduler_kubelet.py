"""The twin's scheduler and kubelet: binding rules, kube-scheduler's failure text, pod stages as kubectl
prints them, events, logs, replica servers, graceful deletion."""

from __future__ import annotations

import asyncio
import base64
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest
from cluster_harness import (
    add_nodes,
    container_status,
    controllers,
    cpu_node,
    ensure_namespace,
    make_ctx,
    pod,
    rt,
    tpu_node,
    wait_for,
)

from rhaii_nb.pods import kubectl_columns
from rhaii_nb.twin.controllers.scheduler import decide, fit_error_message, pod_requests

TPU_TOLERATION = {"key": "google.com/tpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"}
TPU_SELECTOR = {
    "cloud.google.com/gke-tpu-accelerator": "tpu-v6e-slice",
    "cloud.google.com/gke-tpu-topology": "2x2",
}


def tpu_pod(name: str, namespace: str = "default", **extra: Any) -> dict[str, Any]:
    """A pod asking for one whole TPU host, as the guide's vLLM pods do."""
    body = pod(name, namespace, tolerations=[TPU_TOLERATION], nodeSelector=dict(TPU_SELECTOR), **extra)
    body["spec"]["containers"][0]["resources"] = {
        "limits": {"google.com/tpu": "4"},
        "requests": {"google.com/tpu": "4"},
    }
    return body


def events(ctx: Any, name: str | None = None) -> list[dict[str, Any]]:
    items, _ = ctx.store.list(rt(ctx, "events"))
    return [e for e in items if name is None or e["involvedObject"].get("name") == name]


def get_pod(ctx: Any, name: str, namespace: str = "default") -> dict[str, Any] | None:
    return (
        ctx.store.get(rt(ctx, "pods"), name, namespace)
        if ctx.store.exists(rt(ctx, "pods"), name, namespace)
        else None
    )


def is_ready(obj: dict[str, Any] | None) -> bool:
    columns = kubectl_columns(obj) if obj else None
    return bool(columns and columns.status == "Running" and columns.ready == columns.total)


# --- pure scheduling rules ---------------------------------------------------------------------------


def test_fit_error_message_is_kube_schedulers_text():
    assert fit_error_message(3, {f"n{i}": ["Insufficient google.com/tpu"] for i in range(3)}) == (
        "0/3 nodes are available: 3 Insufficient google.com/tpu. preemption: 0/3 nodes are available: "
        "3 No preemption victims found for incoming pod."
    )
    mixed = {
        "cpu-a": ["node(s) didn't match Pod's node affinity/selector"],
        "tpu-a": ["Insufficient google.com/tpu"],
        "tpu-b": ["Insufficient google.com/tpu"],
    }
    assert fit_error_message(3, mixed) == (
        "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 2 Insufficient "
        "google.com/tpu. preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, "
        "2 No preemption victims found for incoming pod."
    )
    assert fit_error_message(0, {}) == "no nodes available to schedule pods"


def test_taints_affinity_and_resources_decide_the_node():
    nodes = [cpu_node("cpu-1"), tpu_node("tpu-1"), tpu_node("tpu-2")]
    # Without a toleration the TPU nodes' taint keeps the pod off them; the CPU node has no TPU.
    untolerated = pod("p")
    untolerated["spec"]["containers"][0]["resources"] = {"limits": {"google.com/tpu": "4"}}
    decision = decide(untolerated, nodes, {})
    assert decision.node is None
    assert (
        "1 Insufficient google.com/tpu, 2 node(s) had untolerated taint {google.com/tpu: present}"
        in decision.message
    )
    # With toleration + selector it goes to a TPU node; a used one is skipped (chips are exclusive).
    wanted = tpu_pod("p")
    assert decide(wanted, nodes, {}).node == "tpu-1"
    used = {"tpu-1": {k: v for k, v in pod_requests(wanted).items()}}
    assert decide(wanted, nodes, used).node == "tpu-2"
    # Required node affinity operators.
    for expression, expected in [
        ({"key": "cloud.google.com/gke-tpu-topology", "operator": "In", "values": ["2x2"]}, "tpu-1"),
        ({"key": "cloud.google.com/gke-tpu-topology", "operator": "NotIn", "values": ["2x2"]}, None),
        ({"key": "cloud.google.com/gke-nodepool", "operator": "Exists"}, "tpu-1"),
        ({"key": "cloud.google.com/gke-nodepool", "operator": "DoesNotExist"}, None),
        ({"key": "rank", "operator": "Gt", "values": ["5"]}, "tpu-2"),
        ({"key": "rank", "operator": "Lt", "values": ["5"]}, "tpu-1"),
    ]:
        ranked = [tpu_node("tpu-1"), tpu_node("tpu-2")]
        ranked[0]["metadata"]["labels"]["rank"] = "3"
        ranked[1]["metadata"]["labels"]["rank"] = "9"
        affinity = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [expression]}]
                }
            }
        }
        decision = decide(tpu_pod("p", affinity=affinity), ranked, {})
        assert decision.node == expected, (expression, decision.message)
        if expected is None:
            assert "2 node(s) didn't match Pod's node affinity/selector" in decision.message
    # Not Ready and cordoned nodes.
    not_ready = [tpu_node("tpu-1", ready=False)]
    assert "node.kubernetes.io/not-ready" in decide(tpu_pod("p"), not_ready, {}).message
    cordoned = tpu_node("tpu-1")
    cordoned["spec"]["unschedulable"] = True
    assert "1 node(s) were unschedulable" in decide(tpu_pod("p"), [cordoned], {}).message


def test_pod_requests_take_the_largest_init_container():
    body = pod("p")
    body["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "250m", "memory": "1Gi"}}
    body["spec"]["initContainers"] = [{"name": "init", "image": "x", "resources": {"requests": {"cpu": "2"}}}]
    requests = pod_requests(body)
    assert requests["cpu"] == 2 and requests["memory"] == 1024**3


# --- scheduler + kubelet on a live store ---------------------------------------------------------------


@pytest.mark.timeout(60)
def test_pod_walks_the_guides_stages_and_writes_logs(tmp_path: Path):
    async def scenario() -> None:
        ctx = make_ctx(tmp_path)
        add_nodes(ctx, [tpu_node("tpu-1")])
        body = tpu_pod("vllm-0")
        body["spec"]["initContainers"] = [
            {
                "name": "storage-initializer",
                "image": "registry.example/si:1",
                "args": ["hf://Qwen/Qwen2.5-3B-Instruct", "/mnt/models"],
            }
        ]
        probe = {"httpGet": {"path": "/", "port": 80}, "initialDelaySeconds": 30, "periodSeconds": 10}
        body["spec"]["containers"][0]["readinessProbe"] = probe
        seen: list[str] = []
        watch = ctx.store.watch(rt(ctx, "pods"), namespace="default")

        async def record() -> None:
            async for event in watch:
                columns = kubectl_columns(event.object)
                label = f"{columns.status} {columns.ready}/{columns.total}"
                if not seen or seen[-1] != label:
                    seen.append(label)

        async with controllers(ctx, "scheduler", "kubelet"):
            recorder = asyncio.create_task(record())
            ctx.store.create(rt(ctx, "pods"), body, namespace="default", field_manager="test")
            await wait_for(lambda: is_ready(get_pod(ctx, "vllm-0")), "vllm-0 Running 1/1")
            await asyncio.sleep(0.05)
            recorder.cancel()
            watch.close()
        stages = [s.split()[0] for s in seen]
        for expected in ["Pending", "Init:0/1", "PodInitializing", "Running"]:
            assert expected in stages, seen
        assert stages.index("Pending") < stages.index("Init:0/1") < stages.index("PodInitializing")
        assert seen[-2:] == ["Running 0/1", "Running 1/1"], seen
        final = get_pod(ctx, "vllm-0")
        status = final["status"]
        assert status["podIP"].startswith("10.") and status["hostIP"] and status["startTime"]
        init = container_status(final, "storage-initializer")
        assert (
            init["state"]["terminated"]["reason"] == "Completed"
            and init["state"]["terminated"]["exitCode"] == 0
        )
        main = container_status(final, "main")
        assert main["ready"] and main["started"] and main["containerID"].startswith("containerd://")
        assert main["imageID"].startswith("registry.example/app@sha256:")
        types = {c["type"]: c["status"] for c in status["conditions"]}
        assert set(types) == {
            "PodScheduled",
            "Initialized",
            "ContainersReady",
            "Ready",
            "PodReadyToStartContainers",
        }
        assert set(types.values()) == {"True"}
        reasons = [e["reason"] for e in events(ctx, "vllm-0")]
        for reason in ["Scheduled", "Pulling", "Pulled", "Created", "Started"]:
            assert reason in reasons
        assert reasons.index("Scheduled") < reasons.index("Pulling") < reasons.index("Started")
        lines = ctx.logs.read("default", "vllm-0", "storage-initializer")
        assert lines[-1].endswith("Successfully copied hf://Qwen/Qwen2.5-3B-Instruct to /mnt/models")
        assert any("model-00001-of-00002.safetensors:  50%" in line for line in lines)

    asyncio.run(scenario())


@pytest.mark.timeout(60)
def test_unschedulable_pod_reports_then_binds_when_a_node_arrives(tmp_path: Path):
    async def scenario() -> None:
        ctx = make_ctx(tmp_path)
        add_nodes(ctx, [tpu_node("tpu-1"), tpu_node("tpu-2"), cpu_node("cpu-1")])
        async with controllers(ctx, "scheduler", "kubelet"):
            for index in range(3):
                ctx.store.create(
                    rt(ctx, "pods"), tpu_pod(f"vllm-{index}"), namespace="default", field_manager="t"
                )
            await wait_for(
                lambda: any(e["reason"] == "FailedScheduling" for e in events(ctx)), "FailedScheduling"
            )
            failed = next(e for e in events(ctx) if e["reason"] == "FailedScheduling")
            assert failed["type"] == "Warning" and failed["source"]["component"] == "default-scheduler"
            assert failed["message"] == (
                "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "
                "2 Insufficient google.com/tpu. preemption: 0/3 nodes are available: "
                "1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod."
            )
            pending = get_pod(ctx, failed["involvedObject"]["name"])
            condition = next(c for c in pending["status"]["conditions"] if c["type"] == "PodScheduled")
            assert condition["status"] == "False" and condition["reason"] == "Unschedulable"
            assert kubectl_columns(pending).status == "Pending"
            nodes_bound = {get_pod(ctx, f"vllm-{i}")["spec"].get("nodeName") for i in range(3)}
            assert {"tpu-1", "tpu-2"} <= nodes_bound
            add_nodes(ctx, [tpu_node("tpu-3")])
            await wait_for(
                lambda: all(get_pod(ctx, f"vllm-{i}")["spec"].get("nodeName") for i in range(3)),
                "third pod bound after the node arrived",
            )
            assert {get_pod(ctx, f"vllm-{i}")["spec"]["nodeName"] for i in range(3)} == {
                "tpu-1",
                "tpu-2",
                "tpu-3",
            }
            scheduled = [e for e in events(ctx) if e["reason"] == "Scheduled"]
            assert any(e["message"].endswith(" to tpu-3") for e in scheduled)

    asyncio.run(scenario())


# Above its two 45 s waits together, so a starved run fails naming what was missing.
@pytest.mark.timeout(120)
def test_workload_pod_serves_https_and_leaves_on_graceful_delete(tmp_path: Path):
    async def scenario() -> None:
        ctx = make_ctx(tmp_path)
        add_nodes(ctx, [tpu_node("tpu-1")])
        body = tpu_pod("svc-kserve-abc")
        body["metadata"]["labels"] = {"kserve.io/component": "workload", "app.kubernetes.io/name": "svc"}
        body["metadata"]["annotations"] = {"twin.rhaii.io/profile": "cpu-test"}
        main = body["spec"]["containers"][0]
        main["args"] = ["vllm serve /mnt/models --max-model-len 2048 --ssl-certfile /tls/tls.crt --port 8000"]
        main["readinessProbe"] = {
            "httpGet": {"path": "/v1/models", "port": 8000, "scheme": "HTTPS"},
            "initialDelaySeconds": 240,
            "periodSeconds": 10,
        }
        async with controllers(ctx, "scheduler", "kubelet"):
            ctx.store.create(rt(ctx, "pods"), body, namespace="default", field_manager="test")
            await wait_for(lambda: is_ready(get_pod(ctx, "svc-kserve-abc")), "workload pod ready")
            replica = ctx.replicas.get("default", "svc-kserve-abc")
            assert replica is not None and replica.ready
            context = ssl.create_default_context(cafile=str(ctx.pki.ca_cert_path))
            async with httpx.AsyncClient(verify=context) as client:
                answer = await client.get(f"https://localhost:{replica.port}/v1/models")
            assert answer.status_code == 200 and answer.json()["data"][0]["id"] == "/mnt/models"
            log = ctx.logs.read("default", "svc-kserve-abc", "main")
            milestones = [
                "Loading safetensors checkpoint shards: 100%",
                "Loading weights took",
                "KV cache size:",
                "Compiling the model with different input shapes",
                "Compiled the model with different input",
                "Uvicorn running on https://0.0.0.0:8000",
                "Application startup complete",
            ]
            positions = [next(i for i, line in enumerate(log) if m in line) for m in milestones]
            assert positions[:5] == sorted(positions[:5])
            ctx.store.delete(rt(ctx, "pods"), "svc-kserve-abc", "default")
            terminating = get_pod(ctx, "svc-kserve-abc")
            assert terminating is not None and kubectl_columns(terminating).status == "Terminating"
            await wait_for(lambda: get_pod(ctx, "svc-kserve-abc") is None, "pod object removed after grace")
            assert ctx.replicas.get("default", "svc-kserve-abc") is None
            assert any(e["reason"] == "Killing" for e in events(ctx, "svc-kserve-abc"))

    asyncio.run(scenario())


@pytest.mark.timeout(60)
def test_missing_secrets_block_containers_until_created(tmp_path: Path):
    async def scenario() -> None:
        ctx = make_ctx(tmp_path)
        ensure_namespace(ctx, "rhaii-inference")
        add_nodes(ctx, [tpu_node("tpu-1"), tpu_node("tpu-2")])
        token = tpu_pod("needs-token", "rhaii-inference")
        token["spec"]["containers"][0]["env"] = [
            {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "huggingface-token", "key": "token"}}}
        ]
        pull = tpu_pod("needs-pull", "rhaii-inference", imagePullSecrets=[{"name": "rhaiis-pull-secret"}])
        pull["spec"]["containers"][0]["image"] = "registry.redhat.io/rhaiis/vllm-tpu-rhel9:3.2.5"
        async with controllers(ctx, "scheduler", "kubelet"):
            for body in (token, pull):
                ctx.store.create(rt(ctx, "pods"), body, namespace="rhaii-inference", field_manager="t")
            await wait_for(
                lambda: (
                    kubectl_columns(get_pod(ctx, "needs-token", "rhaii-inference")).status
                    == "CreateContainerConfigError"
                ),
                "CreateContainerConfigError",
            )
            waiting = container_status(get_pod(ctx, "needs-token", "rhaii-inference"), "main")["state"][
                "waiting"
            ]
            assert waiting["message"] == 'secret "huggingface-token" not found'
            await wait_for(
                lambda: (
                    kubectl_columns(get_pod(ctx, "needs-pull", "rhaii-inference")).status
                    == "ImagePullBackOff"
                ),
                "ImagePullBackOff",
            )
            assert any(e["reason"] == "FailedToRetrieveImagePullSecret" for e in events(ctx, "needs-pull"))
            secret = {
                "metadata": {"name": "huggingface-token"},
                "type": "Opaque",
                "data": {"token": base64.b64encode(b"hf_valid").decode()},
            }
            ctx.store.create(rt(ctx, "secrets"), secret, namespace="rhaii-inference", field_manager="t")
            await wait_for(
                lambda: is_ready(get_pod(ctx, "needs-token", "rhaii-inference")), "ready once secret exists"
            )

    asyncio.run(scenario())


@pytest.mark.timeout(60)
def test_pods_of_a_vanished_node_are_removed(tmp_path: Path):
    async def scenario() -> None:
        ctx = make_ctx(tmp_path)
        add_nodes(ctx, [tpu_node("tpu-1")])
        async with controllers(ctx, "scheduler", "kubelet"):
            ctx.store.create(rt(ctx, "pods"), tpu_pod("orphan"), namespace="default", field_manager="t")
            await wait_for(lambda: is_ready(get_pod(ctx, "orphan")), "pod ready")
            ctx.store.delete(rt(ctx, "nodes"), "tpu-1")
            await wait_for(lambda: get_pod(ctx, "orphan") is None, "pod garbage-collected with its node")

    asyncio.run(scenario())
