"""Training mode: for every scenario, the runbook run on the twin with it (``run --scenario``) fails or
degrades at the phase the scenario table predicts, ``diagnose()`` names the table's cause, and for the
fixable ones ``diagnose(fix=True)`` (the troubleshooting notebook with ``fix = True``) repairs the
cluster so that ``run --resume`` passes from the failed notebook.

To stay affordable the scenarios share one twin with the runbook deployed through the helpers, switch
scenarios on at runtime, and run only the notebooks a scenario needs (``--only``). Each test stages
what a fresh run would meet (e.g. the object a scenario's step never applied is absent) and restores
the twin afterwards.
"""

from __future__ import annotations

import time
from pathlib import Path

import helpers_deploy
import pytest

from rhaii_nb import pods, routing, service
from rhaii_nb.diagnose import diagnose
from rhaii_nb.runner import RunOptions, run_runbook
from rhaii_nb.scenarios import SCENARIOS

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("training-twin")]
TPU_LABEL = "cloud.google.com/gke-tpu-accelerator"
# scenario -> the test of this module that trains it
COVERED = {
    "quota-short": "test_quota_short",
    "bad-hf-token": "test_bad_hf_token",
    "slow-compile": "test_slow_compile",
    "node-loss": "test_node_loss",
    "api-flaky": "test_api_flaky",
    "missing-envoyfilter": "test_missing_envoyfilter",
    "netpol-blocks-gateway": "test_netpol_blocks_gateway",
}


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    """(session, params) of a twin with the runbook deployed."""
    yield from helpers_deploy.deployed_fixture(tmp_path_factory)


def _run(session, output: Path, only: list[str], scenario: str, **overrides) -> object:
    """``rhaii-nb run --params params/ci.yaml --only … --scenario NAME`` on the module's twin."""
    session.twin.set_scenarios([scenario])
    options = RunOptions(
        params_file=helpers_deploy.REPO / "params" / "ci.yaml",
        overrides={"twin_home": str(session.twin.home), "time_scale": helpers_deploy.TIME_SCALE, **overrides},
        only=only,
        output=output,
        scenarios=[scenario],
        keep_twin=True,
        progress=False,
    )
    return run_runbook(options, echo=lambda _line: None)


def _resume(run_dir: Path) -> object:
    return run_runbook(RunOptions(resume=run_dir, keep_twin=True, progress=False), echo=lambda _line: None)


def _assert_fails_where_predicted(summary, scenario: str) -> None:
    assert not summary.ok, f"{scenario}: the run passed"
    assert summary.failed.name == SCENARIOS[scenario].fails_at, summary.failure_message()


def _named(diagnosis, scenario: str):
    found = [f for f in diagnosis.findings if f.scenario == scenario]
    assert found, f"diagnose() did not name {scenario}: {diagnosis.table().to_string()}"
    assert found[0].cause == SCENARIOS[scenario].cause
    return found[0]


def _wait(what: str, test, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not test():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


def _restore_pods(session, params) -> None:
    """Scenarios off; pods a scenario broke are replaced; the service Ready again."""
    session.twin.set_scenarios([])
    for pod in service.workload_pods(session, params):
        if not pods.is_ready(pod):
            session.core.delete_namespaced_pod(pod["metadata"]["name"], params.namespace)
    service.wait_ready(session, params, show=False)


def test_every_scenario_has_a_training_test() -> None:
    assert set(COVERED) == set(SCENARIOS)
    assert all(name in globals() for name in COVERED.values())


@pytest.mark.timeout(300)
def test_node_loss(deployed, tmp_path) -> None:
    session, _ = deployed
    session.twin.set_scenarios(["node-loss"])
    _wait("a TPU node to be lost", lambda: len(session.core.list_node(label_selector=TPU_LABEL).items) < 3)
    summary = _run(session, tmp_path / "run", ["08"], "node-loss")
    _assert_fails_where_predicted(summary, "node-loss")
    assert "RUNNING_WITH_ERROR" in summary.failure_message() or "replicas" in summary.failure_message()

    # The troubleshooting notebook with fix = True: names the cause, resizes the pool, checks again.
    import papermill

    out = tmp_path / "12.ipynb"
    papermill.execute_notebook(
        str(helpers_deploy.REPO / "notebooks" / "12_troubleshooting.ipynb"),
        str(out),
        parameters={
            "params_file": str(helpers_deploy.REPO / "params" / "ci.yaml"),
            "overrides": {
                "twin_home": str(session.twin.home),
                "time_scale": helpers_deploy.TIME_SCALE,
                "scenario": ["node-loss"],
            },
            "fix": True,
        },
        kernel_name="rhaii-nb",
        cwd=str(helpers_deploy.REPO / "notebooks"),
        progress_bar=False,
    )
    text = out.read_text()
    assert SCENARIOS["node-loss"].cause in text and "resize the node pool" in text

    resumed = _resume(tmp_path / "run")
    assert resumed.ok, resumed.failure_message()
    assert [nb.status for nb in resumed.notebooks] == ["passed"]
    session.twin.set_scenarios([])


@pytest.mark.timeout(300)
def test_netpol_blocks_gateway(deployed, tmp_path) -> None:
    session, params = deployed
    # A fresh run's step 8 never applies this policy under the scenario.
    session.networking.delete_namespaced_network_policy("allow-gateway-to-vllm", params.namespace)
    summary = _run(session, tmp_path / "run", ["07", "08"], "netpol-blocks-gateway")
    _assert_fails_where_predicted(summary, "netpol-blocks-gateway")
    diagnosis = diagnose(session, params, fix=True)
    finding = _named(diagnosis, "netpol-blocks-gateway")
    assert "connection failure" in " ".join(finding.evidence)
    assert diagnosis.after.healthy, diagnosis.after.table().to_string()
    resumed = _resume(tmp_path / "run")
    assert resumed.ok, resumed.failure_message()
    session.twin.set_scenarios([])


@pytest.mark.timeout(400)
def test_missing_envoyfilter(deployed, tmp_path) -> None:
    session, params = deployed
    helpers_deploy.delete_ext_proc_envoyfilter(session)
    summary = _run(session, tmp_path / "run", ["06", "10"], "missing-envoyfilter")
    assert summary.notebooks[0].status == "passed", "the EnvoyFilter step believes it applied everything"
    _assert_fails_where_predicted(summary, "missing-envoyfilter")
    diagnosis = diagnose(session, params, fix=True)
    _named(diagnosis, "missing-envoyfilter")
    assert diagnosis.after.healthy, diagnosis.after.table().to_string()
    resumed = _resume(tmp_path / "run")
    assert resumed.ok, resumed.failure_message()
    session.twin.set_scenarios([])
    routing.apply_envoyfilters(session, params, show=False)  # 10 re-applies only what the runbook applies


@pytest.mark.timeout(300)
def test_slow_compile(deployed, tmp_path) -> None:
    session, params = deployed
    session.twin.set_scenarios(["slow-compile"])
    for pod in service.workload_pods(session, params):  # the replicas start again, compiling slowly
        session.core.delete_namespaced_pod(pod["metadata"]["name"], params.namespace)
    try:
        summary = _run(session, tmp_path / "run", ["04"], "slow-compile")
        # The twin's waits never drop below 30 s, so the run degrades (slower) rather than fails.
        assert summary.ok or summary.failed.name == SCENARIOS["slow-compile"].fails_at
        finding = _named(diagnose(session, params, behaviour=False), "slow-compile")
        assert "Compilation finished in" in " ".join(finding.evidence) or "Compiling" in finding.symptom
    finally:
        _restore_pods(session, params)


@pytest.mark.timeout(300)
def test_bad_hf_token(deployed, tmp_path) -> None:
    session, params = deployed
    session.twin.set_scenarios(["bad-hf-token"])
    victim = service.workload_pods(session, params)[0]["metadata"]["name"]
    session.core.delete_namespaced_pod(victim, params.namespace)
    try:
        summary = _run(session, tmp_path / "run", ["04"], "bad-hf-token", ready_timeout_s=10)
        _assert_fails_where_predicted(summary, "bad-hf-token")
        diagnosis = diagnose(session, params, fix=True, behaviour=False)
        assert "401" in " ".join(_named(diagnosis, "bad-hf-token").evidence)
        assert diagnosis.fixes == [], "a bad token is not something diagnose may fix"
    finally:
        _restore_pods(session, params)


@pytest.mark.timeout(300)
def test_quota_short(deployed, tmp_path) -> None:
    session, params = deployed
    try:
        summary = _run(session, tmp_path / "run", ["00"], "quota-short")
        _assert_fails_where_predicted(summary, "quota-short")
        assert "TPU v6e quota" in summary.failure_message()
        quota = _named(diagnose(session, params, fix=True, behaviour=False), "quota-short")
        assert not quota.fixable
    finally:
        session.twin.set_scenarios([])


@pytest.mark.timeout(300)
def test_api_flaky(deployed, tmp_path) -> None:
    session, _ = deployed
    try:
        summary = _run(session, tmp_path / "run", ["08"], "api-flaky")
        assert summary.ok, summary.failure_message()  # retries absorb the errors
        assert SCENARIOS["api-flaky"].fails_at == ""
    finally:
        session.twin.set_scenarios([])
