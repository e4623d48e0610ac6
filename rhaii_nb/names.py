"""Names KServe's LLMInferenceService controller gives a service's child objects (one place)."""

from __future__ import annotations

GATEWAY_NAMESPACE = "opendatahub"
GATEWAY_NAME = "inference-gateway"


def workload_deployment(service: str) -> str:
    """The vLLM workload Deployment, ``<name>-kserve``."""
    return f"{service}-kserve"


def workload_service(service: str) -> str:
    """The ClusterIP Service in front of the vLLM pods (https 8000)."""
    return f"{service}-kserve-workload-svc"


def scheduler_deployment(service: str) -> str:
    """The EPP (router-scheduler) Deployment."""
    return f"{service}-kserve-router-scheduler"


def epp_service(service: str) -> str:
    """The EPP Service (grpc 9002) the ext_proc EnvoyFilter points at."""
    return f"{service}-epp-service"


def inference_pool(service: str) -> str:
    """The InferencePool selecting the workload pods."""
    return f"{service}-inference-pool"


def http_route(service: str) -> str:
    """The HTTPRoute bound to the inference gateway."""
    return f"{service}-kserve-route"


def tls_secret(service: str) -> str:
    """The self-signed TLS secret mounted at /var/run/kserve/tls."""
    return f"{service}-kserve-self-signed-certs"


def service_account(service: str) -> str:
    """The workload ServiceAccount."""
    return f"{service}-kserve"


def workload_selector(service: str) -> str:
    """Label selector matching the service's workload (vLLM) pods."""
    return (
        "app.kubernetes.io/part-of=llminferenceservice,"
        f"app.kubernetes.io/name={service},kserve.io/component=workload"
    )


def scheduler_selector(service: str) -> str:
    """Label selector matching the service's EPP scheduler pods."""
    return (
        "app.kubernetes.io/component=llminferenceservice-router-scheduler,"
        f"app.kubernetes.io/name={service},app.kubernetes.io/part-of=llminferenceservice"
    )


def workload_service_fqdn(service: str, namespace: str) -> str:
    """Cluster DNS name of the workload Service."""
    return f"{workload_service(service)}.{namespace}.svc.cluster.local"


def epp_service_fqdn(service: str, namespace: str) -> str:
    """Cluster DNS name of the EPP Service."""
    return f"{epp_service(service)}.{namespace}.svc.cluster.local"
