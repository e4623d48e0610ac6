"""The LLMInferenceService controller with the operators installed: children, labels, conditions,
the gateway's status, rolling updates, scaling, KServe's admission rules and Istio sidecar injection."""

from __future__ import annotations

import asyncio
import base64
import copy
import time
from pathlib import Path
from typing import Any

import pytest
from cluster_harness import (
    NAMESPACE,
    RHAII_CONTROLLERS,
    SERVICE,
    add_nodes,
    controllers,
    cpu_node,
    ensure_namespace,
    guide_service,
    make_ctx,
    rt,
    tpu_node,
    wait_for,
)

from rhaii_nb import names
from rhaii_nb.pods import kubectl_columns
from rhaii_nb.twin import admission, operators
from rhaii_nb.twin.controllers.llmisvc import LLMISvcController
from rhaii_nb.twin.errors import ApiError


def llmisvc_rt(ctx: Any) -> Any:
    return rt(ctx, "llminferenceservices", "serving.kserve.io", "v1alpha1")


def get(
    ctx: Any, plural: str, name: str, namespace: str | None = NAMESPACE, group: str = "", version: str = "v1"
):
    store_rt = rt(ctx, plural, group, version)
    return ctx.store.get(store_rt, name, namespace) if ctx.store.exists(store_rt, name, namespace) else None


def condition(obj: dict[str, Any] | None, kind: str) -> dict[str, Any]:
    return next(
        (c for c in ((obj or {}).get("status") or {}).get("conditions") or [] if c["type"] == kind), {}
    )


def workload_pods(ctx: Any) -> list[dict[str, Any]]:
    items, _ = ctx.store.list(
        rt(ctx, "pods"), namespace=NAMESPACE, label_selector="kserve.io/component=workload"
    )
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def prepare_cluster(ctx: Any, tpu_nodes: int = 3) -> None:
    """Nodes, operators, the workload namespace and the guide's two secrets."""
    add_nodes(
        ctx,
        [tpu_node(f"gke-tpu-{i}") for i in range(tpu_nodes)] + [cpu_node("gke-cpu-0"), cpu_node("gke-cpu-1")],
    )
    operators.install(ctx)
    ensure_namespace(ctx, NAMESPACE)
    secrets = rt(ctx, "secrets")
    token = {
        "metadata": {"name": "huggingface-token"},
        "data": {"token": base64.b64encode(b"hf_twin").decode()},
    }
    pull = {
        "metadata": {"name": "rhaiis-pull-secret"},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": base64.b64encode(b'{"auths":{}}').decode()},
    }
    for secret in (token, pull):
        ctx.store.create(secrets, secret, namespace=NAMESPACE, field_manager="kubectl")


def apply_service(ctx: Any, body: dict[str, Any]) -> dict[str, Any]:
    return ctx.store.patch(
        llmisvc_rt(ctx),
        body["metadata"]["name"],
        body,
        "apply",
        namespace=NAMESPACE,
        field_manager="kubectl",
        force=True,
    )


def service_ready(ctx: Any) -> bool:
    return (
        condition(
            get(ctx, "llminferenceservices", SERVICE, group="serving.kserve.io", version="v1alpha1"), "Ready"
        ).get("status")
        == "True"
    )


def test_llmisvc_is_unknown_until_operators_install(tmp_path: Path):
    ctx = make_ctx(tmp_path)
    with pytest.raises(ApiError) as missing:
        llmisvc_rt(ctx)
    assert missing.value.code == 404
    summary = operators.install(ctx)
    assert "llminferenceservices.serving.kserve.io" in summary["crds"]
    assert llmisvc_rt(ctx).kind == "LLMInferenceService"

    def inventory() -> set[tuple[str, str, str, int]]:
        return {
            (
                kind.plural,
                obj["metadata"].get("namespace", ""),
                obj["metadata"]["name"],
                obj["metadata"].get("generation", 0),
            )
            for kind in ctx.store.resource_types()
            if kind.plural != "events" and "list" in kind.verbs
            for obj in ctx.store.list(kind)[0]
        }

    before = inventory()
    operators.install(ctx)  # idempotent: no new object, no spec changed
    assert inventory() == before
    for namespace in ("cert-manager", "istio-system", "opendatahub", "openshift-lws-operator"):
        assert ctx.store.exists(rt(ctx, "namespaces"), namespace)
    deployments = {d["metadata"]["name"] for d in ctx.store.list(rt(ctx, "deployments", "apps"))[0]}
    assert {"cert-manager", "cert-manager-webhook", "istiod", "kserve-controller-manager"} <= deployments


@pytest.mark.timeout(90)
def test_guide_service_becomes_ready_with_its_children(tmp_path: Path):
    async def scenario() -> None:
        ctx = make_ctx(tmp_path, time_scale=0.005)  # the slow end of the CI profile
        started = time.monotonic()
        async with controllers(ctx, *RHAII_CONTROLLERS):
            prepare_cluster(ctx)
            apply_service(ctx, guide_service())
            await wait_for(lambda: service_ready(ctx), "LLMInferenceService Ready=True", timeout=40)
            elapsed = time.monotonic() - started
            svc = get(ctx, "llminferenceservices", SERVICE, group="serving.kserve.io", version="v1alpha1")
            # Children, with the names and labels KServe gives them.
            workload = get(ctx, "deployments", names.workload_deployment(SERVICE), group="apps")
            labels = workload["spec"]["template"]["metadata"]["labels"]
            assert labels["kserve.io/component"] == "workload"
            assert labels["app.kubernetes.io/part-of"] == "llminferenceservice"
            assert labels["app.kubernetes.io/name"] == SERVICE
            assert workload["metadata"]["ownerReferences"][0]["kind"] == "LLMInferenceService"
            pod_spec = workload["spec"]["template"]["spec"]
            assert pod_spec["initContainers"][0]["name"] == "storage-initializer"
            assert pod_spec["initContainers"][0]["args"] == ["hf://Qwen/Qwen2.5-3B-Instruct", "/mnt/models"]
            main = pod_spec["containers"][0]
            assert main["image"] == "registry.redhat.io/rhaiis/vllm-tpu-rhel9:3.2.5"
            assert main["command"] == ["/bin/bash", "-c"] and "--enable-prefix-caching" in main["args"][0]
            assert main["resources"]["limits"]["google.com/tpu"] == "4"
            assert pod_spec["tolerations"][0]["key"] == "google.com/tpu"
            assert pod_spec["nodeSelector"]["cloud.google.com/gke-tpu-topology"] == "2x2"
            service = get(ctx, "services", names.workload_service(SERVICE))
            assert service["spec"]["ports"] == [
                {"name": "https", "port": 8000, "targetPort": 8000, "protocol": "TCP", "appProtocol": "https"}
            ]
            epp = get(ctx, "services", names.epp_service(SERVICE))
            assert [(p["name"], p["port"]) for p in epp["spec"]["ports"]][:3] == [
                ("grpc", 9002),
                ("grpc-health", 9003),
                ("metrics", 9090),
            ]
            scheduler = get(ctx, "deployments", names.scheduler_deployment(SERVICE), group="apps")
            assert "--config-text" in scheduler["spec"]["template"]["spec"]["containers"][0]["args"]
            pool = get(
                ctx,
                "inferencepools",
                names.inference_pool(SERVICE),
                group="inference.networking.x-k8s.io",
                version="v1alpha2",
            )
            assert pool["spec"]["extensionRef"]["name"] == names.epp_service(SERVICE)
            route = get(ctx, "httproutes", names.http_route(SERVICE), group="gateway.networking.k8s.io")
            assert route["spec"]["parentRefs"][0]["name"] == "inference-gateway"
            assert route["status"]["parents"][0]["conditions"][0]["status"] == "True"
            secret = get(ctx, "secrets", names.tls_secret(SERVICE))
            assert base64.b64decode(secret["data"]["tls.crt"]).startswith(b"-----BEGIN CERTIFICATE-----")
            # Conditions and URL.
            for kind in (
                "WorkloadsReady",
                "RouterReady",
                "MainWorkloadReady",
                "HTTPRoutesReady",
                "GatewaysReady",
            ):
                assert condition(svc, kind)["status"] == "True", kind
            gateway = get(
                ctx, "gateways", "inference-gateway", "opendatahub", group="gateway.networking.k8s.io"
            )
            assert condition(gateway, "Programmed")["status"] == "True"
            assert gateway["status"]["addresses"][0]["value"] == "127.0.0.1:18080"
            assert svc["status"]["url"] == f"https://127.0.0.1:18080/{NAMESPACE}/{SERVICE}"
            assert svc["status"]["observedGeneration"] == svc["metadata"]["generation"]
            # Three replicas, one per TPU node, all registered and ready.
            pods = workload_pods(ctx)
            assert len(pods) == 3 and all(kubectl_columns(p).status == "Running" for p in pods)
            assert len({p["spec"]["nodeName"] for p in pods}) == 3
            assert sum(1 for r in ctx.replicas.all() if r.ready) == 3
            epp_pods, _ = ctx.store.list(
                rt(ctx, "pods"), namespace=NAMESPACE, label_selector=names.scheduler_selector(SERVICE)
            )
            assert len(epp_pods) == 1
            # Idle: nothing but events is written; a forced re-reconcile (server-side apply of every
            # child with the same spec) changes nothing either.
            writes: list[str] = []
            ctx.store.subscribe(lambda event, written_rt: writes.append(written_rt.plural))
            await asyncio.sleep(0.3)
            rv = ctx.store.resource_version
            LLMISvcController(ctx).reconcile(NAMESPACE, SERVICE, force_apply=True)
            assert ctx.store.resource_version == rv
            assert set(writes) <= {"events"}, writes
            # Speed is a benchmark's business (no timed assertions here); show it in the test log.
            print(f"operators + 3 ready replicas at time scale 0.005: {elapsed:.1f}s wall")

    asyncio.run(scenario())


@pytest.mark.timeout(120)
def test_image_update_rolls_one_replica_at_a_time_and_scaling_works(tmp_path: Path):
    async def scenario() -> None:
        ctx = make_ctx(tmp_path)
        async with controllers(ctx, *RHAII_CONTROLLERS):
            prepare_cluster(ctx, tpu_nodes=3)  # a spare node for the surge pod (maxSurge 25% of 2 → 1)
            body = guide_service(replicas=2)
            apply_service(ctx, body)
            await wait_for(lambda: service_ready(ctx), "service ready", timeout=40)
            old_pods = {p["metadata"]["name"] for p in workload_pods(ctx)}
            most_unready = most_pods = 0

            def track() -> bool:
                nonlocal most_unready, most_pods
                pods = workload_pods(ctx)
                most_pods = max(most_pods, len(pods))
                ready = sum(
                    1 for p in pods if kubectl_columns(p).status == "Running" and kubectl_columns(p).ready
                )
                most_unready = max(most_unready, 2 - ready)
                updated = [p for p in pods if p["spec"]["containers"][0]["image"].endswith(":3.3.0")]
                return len(updated) == 2 and ready == 2 and len(pods) == 2

            updated = copy.deepcopy(body)
            updated["spec"]["template"]["containers"][0]["image"] = (
                "registry.redhat.io/rhaiis/vllm-tpu-rhel9:3.3.0"
            )
            apply_service(ctx, updated)
            await wait_for(track, "rolling update to 3.3.0 done", timeout=60)
            assert most_unready == 0, "the rollout must keep both replicas ready"
            assert most_pods == 3, "one surge replica at a time (maxSurge 25% of 2 → 1)"
            assert not old_pods & {p["metadata"]["name"] for p in workload_pods(ctx)}
            await wait_for(lambda: service_ready(ctx), "service ready after the update")
            scaled = copy.deepcopy(updated)
            scaled["spec"]["replicas"] = 3
            apply_service(ctx, scaled)
            await wait_for(
                lambda: sum(1 for p in workload_pods(ctx) if kubectl_columns(p).ready) == 3, "scaled up to 3"
            )
            workload = get(ctx, "deployments", names.workload_deployment(SERVICE), group="apps")
            assert workload["spec"]["replicas"] == 3
            scaled["spec"]["replicas"] = 1
            apply_service(ctx, scaled)
            await wait_for(lambda: len(workload_pods(ctx)) == 1, "scaled down to 1 replica")

    asyncio.run(scenario())


@pytest.mark.timeout(60)
def test_epp_sidecar_injection_gives_two_of_two(tmp_path: Path):
    async def scenario() -> None:
        ctx = make_ctx(tmp_path)
        async with controllers(ctx, *RHAII_CONTROLLERS):
            prepare_cluster(ctx, tpu_nodes=1)
            apply_service(ctx, guide_service(replicas=1))
            epp = names.scheduler_deployment(SERVICE)
            deployments = rt(ctx, "deployments", "apps")
            await wait_for(
                lambda: (
                    (get(ctx, "deployments", epp, group="apps") or {}).get("status", {}).get("readyReplicas")
                    == 1
                ),
                "EPP ready",
            )
            patch = {"spec": {"template": {"metadata": {"labels": {"sidecar.istio.io/inject": "true"}}}}}
            ctx.store.patch(
                deployments, epp, patch, "strategic", namespace=NAMESPACE, field_manager="kubectl-patch"
            )

            def injected_ready() -> list[dict[str, Any]]:
                items, _ = ctx.store.list(
                    rt(ctx, "pods"),
                    namespace=NAMESPACE,
                    label_selector="app.kubernetes.io/component=llminferenceservice-router-scheduler",
                )
                live = [p for p in items if not p["metadata"].get("deletionTimestamp")]
                return [
                    p
                    for p in live
                    if len(live) == 1 and kubectl_columns(p).ready == 2 and kubectl_columns(p).total == 2
                ]

            pods = await wait_for(injected_ready, "EPP pod with istio-proxy 2/2")
            spec = pods[0]["spec"]
            sidecar = next(c for c in spec["initContainers"] if c["name"] == "istio-proxy")
            assert sidecar["restartPolicy"] == "Always"
            assert pods[0]["metadata"]["labels"]["security.istio.io/tlsMode"] == "istio"
            # The Deployment's status catches up with its pods (the old pod's removal) eventually.
            await wait_for(
                lambda: get(ctx, "deployments", epp, group="apps")["status"].get("readyReplicas") == 1,
                "EPP Deployment readyReplicas back to 1 after the roll",
            )
            # The controller leaves the patched label alone (another manager owns it).
            await asyncio.sleep(0.2)
            template = get(ctx, "deployments", epp, group="apps")["spec"]["template"]
            assert template["metadata"]["labels"]["sidecar.istio.io/inject"] == "true"

    asyncio.run(scenario())


def test_kserve_webhook_rejects_what_kserve_rejects(tmp_path: Path):
    ctx = make_ctx(tmp_path)
    operators.install(ctx)
    ensure_namespace(ctx, NAMESPACE)
    bad_route = guide_service()
    bad_route["spec"]["router"]["route"] = {"http": {"refs": [{"name": "mine"}], "spec": {"rules": []}}}
    with pytest.raises(ApiError) as denied:
        apply_service(ctx, bad_route)
    assert denied.value.code == 422
    assert denied.value.message.startswith(
        'admission webhook "llminferenceservice.kserve-webhook-server.validator" denied the request: '
        f'LLMInferenceService.serving.kserve.io "{SERVICE}" is invalid: '
    )
    assert "cannot use both custom HTTPRoute refs" in denied.value.message
    assert "custom HTTP routes ('spec.router.route.http.refs') cannot be used with a managed gateway" in (
        denied.value.message
    )
    worker = guide_service()
    worker["spec"]["worker"] = {"containers": [{"name": "main"}]}
    with pytest.raises(ApiError) as denied:
        apply_service(ctx, worker)
    assert "when worker is specified, parallelism must be configured" in denied.value.message
    both = guide_service()
    both["spec"]["parallelism"] = {"pipeline": 2, "data": 2}
    with pytest.raises(ApiError) as denied:
        apply_service(ctx, both)
    assert "cannot set both pipeline parallelism and data parallelism" in denied.value.message
    assert "dataLocal must be set when data is set" in denied.value.message
    assert {c["field"] for c in denied.value.details["causes"]} == {
        "spec.parallelism",
        "spec.parallelism.dataLocal",
    }
    # Parallelism size is immutable on update.
    good = guide_service()
    good["spec"]["parallelism"] = {"data": 2, "dataLocal": 2}
    apply_service(ctx, good)
    changed = copy.deepcopy(good)
    changed["spec"]["parallelism"] = {"data": 4, "dataLocal": 4}
    with pytest.raises(ApiError) as denied:
        apply_service(ctx, changed)
    assert "spec.parallelism: Unsupported value: 4: total parallelism size is immutable, previous size 2" in (
        denied.value.message
    )


def test_istio_injection_policy():
    pod_body = {"metadata": {"labels": {}}, "spec": {"containers": [{"name": "main", "image": "x"}]}}
    assert not admission.wants_injection(pod_body, {})
    assert admission.wants_injection(pod_body, {"istio-injection": "enabled"})
    labelled = copy.deepcopy(pod_body)
    labelled["metadata"]["labels"]["sidecar.istio.io/inject"] = "true"
    assert admission.wants_injection(labelled, {})
    refused = copy.deepcopy(pod_body)
    refused["metadata"]["labels"]["sidecar.istio.io/inject"] = "false"
    assert not admission.wants_injection(refused, {"istio-injection": "enabled"})
    admission.inject_sidecar(labelled)
    assert [c["name"] for c in labelled["spec"]["initContainers"]] == ["istio-validation", "istio-proxy"]
    assert labelled["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"] == "main"
    assert not admission.wants_injection(labelled, {"istio-injection": "enabled"})  # never twice
