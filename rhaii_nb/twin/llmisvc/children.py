"""The child objects KServe's controller keeps for one single-node LLMInferenceService (rhaii-facts §5.2).

``render(llmisvc, caps)`` returns the desired objects, each owned by the service (controller
ownerReference) so deleting the service deletes them. Names come from ``rhaii_nb.names``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from rhaii_nb import names
from rhaii_nb.twin.llmisvc import presets
from rhaii_nb.twin.llmisvc.merge import merge

API_VERSION = "serving.kserve.io/v1alpha1"
# Annotation on the LLMInferenceService (copied to its vLLM pods) naming the twin's replica profile.
PROFILE_ANNOTATION = "twin.rhaii.io/profile"
KIND = "LLMInferenceService"


@dataclass(frozen=True)
class Capabilities:
    """Which optional CRDs the cluster serves (the controller skips kinds it cannot write)."""

    pool_x_k8s: bool = True  # inference.networking.x-k8s.io/v1alpha2 InferencePool
    pool_v1: bool = False  # inference.networking.k8s.io/v1 InferencePool
    inference_model: bool = False  # inference.networking.x-k8s.io/v1alpha2 InferenceModel
    httproute: bool = True


def owner_reference(llmisvc: dict[str, Any]) -> dict[str, Any]:
    """The controller reference children carry."""
    meta = llmisvc["metadata"]
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _object(
    api_version: str, kind: str, name: str, llmisvc: dict[str, Any], labels: dict[str, str]
) -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": llmisvc["metadata"]["namespace"],
            "labels": dict(labels),
            "ownerReferences": [owner_reference(llmisvc)],
        },
    }


def gateway_ref(spec: dict[str, Any]) -> tuple[str, str]:
    """(namespace, name) of the Gateway the route binds to: the first ``gateway.refs`` entry, or the
    default ``kserveIngressGateway`` (``opendatahub/inference-gateway``)."""
    gateway = (spec.get("router") or {}).get("gateway") or {}
    refs = gateway.get("refs") or []
    if refs:
        return refs[0].get("namespace") or names.GATEWAY_NAMESPACE, refs[0]["name"]
    return names.GATEWAY_NAMESPACE, names.GATEWAY_NAME


def workload_pod_spec(llmisvc: dict[str, Any]) -> dict[str, Any]:
    """The vLLM PodSpec: the template preset, the user's ``spec.template`` merged over it, and the
    storage initializer that downloads ``spec.model.uri`` to ``/mnt/models``."""
    name = llmisvc["metadata"]["name"]
    spec = llmisvc.get("spec") or {}
    pod_spec = merge(presets.llm_template(name, spec), spec.get("template") or {})
    uri = (spec.get("model") or {}).get("uri") or ""
    containers = pod_spec.get("containers") or []
    main = next((c for c in containers if c.get("name") == "main"), containers[0] if containers else None)
    if uri and main is not None and not uri.startswith("pvc://"):
        init = presets.storage_initializer(uri, main)
        others = [c for c in pod_spec.get("initContainers") or [] if c.get("name") != "storage-initializer"]
        pod_spec["initContainers"] = [init, *others]
        pod_spec["volumes"] = [
            *(pod_spec.get("volumes") or []),
            {"name": "kserve-provision-location", "emptyDir": {}},
        ]
        mounts = [m for m in main.get("volumeMounts") or [] if m.get("mountPath") != presets.MODEL_MOUNT]
        main["volumeMounts"] = [
            *mounts,
            {"name": "kserve-provision-location", "mountPath": presets.MODEL_MOUNT, "readOnly": True},
        ]
    return pod_spec


def workload_deployment(llmisvc: dict[str, Any]) -> dict[str, Any]:
    """``<name>-kserve``: one vLLM pod per replica."""
    name = llmisvc["metadata"]["name"]
    labels = presets.workload_labels(name)
    obj = _object("apps/v1", "Deployment", names.workload_deployment(name), llmisvc, labels)
    replicas = (llmisvc.get("spec") or {}).get("replicas")
    template_meta: dict[str, Any] = {"labels": dict(labels)}
    profile = (llmisvc["metadata"].get("annotations") or {}).get(PROFILE_ANNOTATION)
    if profile:  # twin-only knob: which replica profile the kubelet runs for these pods
        template_meta["annotations"] = {PROFILE_ANNOTATION: profile}
    obj["spec"] = {
        "replicas": 1 if replicas is None else replicas,
        "selector": {"matchLabels": dict(labels)},
        "template": {"metadata": template_meta, "spec": workload_pod_spec(llmisvc)},
    }
    return obj


def workload_service(llmisvc: dict[str, Any]) -> dict[str, Any]:
    """``<name>-kserve-workload-svc``: ClusterIP, https 8000."""
    name = llmisvc["metadata"]["name"]
    labels = {k: v for k, v in presets.workload_labels(name).items() if k.startswith("app.kubernetes.io/")}
    obj = _object("v1", "Service", names.workload_service(name), llmisvc, labels)
    obj["spec"] = {
        "type": "ClusterIP",
        "selector": presets.workload_selector_labels(name),
        "ports": [
            {"name": "https", "port": 8000, "targetPort": 8000, "protocol": "TCP", "appProtocol": "https"}
        ],
    }
    return obj


def workload_service_account(llmisvc: dict[str, Any]) -> dict[str, Any]:
    """``<name>-kserve``."""
    name = llmisvc["metadata"]["name"]
    labels = {k: v for k, v in presets.workload_labels(name).items() if k.startswith("app.kubernetes.io/")}
    return _object("v1", "ServiceAccount", names.service_account(name), llmisvc, labels)


def scheduler_pod_spec(llmisvc: dict[str, Any]) -> dict[str, Any]:
    """The EPP PodSpec: the scheduler preset, ``router.scheduler.template`` merged over it, and
    ``--config-text`` with the EA1 default scorers when no config is given."""
    meta = llmisvc["metadata"]
    scheduler = ((llmisvc.get("spec") or {}).get("router") or {}).get("scheduler") or {}
    pod_spec = merge(
        presets.scheduler_template(meta["name"], meta["namespace"]), scheduler.get("template") or {}
    )
    main = next((c for c in pod_spec.get("containers") or [] if c.get("name") == "main"), None)
    if main is not None:
        args = list(main.get("args") or [])
        if not any(a in ("--config-text", "--config-file") or a.startswith("--config-") for a in args):
            args += ["--config-text", presets.SCHEDULER_CONFIG_TEXT]
        main["args"] = args
    return pod_spec


def scheduler_deployment(llmisvc: dict[str, Any]) -> dict[str, Any]:
    """``<name>-kserve-router-scheduler``: the Endpoint Picker."""
    name = llmisvc["metadata"]["name"]
    labels = presets.scheduler_labels(name)
    obj = _object("apps/v1", "Deployment", names.scheduler_deployment(name), llmisvc, labels)
    obj["spec"] = {
        "replicas": 1,
        "selector": {"matchLabels": dict(labels)},
        "template": {"metadata": {"labels": dict(labels)}, "spec": scheduler_pod_spec(llmisvc)},
    }
    return obj


def epp_service(llmisvc: dict[str, Any], pod_spec: dict[str, Any]) -> dict[str, Any]:
    """``<name>-epp-service``: the EPP container's named ports, sorted by name."""
    name = llmisvc["metadata"]["name"]
    labels = presets.scheduler_labels(name)
    obj = _object("v1", "Service", names.epp_service(name), llmisvc, labels)
    main = next((c for c in pod_spec.get("containers") or [] if c.get("name") == "main"), {})
    ports = []
    for port in sorted((p for p in main.get("ports") or [] if p.get("name")), key=lambda p: p["name"]):
        entry = {
            "name": port["name"],
            "port": port["containerPort"],
            "targetPort": port["containerPort"],
            "protocol": "TCP",
        }
        if port["name"].startswith("grpc"):
            entry["appProtocol"] = "http2"
        ports.append(entry)
    obj["spec"] = {"type": "ClusterIP", "selector": dict(labels), "ports": ports}
    return obj


def scheduler_rbac(llmisvc: dict[str, Any]) -> list[dict[str, Any]]:
    """``<name>-epp-sa``, ``<name>-epp-role`` and ``<name>-epp-rb``: what the EPP reads."""
    name = llmisvc["metadata"]["name"]
    labels = presets.scheduler_labels(name)
    account = _object("v1", "ServiceAccount", f"{name}-epp-sa", llmisvc, labels)
    role = _object("rbac.authorization.k8s.io/v1", "Role", f"{name}-epp-role", llmisvc, labels)
    role["rules"] = [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
        {
            "apiGroups": ["inference.networking.x-k8s.io", "inference.networking.k8s.io"],
            "resources": ["inferencepools", "inferencemodels", "inferenceobjectives"],
            "verbs": ["get", "list", "watch"],
        },
    ]
    binding = _object("rbac.authorization.k8s.io/v1", "RoleBinding", f"{name}-epp-rb", llmisvc, labels)
    binding["subjects"] = [
        {"kind": "ServiceAccount", "name": f"{name}-epp-sa", "namespace": llmisvc["metadata"]["namespace"]}
    ]
    binding["roleRef"] = {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": f"{name}-epp-role"}
    return [account, role, binding]


def inference_pools(llmisvc: dict[str, Any], caps: Capabilities) -> list[dict[str, Any]]:
    """``<name>-inference-pool`` (x-k8s.io v1alpha2, and the v1 twin when that CRD exists)."""
    name = llmisvc["metadata"]["name"]
    labels = presets.scheduler_labels(name)
    pool = ((llmisvc.get("spec") or {}).get("router") or {}).get("scheduler", {}).get("pool") or {}
    user = pool.get("spec") or {}
    selector = user.get("selector") or presets.workload_selector_labels(name)
    target = user.get("targetPortNumber") or 8000
    extension = {
        "failureMode": "FailOpen",
        "kind": "Service",
        "name": names.epp_service(name),
        **(user.get("extensionRef") or {}),
    }
    pools = []
    if caps.pool_x_k8s:
        obj = _object(
            "inference.networking.x-k8s.io/v1alpha2",
            "InferencePool",
            names.inference_pool(name),
            llmisvc,
            labels,
        )
        obj["spec"] = {"selector": dict(selector), "targetPortNumber": target, "extensionRef": extension}
        pools.append(obj)
    if caps.pool_v1:
        obj = _object(
            "inference.networking.k8s.io/v1", "InferencePool", names.inference_pool(name), llmisvc, labels
        )
        obj["spec"] = {
            "selector": {"matchLabels": dict(selector)},
            "targetPorts": [{"number": target}],
            "endpointPickerRef": {
                "kind": "Service",
                "name": extension["name"],
                "port": {"number": 9002},
                "failureMode": extension.get("failureMode", "FailOpen"),
            },
        }
        pools.append(obj)
    return pools


def inference_model(llmisvc: dict[str, Any]) -> dict[str, Any]:
    """``<name>-inference-model``: the served model name, Critical by default."""
    name = llmisvc["metadata"]["name"]
    model = (llmisvc.get("spec") or {}).get("model") or {}
    obj = _object(
        "inference.networking.x-k8s.io/v1alpha2",
        "InferenceModel",
        f"{name}-inference-model",
        llmisvc,
        presets.scheduler_labels(name),
    )
    obj["spec"] = {
        "modelName": model.get("name") or name,
        "criticality": model.get("criticality") or "Critical",
        "poolRef": {
            "group": "inference.networking.x-k8s.io",
            "kind": "InferencePool",
            "name": names.inference_pool(name),
        },
    }
    return obj


def http_route(llmisvc: dict[str, Any]) -> dict[str, Any]:
    """``<name>-kserve-route``: the route preset, the user's inline ``route.http.spec`` merged over it."""
    meta = llmisvc["metadata"]
    spec = llmisvc.get("spec") or {}
    gateway_ns, gateway_name = gateway_ref(spec)
    route_spec = presets.route_spec(meta["name"], meta["namespace"], gateway_ns, gateway_name)
    inline = (((spec.get("router") or {}).get("route") or {}).get("http") or {}).get("spec")
    if isinstance(inline, dict):
        route_spec = {**route_spec, **copy.deepcopy(inline)}
    obj = _object(
        "gateway.networking.k8s.io/v1",
        "HTTPRoute",
        names.http_route(meta["name"]),
        llmisvc,
        presets.router_labels(meta["name"]),
    )
    obj["spec"] = route_spec
    return obj


def render(llmisvc: dict[str, Any], caps: Capabilities) -> list[dict[str, Any]]:
    """Every child object the service should have (the TLS secret is handled apart: it is issued once)."""
    spec = llmisvc.get("spec") or {}
    router = spec.get("router") or {}
    children = [workload_service_account(llmisvc), workload_deployment(llmisvc), workload_service(llmisvc)]
    scheduler = router.get("scheduler")
    if isinstance(scheduler, dict) and not ((scheduler.get("pool") or {}).get("ref")):
        deployment = scheduler_deployment(llmisvc)
        children += scheduler_rbac(llmisvc)
        children += [deployment, epp_service(llmisvc, deployment["spec"]["template"]["spec"])]
        children += inference_pools(llmisvc, caps)
        if caps.inference_model:
            children.append(inference_model(llmisvc))
    route = router.get("route")
    if caps.httproute and isinstance(route, dict) and not ((route.get("http") or {}).get("refs")):
        children.append(http_route(llmisvc))
    return children


def tls_secret(llmisvc: dict[str, Any], cert_pem: bytes, key_pem: bytes) -> dict[str, Any]:
    """``<name>-kserve-self-signed-certs``: the serving certificate vLLM and the EPP mount."""
    import base64

    name = llmisvc["metadata"]["name"]
    labels = {k: v for k, v in presets.workload_labels(name).items() if k.startswith("app.kubernetes.io/")}
    obj = _object("v1", "Secret", names.tls_secret(name), llmisvc, labels)
    obj["type"] = "kubernetes.io/tls"
    obj["data"] = {
        "tls.crt": base64.b64encode(cert_pem).decode(),
        "tls.key": base64.b64encode(key_pem).decode(),
    }
    return obj


def tls_dns_names(name: str, namespace: str) -> list[str]:
    """The SANs of the self-signed certificate (workload and EPP services, FQDN and short forms)."""
    dns = []
    for service in (names.workload_service(name), names.epp_service(name)):
        dns += [
            service,
            f"{service}.{namespace}",
            f"{service}.{namespace}.svc",
            f"{service}.{namespace}.svc.cluster.local",
        ]
    return [*dns, "localhost"]
