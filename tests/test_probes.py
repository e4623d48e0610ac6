"""Probes through the service proxy with TLS verified, pod tracking and log milestones — on the twin.

The module's private twin gets a cluster (through the GKE API), then one vLLM-like workload pod and
its Service are created directly (what KServe would create), so the kubelet starts a replica server.
"""

from __future__ import annotations

import importlib.util
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import helpers_session
import pytest

from rhaii_nb import cluster as cluster_ops
from rhaii_nb import logs, names, pods, probes

twin_session = helpers_session.twin_session

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("rhaii_nb.twin.controllers.kubelet") is None,
    reason="the twin's kubelet (helper D2) is not written yet",
)


def _workload(params) -> tuple[dict, dict]:
    labels = dict(item.split("=") for item in names.workload_selector(params.service_name).split(","))
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{params.service_name}-probe-0", "labels": labels},
        "spec": {
            "nodeSelector": {
                "cloud.google.com/gke-tpu-accelerator": "tpu-v6e-slice",
                "cloud.google.com/gke-tpu-topology": "2x2",
            },
            "tolerations": [
                {"key": "google.com/tpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"}
            ],
            "initContainers": [
                {
                    "name": "storage-initializer",
                    "image": "kserve/storage-initializer",
                    "args": [params.model_uri, "/mnt/models"],
                }
            ],
            "containers": [
                {
                    "name": "main",
                    "image": params.vllm_image,
                    "args": [
                        "--model",
                        "/mnt/models",
                        "--enable-prefix-caching",
                        "--max-model-len",
                        "2048",
                        "--ssl-certfile",
                        "/var/run/kserve/tls/tls.crt",
                    ],
                    "resources": {"limits": {"google.com/tpu": "4"}, "requests": {"google.com/tpu": "4"}},
                    "readinessProbe": {"httpGet": {"path": "/v1/models", "port": 8000, "scheme": "HTTPS"}},
                }
            ],
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": names.workload_service(params.service_name)},
        "spec": {"selector": labels, "ports": [{"name": "https", "port": 8000, "targetPort": 8000}]},
    }
    return pod, service


@pytest.fixture(scope="module")
def serving(twin_session):
    """Cluster + namespace + one ready workload pod behind its Service; returns (session, params, tracker)."""
    session, params = twin_session
    params = params.model_copy(update={"replicas": 1, "apply_network_policies": False})
    cluster_ops.create(session, params, show=False)
    session.core.create_namespace({"metadata": {"name": params.namespace}})
    pod, service = _workload(params)
    tracker = pods.PodTracker(
        session, params.namespace, names.workload_selector(params.service_name), show=False
    )

    def create_once_listed() -> None:
        # The pod is created after the tracker's first list, so its watch replays every stage from
        # Pending on, however fast the twin's scheduler and kubelet are on a busy machine.
        deadline = time.monotonic() + 60
        while tracker.resource_version is None:
            if time.monotonic() > deadline:
                raise TimeoutError("the pod tracker never listed the pods")
            time.sleep(0.01)
        session.core.create_namespaced_service(params.namespace, service)
        session.core.create_namespaced_pod(params.namespace, pod)

    with ThreadPoolExecutor(max_workers=1) as pool:
        created = pool.submit(create_once_listed)
        try:
            tracker.wait_for(pods.all_ready(1), 60)
        finally:
            created.result(timeout=60)  # its error, if any, explains a timeout better
    return session, params, tracker


@pytest.mark.timeout(120)
def test_lifecycle_stages_recorded_in_order(serving) -> None:
    _, _, tracker = serving
    timeline = tracker.timeline()
    stages = list(timeline["stage"])
    assert stages[-1] == "Running 1/1"
    assert stages.index("Pending") < stages.index("Running 1/1")
    assert any(s.startswith("Init:") for s in stages), stages
    assert list(timeline.columns) == ["pod", "stage", "start", "end", "node"]
    assert tracker.table().iloc[0]["node"].startswith("gke-")


@pytest.mark.timeout(120)
def test_internal_probes_verify_tls_against_the_cluster_ca(serving) -> None:
    session, params, _ = serving
    results = probes.probe_all(session, params, via=("internal",))
    assert list(results["ok"]) == [True] * 4, results.to_string()
    assert all("/services/https:" in url and url.startswith(session.kube_host) for url in results["url"])
    assert "/mnt/models" in results.set_index("probe").loc["models", "summary"]


@pytest.mark.timeout(120)
def test_tls_verify_off_is_loud(serving) -> None:
    _, params, _ = serving
    loose = params.model_copy(update={"tls_verify": False})
    from rhaii_nb.session import connect

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loose_session = connect(loose)
        result = probes.probe(loose_session, loose, "health")
    assert result.ok
    assert any("TLS VERIFICATION IS OFF" in str(w.message) for w in caught)


@pytest.mark.timeout(120)
def test_log_milestones_reported_with_timings(serving) -> None:
    session, params, tracker = serving
    pod_name = next(iter(tracker.pods))
    found = logs.follow_milestones(session, pod_name, params.namespace, timeout=30, show=False)
    assert list(found["milestone"]) == [m.key for m in logs.MILESTONES]
    assert (found["seconds"] >= 0).all()


@pytest.mark.timeout(120)
def test_wait_timeout_names_what_is_missing_and_events(serving) -> None:
    session, params, _ = serving
    tracker = pods.PodTracker(
        session, params.namespace, names.workload_selector(params.service_name), show=False
    )
    with pytest.raises(pods.WaitTimeout) as info:
        tracker.wait_for(pods.all_ready(3), timeout=2)
    message = str(info.value)
    assert "1/3 pods ready" in message and "Recent events:" in message


@pytest.mark.timeout(120)
def test_wait_ready_without_the_service_says_so_with_pods_and_events(serving) -> None:
    from rhaii_nb import service

    session, params, _ = serving
    assert service.replicas_ready(session, params) == 1
    with pytest.raises(pods.WaitTimeout) as info:
        service.wait_ready(session, params, timeout=2, show=False)
    message = str(info.value)
    assert f"LLMInferenceService {params.namespace}/{params.service_name} does not exist" in message
    assert "Running" in message and "Recent events:" in message
    table = service.status_table(session, params)
    assert table.set_index("item").loc["LLMInferenceService", "value"] == "not found"
