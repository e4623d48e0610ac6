"""Installing the RHAII operators into the twin's cluster (what rhaii-on-xks's ``make deploy-all`` and
``setup-gateway.sh`` leave behind): ``install(ctx)``.

It registers the CRDs (Gateway API, Inference Extension, EnvoyFilter, LLMInferenceService), creates
the operator namespaces and Deployments (cert-manager + webhook + cainjector, istiod, the KServe
controller, the LWS operator) whose pods the scheduler and kubelet then run, installs KServe's
validating webhook and Istio's sidecar injector, the ``istio`` GatewayClass, KServe's
``inferenceservice-config`` ConfigMap and the Gateway ``opendatahub/inference-gateway``. The
operators' behaviour itself lives in the controllers (``llmisvc``, ``gatewayclass``).

Idempotent: every object is server-side applied, so a second install changes nothing.
"""

from __future__ import annotations

import copy
import functools
import json
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from rhaii_nb import names
from rhaii_nb.twin import admission

MANAGER = "rhaii-operators"
PARTS_KEY = "operators"


def _data_dir() -> Path:
    return Path(str(resources.files("rhaii_nb"))) / "data"


def _plan() -> dict[str, Any]:
    path = Path(__file__).parent / "data" / "operators" / "operators.yaml"
    return yaml.safe_load(path.read_text())


@functools.cache
def _documents(path: Path) -> tuple[dict[str, Any], ...]:
    """The YAML documents of a schema file, parsed once per process (libyaml when available)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return tuple(doc for doc in yaml.load_all(path.read_text(), Loader=loader) if doc)


def load_crds(entries: list[str]) -> list[dict[str, Any]]:
    """CRD documents from ``rhaii_nb/data/schemas`` (``file#crd-name`` picks one document)."""
    crds = []
    for entry in entries:
        relative, _, wanted = entry.partition("#")
        path = _data_dir() / "schemas" / relative
        for doc in copy.deepcopy(_documents(path)):
            if doc.get("kind") != "CustomResourceDefinition":
                continue
            if wanted and doc["metadata"]["name"] != wanted:
                continue
            doc["metadata"].pop("creationTimestamp", None)
            doc.pop("status", None)
            crds.append(doc)
    return crds


def deployment(spec: dict[str, Any]) -> dict[str, Any]:
    """An operator Deployment from its entry in ``operators.yaml``."""
    labels = dict(spec["labels"])
    container: dict[str, Any] = {
        "name": "manager" if "kserve" in spec["name"] else spec["name"].split("-")[-1],
        "image": spec["image"],
        "args": list(spec.get("args") or []),
        "resources": {"requests": dict(spec.get("requests") or {})},
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": 8080},
            "initialDelaySeconds": 5,
            "periodSeconds": 10,
        },
    }
    if spec.get("env"):
        container["env"] = [{"name": k, "value": v} for k, v in spec["env"].items()]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": spec["name"], "namespace": spec["namespace"], "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"serviceAccountName": spec["name"], "containers": [container]},
            },
        },
    }


def gateway_class() -> dict[str, Any]:
    """The ``istio`` GatewayClass Istio creates."""
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "GatewayClass",
        "metadata": {"name": "istio"},
        "spec": {
            "controllerName": "istio.io/gateway-controller",
            "description": "The default Istio GatewayClass",
        },
    }


def inference_gateway() -> dict[str, Any]:
    """The Gateway ``setup-gateway.sh`` creates: class istio, one HTTP listener on port 80."""
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": names.GATEWAY_NAME, "namespace": names.GATEWAY_NAMESPACE},
        "spec": {
            "gatewayClassName": "istio",
            "listeners": [
                {
                    "name": "http",
                    "port": 80,
                    "protocol": "HTTP",
                    "allowedRoutes": {"namespaces": {"from": "All"}},
                }
            ],
            "infrastructure": {
                "labels": {"serving.kserve.io/gateway": "kserve-ingress-gateway"},
                "parametersRef": {"group": "", "kind": "ConfigMap", "name": "inference-gateway-config"},
            },
        },
    }


def kserve_config() -> list[dict[str, Any]]:
    """KServe's ``inferenceservice-config`` (ingress) and the gateway's parameters ConfigMap."""
    ingress = {
        "enableGatewayApi": True,
        "kserveIngressGateway": f"{names.GATEWAY_NAMESPACE}/{names.GATEWAY_NAME}",
        "urlScheme": "https",
    }
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "inferenceservice-config", "namespace": names.GATEWAY_NAMESPACE},
            "data": {"ingress": json.dumps(ingress, indent=2)},
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "inference-gateway-config", "namespace": names.GATEWAY_NAMESPACE},
            "data": {"deployment": "spec:\n  template:\n    spec:\n      volumes: []\n"},
        },
    ]


def _apply(store: Any, obj: dict[str, Any]) -> dict[str, Any]:
    rt = store.resource_for(obj["apiVersion"], obj["kind"])
    meta = obj["metadata"]
    return store.patch(
        rt, meta["name"], obj, "apply", namespace=meta.get("namespace"), field_manager=MANAGER, force=True
    )


def ensure_admission(ctx: Any) -> None:
    """Register KServe's validating webhook and Istio's sidecar injector once per twin process."""
    state = ctx.parts.setdefault(PARTS_KEY, {})
    if state.get("admission"):
        return
    ctx.store.add_admission(admission.kserve_validation_hook)
    ctx.store.add_admission(admission.make_istio_injection_hook(ctx.store))
    state["admission"] = True


def install(ctx: Any) -> dict[str, Any]:
    """Install the operators (idempotent); returns a summary of what is there."""
    store = ctx.store
    plan = _plan()
    crd_rt = store.resource("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    crds = load_crds(plan["crds"])
    for crd in crds:
        if not store.exists(crd_rt, crd["metadata"]["name"]):
            store.register_crd(crd, field_manager=MANAGER)
    ns_rt = store.resource("", "v1", "namespaces")
    for namespace in plan["namespaces"]:
        if not store.exists(ns_rt, namespace):
            body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
            store.create(ns_rt, body, field_manager=MANAGER)
    ensure_admission(ctx)
    for entry in plan["deployments"]:
        account = {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": entry["name"], "namespace": entry["namespace"]},
        }
        _apply(store, account)
        _apply(store, deployment(entry))
    for config in kserve_config():
        _apply(store, config)
    _apply(store, gateway_class())
    _apply(store, inference_gateway())
    ctx.parts.setdefault(PARTS_KEY, {})["installed"] = True
    return {
        "crds": [c["metadata"]["name"] for c in crds],
        "namespaces": list(plan["namespaces"]),
        "deployments": [f"{d['namespace']}/{d['name']}" for d in plan["deployments"]],
        "gateway": f"{names.GATEWAY_NAMESPACE}/{names.GATEWAY_NAME}",
    }


def installed(ctx: Any) -> bool:
    """Whether ``install`` ran in this twin process."""
    return bool(ctx.parts.get(PARTS_KEY, {}).get("installed"))
