"""Admission webhooks the RHAII operators install: KServe's LLMInferenceService validator and Istio's
sidecar injector.

Both are store admission hooks (``hook(operation, rt, obj, old_obj)``), registered by
``operators.install`` because on a real cluster they exist only once KServe and Istio are installed.

KServe (``pkg/controller/llmisvc/validation/llminferenceservice_validator.go``) rejects, with a 422
``Invalid`` whose message the API server prefixes with ``admission webhook "<name>" denied the
request:``: an HTTPRoute given both as refs and as an inline spec; route refs with a managed gateway;
an inline route spec with parentRefs next to gateway refs; ``worker`` without data or pipeline
parallelism; pipeline and data parallelism together; ``data`` without ``dataLocal`` or the reverse;
non-positive parallelism; and a change of the total parallelism size on update.

Istio 1.27 (native sidecars by default, Istio CNI as the guide sets up) injects into pods labelled
``sidecar.istio.io/inject=true`` or created in a namespace labelled ``istio-injection=enabled``: an
``istio-validation`` init container and the ``istio-proxy`` sidecar (an init container with
``restartPolicy: Always``), so the pod shows ``2/2`` when ready.
"""

from __future__ import annotations

import json
from typing import Any

from rhaii_nb.twin.errors import ApiError

KSERVE_WEBHOOK = "llminferenceservice.kserve-webhook-server.validator"
ISTIO_PROXY_IMAGE = "registry.redhat.io/openshift-service-mesh/istio-proxyv2-rhel9:1.27.3"


# --- KServe LLMInferenceService validation -------------------------------------------------------


def _render_value(value: Any) -> str:
    """A bad value the way apimachinery's field errors print it (objects as JSON)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


class _FieldError:
    """One ``field.Error``: ``<path>: Invalid value: <value>: <detail>``."""

    def __init__(self, path: str, value: Any, detail: str, kind: str = "Invalid") -> None:
        self.path, self.value, self.detail, self.kind = path, value, detail, kind

    @property
    def reason(self) -> str:
        return "FieldValueNotSupported" if self.kind == "NotSupported" else "FieldValueInvalid"

    def __str__(self) -> str:
        label = "Unsupported value" if self.kind == "NotSupported" else "Invalid value"
        return f"{self.path}: {label}: {_render_value(self.value)}: {self.detail}"


def _route_errors(spec: dict[str, Any]) -> list[_FieldError]:
    router = spec.get("router") or {}
    route = router.get("route")
    http = (route or {}).get("http") if isinstance(route, dict) else None
    if not isinstance(http, dict):
        return []
    gateway = router.get("gateway")
    gateway_refs = (gateway or {}).get("refs") or [] if isinstance(gateway, dict) else []
    refs, inline = http.get("refs") or [], http.get("spec")
    base = "spec.router.route.http"
    errors = []
    if refs and inline is not None:
        errors.append(
            _FieldError(
                base,
                http,
                f"unsupported configuration: cannot use both custom HTTPRoute refs ('{base}.refs') and an "
                f"inline route spec ('{base}.spec'); choose one",
            )
        )
    if refs and isinstance(gateway, dict) and not gateway_refs:
        errors.append(
            _FieldError(
                f"{base}.refs",
                refs,
                f"unsupported configuration: custom HTTP routes ('{base}.refs') cannot be used with a "
                f"managed gateway ('spec.router.gateway'); either remove '{base}.refs' or set "
                "'spec.router.gateway.refs'",
            )
        )
    if isinstance(inline, dict) and inline.get("parentRefs") and gateway_refs:
        errors.append(
            _FieldError(
                f"{base}.spec",
                inline,
                f"unsupported configuration: managed HTTP route spec ('{base}.spec') cannot be used with "
                "custom gateway refs ('spec.router.gateway.refs'); either remove "
                f"'spec.router.gateway.refs' or '{base}.spec.parentRefs'",
            )
        )
    return errors


def _parallelism_errors(base: str, workload: dict[str, Any]) -> list[_FieldError]:
    worker = workload.get("worker")
    parallelism = workload.get("parallelism")
    needs = (
        "when worker is specified, parallelism must be configured for either data parallelism or "
        "pipeline parallelism"
    )
    if worker is not None and parallelism is None:
        return [_FieldError(f"{base}.worker", worker, needs)]
    if not isinstance(parallelism, dict):
        return []
    path = f"{base}.parallelism"
    data, local, pipeline = parallelism.get("data"), parallelism.get("dataLocal"), parallelism.get("pipeline")
    is_data = data is not None or local is not None
    is_pipeline = pipeline is not None
    errors = []
    if worker is not None and not is_data and not is_pipeline:
        errors.append(_FieldError(f"{base}.worker", worker, needs))
    if is_data and is_pipeline:
        errors.append(
            _FieldError(
                path,
                parallelism,
                "cannot set both pipeline parallelism and data parallelism (data or dataLocal) "
                "simultaneously",
            )
        )
    if data is not None and local is None:
        errors.append(_FieldError(f"{path}.dataLocal", None, "dataLocal must be set when data is set"))
    if local is not None and data is None:
        errors.append(_FieldError(f"{path}.data", None, "data must be set when dataLocal is set"))
    for key, label in (
        ("pipeline", "pipeline parallelism"),
        ("data", "data parallelism"),
        ("dataLocal", "dataLocal parallelism"),
    ):
        value = parallelism.get(key)
        if isinstance(value, int) and value <= 0:
            errors.append(_FieldError(f"{path}.{key}", value, f"{label} must be greater than 0"))
    return errors


def _parallelism_size(parallelism: Any) -> int:
    """Total parallelism size: data parallelism, else pipeline parallelism, else 1."""
    if not isinstance(parallelism, dict):
        return 1
    for key in ("data", "pipeline"):
        if isinstance(parallelism.get(key), int):
            return parallelism[key]
    return 1


def llmisvc_errors(obj: dict[str, Any], old: dict[str, Any] | None) -> list[_FieldError]:
    """Every rule of KServe's validator that ``obj`` (an update of ``old``, if given) breaks."""
    spec = obj.get("spec") or {}
    errors = _route_errors(spec) + _parallelism_errors("spec", spec)
    if isinstance(spec.get("prefill"), dict):
        errors += _parallelism_errors("spec.prefill", spec["prefill"])
    if old is not None:
        old_spec = old.get("spec") or {}
        pairs = [("spec", old_spec.get("parallelism"), spec.get("parallelism"))]
        if isinstance(spec.get("prefill"), dict) and isinstance(old_spec.get("prefill"), dict):
            pairs.append(
                ("spec.prefill", old_spec["prefill"].get("parallelism"), spec["prefill"].get("parallelism"))
            )
        for base, before, after in pairs:
            previous, current = _parallelism_size(before), _parallelism_size(after)
            if previous != current:
                errors.append(
                    _FieldError(
                        f"{base}.parallelism",
                        current,
                        f"total parallelism size is immutable, previous size {previous}, curr size {current}",
                        kind="NotSupported",
                    )
                )
    return errors


def kserve_validation_hook(
    operation: str, rt: Any, obj: dict[str, Any], old_obj: dict[str, Any] | None
) -> None:
    """Store admission hook: KServe's validating webhook for LLMInferenceServices."""
    if rt.group != "serving.kserve.io" or rt.plural != "llminferenceservices":
        return
    if operation not in ("CREATE", "UPDATE") or obj is None:
        return
    errors = llmisvc_errors(obj, old_obj if operation == "UPDATE" else None)
    if not errors:
        return
    name = (obj.get("metadata") or {}).get("name", "")
    listed = str(errors[0]) if len(errors) == 1 else "[" + ", ".join(str(e) for e in errors) + "]"
    message = (
        f'admission webhook "{KSERVE_WEBHOOK}" denied the request: '
        f'LLMInferenceService.serving.kserve.io "{name}" is invalid: {listed}'
    )
    details = {
        "name": name,
        "group": "serving.kserve.io",
        "kind": "LLMInferenceService",
        "causes": [
            {"reason": e.reason, "message": str(e).split(": ", 1)[1], "field": e.path} for e in errors
        ],
    }
    raise ApiError(422, "Invalid", message, details)


# --- Istio sidecar injection -----------------------------------------------------------------------


def wants_injection(pod: dict[str, Any], namespace_labels: dict[str, str]) -> bool:
    """Istio's injection policy for a pod (label beats namespace; ``false`` always wins)."""
    meta = pod.get("metadata") or {}
    label = (meta.get("labels") or {}).get("sidecar.istio.io/inject")
    annotation = (meta.get("annotations") or {}).get("sidecar.istio.io/inject")
    spec = pod.get("spec") or {}
    if spec.get("hostNetwork"):
        return False
    names = [c.get("name") for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])]
    if "istio-proxy" in names:
        return False  # already injected
    if "false" in (label, annotation):
        return False
    if label == "true":
        return True
    return namespace_labels.get("istio-injection") == "enabled" or "istio.io/rev" in namespace_labels


def inject_sidecar(pod: dict[str, Any]) -> None:
    """Add what Istio's injector adds: the validation init container, the native ``istio-proxy``
    sidecar, its volumes, labels and the status annotation."""
    meta = pod.setdefault("metadata", {})
    spec = pod.setdefault("spec", {})
    labels = meta.setdefault("labels", {})
    annotations = meta.setdefault("annotations", {})
    app_containers = [c.get("name") for c in spec.get("containers") or []]
    canonical = (
        labels.get("app.kubernetes.io/name") or labels.get("app") or meta.get("generateName", "").rstrip("-")
    )
    labels.setdefault("security.istio.io/tlsMode", "istio")
    labels.setdefault("service.istio.io/canonical-name", canonical)
    labels.setdefault(
        "service.istio.io/canonical-revision", labels.get("app.kubernetes.io/version", "latest")
    )
    volumes = [
        "workload-socket",
        "credential-socket",
        "workload-certs",
        "istio-envoy",
        "istio-data",
        "istio-podinfo",
        "istio-token",
        "istiod-ca-cert",
    ]
    annotations["sidecar.istio.io/status"] = json.dumps(
        {
            "initContainers": ["istio-validation", "istio-proxy"],
            "containers": None,
            "volumes": volumes,
            "imagePullSecrets": None,
            "revision": "default",
        },
        separators=(",", ":"),
    )
    if len(app_containers) == 1:
        annotations.setdefault("kubectl.kubernetes.io/default-container", app_containers[0])
        annotations.setdefault("kubectl.kubernetes.io/default-logs-container", app_containers[0])
    mounts = [
        {"name": "workload-socket", "mountPath": "/var/run/secrets/workload-spiffe-uds"},
        {"name": "credential-socket", "mountPath": "/var/run/secrets/credential-uds"},
        {"name": "workload-certs", "mountPath": "/var/run/secrets/workload-spiffe-credentials"},
        {"name": "istiod-ca-cert", "mountPath": "/var/run/secrets/istio"},
        {"name": "istio-data", "mountPath": "/var/lib/istio/data"},
        {"name": "istio-envoy", "mountPath": "/etc/istio/proxy"},
        {"name": "istio-token", "mountPath": "/var/run/secrets/tokens"},
        {"name": "istio-podinfo", "mountPath": "/etc/istio/pod"},
    ]
    small = {"limits": {"cpu": "2", "memory": "1Gi"}, "requests": {"cpu": "10m", "memory": "40Mi"}}
    validation = {
        "name": "istio-validation",
        "image": ISTIO_PROXY_IMAGE,
        "args": ["istio-iptables", "--run-validation", "--skip-rule-apply"],
        "resources": small,
        "securityContext": {"runAsNonRoot": True, "runAsUser": 1337, "capabilities": {"drop": ["ALL"]}},
    }
    proxy = {
        "name": "istio-proxy",
        "image": ISTIO_PROXY_IMAGE,
        "args": [
            "proxy",
            "sidecar",
            "--domain",
            "$(POD_NAMESPACE).svc.cluster.local",
            "--proxyLogLevel=warning",
            "--proxyComponentLogLevel=misc:error",
            "--log_output_level=default:info",
        ],
        "ports": [{"name": "http-envoy-prom", "containerPort": 15090, "protocol": "TCP"}],
        "readinessProbe": {
            "httpGet": {"path": "/healthz/ready", "port": 15021},
            "periodSeconds": 15,
            "timeoutSeconds": 3,
            "failureThreshold": 4,
        },
        "startupProbe": {
            "httpGet": {"path": "/healthz/ready", "port": 15021},
            "periodSeconds": 1,
            "timeoutSeconds": 3,
            "failureThreshold": 600,
        },
        "resources": small,
        "restartPolicy": "Always",
        "volumeMounts": mounts,
        "securityContext": {"runAsNonRoot": True, "runAsUser": 1337, "readOnlyRootFilesystem": True},
    }
    spec["initContainers"] = [*(spec.get("initContainers") or []), validation, proxy]
    spec["volumes"] = [
        *(spec.get("volumes") or []),
        {"name": "workload-socket", "emptyDir": {}},
        {"name": "credential-socket", "emptyDir": {}},
        {"name": "workload-certs", "emptyDir": {}},
        {"name": "istio-envoy", "emptyDir": {"medium": "Memory"}},
        {"name": "istio-data", "emptyDir": {}},
        {
            "name": "istio-podinfo",
            "downwardAPI": {
                "items": [
                    {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                    {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
                ]
            },
        },
        {
            "name": "istio-token",
            "projected": {
                "sources": [
                    {
                        "serviceAccountToken": {
                            "audience": "istio-ca",
                            "expirationSeconds": 43200,
                            "path": "istio-token",
                        }
                    }
                ]
            },
        },
        {"name": "istiod-ca-cert", "configMap": {"name": "istio-ca-root-cert"}},
    ]


def make_istio_injection_hook(store: Any) -> Any:
    """Store admission hook: Istio's mutating webhook ``sidecar-injector.istio.io`` for pods."""

    def hook(operation: str, rt: Any, obj: dict[str, Any], old_obj: dict[str, Any] | None) -> None:
        if operation != "CREATE" or rt.group != "" or rt.plural != "pods" or obj is None:
            return
        namespace = (obj.get("metadata") or {}).get("namespace")
        if namespace in ("kube-system", "kube-public", "istio-system"):
            return
        namespace_labels: dict[str, str] = {}
        if namespace:
            try:
                ns = store.get(store.resource("", "v1", "namespaces"), namespace)
                namespace_labels = (ns.get("metadata") or {}).get("labels") or {}
            except ApiError:
                pass
        if wants_injection(obj, namespace_labels):
            inject_sidecar(obj)

    return hook
