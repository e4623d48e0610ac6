"""RHAII EA1's well-known LLMInferenceServiceConfig presets, as the controller renders them for one
service (rhaii-facts §5.4): ``kserve-config-llm-template`` (the vLLM pod),
``kserve-config-llm-scheduler`` (the EPP pod and the InferencePool) and
``kserve-config-llm-router-route`` (the HTTPRoute).

Images are named by tag; the real presets pin ``registry.redhat.io/...@sha256`` digests.
"""

from __future__ import annotations

from typing import Any

from rhaii_nb import names

VLLM_IMAGE = "registry.redhat.io/rhaiis/vllm-cuda-rhel9:3.2.5"
SCHEDULER_IMAGE = "registry.redhat.io/rhoai/odh-llm-d-inference-scheduler-rhel9:v3.4.0-ea.1"
STORAGE_INITIALIZER_IMAGE = "registry.redhat.io/rhoai/odh-kserve-storage-initializer-rhel9:v3.4.0-ea.1"
MODEL_MOUNT = "/mnt/models"
TLS_MOUNT = "/var/run/kserve/tls"
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"

# The EA1 controller's default EPP configuration (non-P/D): prefix-cache 2.0, load-aware 1.0.
SCHEDULER_CONFIG_TEXT = """apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: single-profile-handler
- type: prefix-cache-scorer
- type: load-aware-scorer
- type: max-score-picker
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: prefix-cache-scorer
    weight: 2.0
  - pluginRef: load-aware-scorer
    weight: 1.0
  - pluginRef: max-score-picker
"""

_VLLM_SCRIPT = """if [ -d /dev/infiniband ] || ls /sys/class/infiniband 2>/dev/null | grep -q .; then
  echo "RoCE devices detected"
fi
eval "vllm serve /mnt/models --served-model-name {served} --port 8000 ${{VLLM_ADDITIONAL_ARGS}} \\
  --enable-ssl-refresh --ssl-certfile /var/run/kserve/tls/tls.crt --ssl-keyfile /var/run/kserve/tls/tls.key"
"""

_RESTRICTED = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def workload_labels(name: str) -> dict[str, str]:
    """Labels of the vLLM Deployment and its pods."""
    return {
        "app.kubernetes.io/component": "llminferenceservice-workload",
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/part-of": "llminferenceservice",
        "kserve.io/component": "workload",
        "llm-d.ai/role": "both",
    }


def workload_selector_labels(name: str) -> dict[str, str]:
    """The workload Service's (and InferencePool's) selector."""
    return {
        "app.kubernetes.io/part-of": "llminferenceservice",
        "app.kubernetes.io/name": name,
        "kserve.io/component": "workload",
    }


def scheduler_labels(name: str) -> dict[str, str]:
    """Labels of the EPP Deployment, its pods, Service, pool and RBAC objects."""
    return {
        "app.kubernetes.io/component": "llminferenceservice-router-scheduler",
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/part-of": "llminferenceservice",
    }


def router_labels(name: str) -> dict[str, str]:
    """Labels of the HTTPRoute."""
    return {
        "app.kubernetes.io/component": "llminferenceservice-router",
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/part-of": "llminferenceservice",
    }


def llm_template(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """``kserve-config-llm-template``: the vLLM PodSpec before the user's template is merged in."""
    served = (spec.get("model") or {}).get("name") or name
    return {
        "terminationGracePeriodSeconds": 30,
        "containers": [
            {
                "name": "main",
                "image": VLLM_IMAGE,
                "command": ["/bin/bash", "-c"],
                "args": [_VLLM_SCRIPT.format(served=served)],
                "ports": [{"containerPort": 8000, "name": "https", "protocol": "TCP"}],
                "env": [
                    {"name": "HOME", "value": "/home"},
                    {"name": "VLLM_LOGGING_LEVEL", "value": "INFO"},
                    {"name": "HF_HUB_CACHE", "value": "/models"},
                ],
                "livenessProbe": {
                    "httpGet": {"path": "/health", "port": 8000, "scheme": "HTTPS"},
                    "initialDelaySeconds": 120,
                    "periodSeconds": 10,
                    "timeoutSeconds": 10,
                    "failureThreshold": 3,
                },
                "readinessProbe": {
                    "httpGet": {"path": "/health", "port": 8000, "scheme": "HTTPS"},
                    "initialDelaySeconds": 10,
                    "periodSeconds": 10,
                    "timeoutSeconds": 5,
                    "failureThreshold": 60,
                },
                "securityContext": dict(_RESTRICTED),
                "terminationMessagePolicy": "FallbackToLogsOnError",
                "volumeMounts": [
                    {"name": "home", "mountPath": "/home"},
                    {"name": "dshm", "mountPath": "/dev/shm"},
                    {"name": "model-cache", "mountPath": "/models"},
                    {"name": "tls-certs", "mountPath": TLS_MOUNT, "readOnly": True},
                ],
            }
        ],
        "volumes": [
            {"name": "home", "emptyDir": {}},
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}},
            {"name": "model-cache", "emptyDir": {}},
            {"name": "tls-certs", "secret": {"secretName": names.tls_secret(name)}},
        ],
    }


def storage_initializer(uri: str, main: dict[str, Any]) -> dict[str, Any]:
    """The init container that downloads the model to ``/mnt/models`` (HF token from the main container)."""
    env = [e for e in main.get("env") or [] if e.get("name") in ("HF_TOKEN", "HF_HUB_OFFLINE", "HF_ENDPOINT")]
    container: dict[str, Any] = {
        "name": "storage-initializer",
        "image": STORAGE_INITIALIZER_IMAGE,
        "args": [uri, MODEL_MOUNT],
        "resources": {
            "limits": {"cpu": "1", "memory": "1Gi"},
            "requests": {"cpu": "100m", "memory": "100Mi"},
        },
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [{"name": "kserve-provision-location", "mountPath": MODEL_MOUNT}],
    }
    if env:
        container["env"] = env
    return container


def scheduler_template(name: str, namespace: str) -> dict[str, Any]:
    """``kserve-config-llm-scheduler``: the EPP PodSpec (the controller appends ``--config-text``)."""
    grpc_probe = {
        "grpc": {"port": 9003, "service": "envoy.service.ext_proc.v3.ExternalProcessor"},
        "periodSeconds": 10,
    }
    return {
        "serviceAccountName": f"{name}-epp-sa",
        "terminationGracePeriodSeconds": 130,
        "containers": [
            {
                "name": "main",
                "image": SCHEDULER_IMAGE,
                "args": [
                    "--pool-name",
                    names.inference_pool(name),
                    "--pool-namespace",
                    namespace,
                    "--pool-group",
                    "inference.networking.x-k8s.io",
                    "--zap-encoder",
                    "json",
                    "--grpc-port",
                    "9002",
                    "--grpc-health-port",
                    "9003",
                    "--secure-serving",
                    "--model-server-metrics-scheme",
                    "https",
                    "--cert-path",
                    TLS_MOUNT,
                ],
                "env": [
                    {
                        "name": "SSL_CERT_DIR",
                        "value": f"{TLS_MOUNT}:{SERVICE_ACCOUNT_DIR}:/etc/pki/tls/certs",
                    }
                ],
                "ports": [
                    {"containerPort": 9002, "name": "grpc", "protocol": "TCP"},
                    {"containerPort": 9003, "name": "grpc-health", "protocol": "TCP"},
                    {"containerPort": 9090, "name": "metrics", "protocol": "TCP"},
                    {"containerPort": 5557, "name": "zmq", "protocol": "TCP"},
                ],
                "livenessProbe": {**grpc_probe, "initialDelaySeconds": 5},
                "readinessProbe": {**grpc_probe, "initialDelaySeconds": 30},
                "resources": {"requests": {"cpu": "256m", "memory": "500Mi"}},
                "securityContext": {**_RESTRICTED, "readOnlyRootFilesystem": True},
                "terminationMessagePolicy": "FallbackToLogsOnError",
                "volumeMounts": [{"name": "tls-certs", "mountPath": TLS_MOUNT, "readOnly": True}],
            }
        ],
        "volumes": [{"name": "tls-certs", "secret": {"secretName": names.tls_secret(name)}}],
    }


def route_spec(name: str, namespace: str, gateway_namespace: str, gateway_name: str) -> dict[str, Any]:
    """``kserve-config-llm-router-route``: completions and chat via the pool, the rest to the Service."""
    prefix = f"/{namespace}/{name}"
    timeouts = {"backendRequest": "0s", "request": "0s"}

    def rule(path: str, backend: dict[str, Any], rewrite: str) -> dict[str, Any]:
        return {
            "matches": [{"path": {"type": "PathPrefix", "value": path}}],
            "backendRefs": [{**backend, "port": 8000, "weight": 1}],
            "filters": [
                {
                    "type": "URLRewrite",
                    "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": rewrite}},
                }
            ],
            "timeouts": timeouts,
        }

    pool = {
        "group": "inference.networking.x-k8s.io",
        "kind": "InferencePool",
        "name": names.inference_pool(name),
    }
    service = {"group": "", "kind": "Service", "name": names.workload_service(name)}
    return {
        "parentRefs": [
            {
                "group": "gateway.networking.k8s.io",
                "kind": "Gateway",
                "name": gateway_name,
                "namespace": gateway_namespace,
            }
        ],
        "rules": [
            rule(f"{prefix}/v1/completions", pool, "/v1/completions"),
            rule(f"{prefix}/v1/chat/completions", pool, "/v1/chat/completions"),
            rule(prefix, service, "/"),
        ],
    }
