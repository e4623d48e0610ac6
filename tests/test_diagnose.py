"""diagnose() on a deployed twin: healthy, then each troubleshooting case staged for real (objects
deleted, scenarios switched on at runtime, quota lowered) — the cause named, the safe fixes applied.

One private twin for the module; every test restores what it broke.
"""

from __future__ import annotations

import time

import helpers_deploy
import helpers_session
import pytest

from rhaii_nb import pods, service
from rhaii_nb.diagnose import ClusterView, diagnose, findings_of
from rhaii_nb.scenarios import SCENARIOS

pytestmark = pytest.mark.xdist_group("diagnose-twin")
TPU_LABEL = "cloud.google.com/gke-tpu-accelerator"


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    """(session, params) of a twin with the runbook deployed."""
    yield from helpers_deploy.deployed_fixture(tmp_path_factory)


def _wait(what: str, test, timeout: float = 60.0, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = test()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _by_scenario(diagnosis, name: str):
    found = [f for f in diagnosis.findings if f.scenario == name]
    assert found, f"no finding names {name}: {[f.key for f in diagnosis.findings]}"
    assert found[0].cause == SCENARIOS[name].cause
    return found[0]


def _workload_pods(session, params) -> list[dict]:
    return service.workload_pods(session, params)


@pytest.mark.timeout(120)
def test_a_healthy_deployment_has_no_problem(deployed) -> None:
    session, params = deployed
    diagnosis = diagnose(session, params)
    assert diagnosis.healthy and diagnosis.error_causes == [], diagnosis.table().to_string()
    view = diagnosis.view
    assert view.service_ready and view.ready_replicas == params.replicas and len(view.tpu_nodes) == 3
    assert sorted(view.envoyfilters) == sorted(view.expected_envoyfilters)
    assert sorted(view.networkpolicies) == sorted(view.expected_networkpolicies)
    assert all("istio-proxy" in p["containers"] for p in view.epp_pods)
    assert view.gateway["ok"] and view.cache["failed"] == 0 and view.cache["hits"] >= 1
    assert set(view.tables()) == {"vLLM pods", "TPU nodes", "routing objects", "not readable"}
    assert diagnosis.table()["symptom"].tolist() == ["nothing wrong found"]


@pytest.mark.timeout(180)
def test_missing_envoyfilter_and_networkpolicy_are_named_and_fixed(deployed) -> None:
    session, params = deployed
    helpers_deploy.delete_ext_proc_envoyfilter(session)
    session.networking.delete_namespaced_network_policy("allow-gateway-to-vllm", params.namespace)
    diagnosis = diagnose(session, params, fix=True)
    envoy = _by_scenario(diagnosis, "missing-envoyfilter")
    assert helpers_deploy.EXT_PROC_ENVOYFILTER in " ".join(envoy.evidence) and envoy.fixable
    netpol = _by_scenario(diagnosis, "netpol-blocks-gateway")
    assert netpol.severity == "error" and "allow-gateway-to-vllm" in " ".join(netpol.evidence)
    assert "connection failure" in " ".join(netpol.evidence), "the gateway's 503 is part of the evidence"
    assert {a.finding for a in diagnosis.fixes if a.ok} == {"envoyfilter-missing", "netpol-missing"}
    assert diagnosis.after is not None and diagnosis.after.healthy, diagnosis.after.table().to_string()
    assert diagnosis.final.view.cache["replicas"] == 1, "identical requests go to one replica again"


@pytest.mark.timeout(180)
def test_node_loss_is_named_and_the_pool_resized_back(deployed) -> None:
    session, params = deployed
    session.twin.set_scenarios(["node-loss"])
    try:
        _wait(
            "a TPU node to be lost", lambda: len(session.core.list_node(label_selector=TPU_LABEL).items) < 3
        )
        _wait("a replica to be short", lambda: service.replicas_ready(session, params) < params.replicas)
        diagnosis = diagnose(session, params, fix=True, behaviour=False)
        lost = _by_scenario(diagnosis, "node-loss")
        assert lost.fixable and any("lost" in e for e in lost.evidence)
        assert [a.action for a in diagnosis.fixes] == ["resize the node pool"] and diagnosis.fixes[0].ok
        assert diagnosis.after.healthy, diagnosis.after.table().to_string()
        assert (
            diagnosis.after.view.ready_replicas == params.replicas
            and len(diagnosis.after.view.tpu_nodes) == 3
        )
    finally:
        session.twin.set_scenarios([])


@pytest.mark.timeout(120)
def test_short_quota_is_named_and_not_touched(deployed) -> None:
    session, params = deployed
    admin = helpers_session.TwinAdmin(session.twin.endpoints["gke"])
    admin.set_tpu_quota(params.region, 8)
    try:
        diagnosis = diagnose(session, params, fix=True, behaviour=False)
        quota = _by_scenario(diagnosis, "quota-short")
        assert not quota.fixable and "8 chips" in " ".join(quota.evidence)
        assert diagnosis.fixes == [], "no safe fix exists for a short quota"
    finally:
        admin.set_tpu_quota(params.region, 64)


@pytest.mark.timeout(180)
def test_bad_hf_token_is_named_from_the_storage_initializer_log(deployed) -> None:
    session, params = deployed
    victim = _workload_pods(session, params)[0]["metadata"]["name"]
    session.twin.set_scenarios(["bad-hf-token"])
    try:
        session.core.delete_namespaced_pod(victim, params.namespace)
        _wait(
            "a replacement pod failing its init container", lambda: _init_failing(session, params), every=0.5
        )
        diagnosis = diagnose(session, params, behaviour=False)
        token = _by_scenario(diagnosis, "bad-hf-token")
        assert "401" in " ".join(token.evidence) and not token.fixable
        assert diagnosis.error_causes[0] == SCENARIOS["bad-hf-token"].cause
    finally:
        session.twin.set_scenarios([])
    for pod in _init_failing(session, params):  # a good token again: a new pod starts
        session.core.delete_namespaced_pod(pod, params.namespace)
    service.wait_ready(session, params, show=False)


def _init_failing(session, params) -> list[str]:
    return [
        p["metadata"]["name"]
        for p in _workload_pods(session, params)
        if pods.pod_stage(p) in ("Init:Error", "Init:CrashLoopBackOff")
    ]


@pytest.mark.timeout(120)
def test_compiling_and_slow_compile_from_the_vllm_log() -> None:
    params = _params()
    pod = {
        "name": "vllm-0",
        "stage": "Running",
        "ready": False,
        "containers": "0/1",
        "node": "n1",
        "restarts": 0,
        "waiting": "",
        "image": params.vllm_image,
    }
    compiling = ClusterView(cluster_exists=True, service={"metadata": {}}, pods=[pod], tpu_nodes=[{}, {}, {}])
    compiling.logs["vllm-0/main"] = [
        "INFO 12-06 18:00:01 [tpu_model_runner.py:1450] Compiling the model with different input shapes.",
        "INFO 12-06 18:00:21 [tpu_model_runner.py:1463]   -- num_tokens: 64",
    ]
    found = [f for f in findings_of(params, compiling) if f.scenario == "slow-compile"]
    assert found and found[0].key == "compiling" and "num_tokens: 64" in found[0].evidence[-1]

    done = dict(pod, stage="Running", ready=True, containers="1/1")
    compiled = ClusterView(cluster_exists=True, service={"metadata": {}}, pods=[done], tpu_nodes=[{}, {}, {}])
    compiled.logs["vllm-0/main"] = [
        "INFO 12-06 18:12:01 [tpu_model_runner.py:1470] Compilation finished in 712.40 [secs].",
        "INFO 12-06 18:12:11 [tpu_model_runner.py:1495] Compilation finished in 31.08 [secs].",
        "INFO 12-06 18:12:12 [tpu_model_runner.py:1510] Compiled the model with different input shapes.",
    ]
    slow = [f for f in findings_of(params, compiled) if f.scenario == "slow-compile"]
    assert slow and "712 [secs]" in slow[0].evidence[0] and slow[0].severity == "warning"
    compiled.logs["vllm-0/main"][0] = compiled.logs["vllm-0/main"][0].replace("712.40", "171.20")
    assert not [f for f in findings_of(params, compiled) if f.scenario == "slow-compile"]


def _params():
    from rhaii_nb.params import load_params

    return load_params(helpers_deploy.REPO / "params" / "ci.yaml", {})


@pytest.mark.timeout(120)
def test_transient_api_errors_are_reported_as_absorbed(deployed) -> None:
    session, params = deployed
    session.twin.set_scenarios(["api-flaky"])
    try:
        diagnoses = []
        for _ in range(6):  # ~8% of calls fail; a few looks are enough to meet some
            diagnoses.append(diagnose(session, params, behaviour=False))
            if diagnoses[-1].view.retries:
                break
        last = diagnoses[-1]
        assert last.view.retries, "no API call was retried in six looks"
        flaky = _by_scenario(last, "api-flaky")
        assert flaky.severity == "info" and last.healthy
    finally:
        session.twin.set_scenarios([])


@pytest.mark.timeout(120)
def test_no_cluster_says_which_notebook_to_run(tmp_path) -> None:
    from rhaii_nb.session import forget_sessions

    handle, session, params = helpers_session.start_twin(tmp_path / "twin")
    try:
        diagnosis = diagnose(session, params)
        assert [f.key for f in diagnosis.findings if f.severity == "error"] == ["no-cluster"]
        assert "01_cluster" in diagnosis.findings[0].fix
    finally:
        forget_sessions()
        handle.stop()
