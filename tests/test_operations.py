"""Operations on a deployed twin: quota check, scale with the node pool, rolling update with zero
failed requests through the gateway, scale to zero and back — and the cost line over them.

One private twin for the module (the runbook deployed through the helpers); the tests run in order.
"""

from __future__ import annotations

import json
import time

import helpers_deploy
import pytest

from rhaii_nb import cost, operations, service
from rhaii_nb.cost import parse_time

pytestmark = pytest.mark.xdist_group("operations-twin")
NEW_IMAGE = operations.GUIDE_UPDATE_IMAGE


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    """(session, params) of a twin with the runbook deployed."""
    yield from helpers_deploy.deployed_fixture(tmp_path_factory)


def _tpu_nodes(session) -> list:
    return session.core.list_node(label_selector=cost.TPU_LABEL).items


def _main_images(session, params) -> set[str]:
    return {
        c["image"]
        for p in service.workload_pods(session, params)
        for c in p["spec"]["containers"]
        if c["name"] == "main"
    }


@pytest.mark.timeout(120)
def test_quota_is_checked_before_scaling(deployed) -> None:
    session, params = deployed
    fits = operations.check_quota(session, params, 5)
    assert fits.ok and fits.chips_needed == 20 and fits.quota_chips == 64
    too_many = params.model_copy(update={"replicas": 17})
    with pytest.raises(
        operations.QuotaShort, match=r"68 chips; quota in europe-west4: 64 chips.*Fix: request"
    ):
        operations.scale(session, too_many, 17, show=False)
    assert len(_tpu_nodes(session)) == 3, "nothing may change when the quota is short"


@pytest.mark.timeout(300)
def test_rolling_update_loses_no_request_and_replaces_one_replica_at_a_time(deployed) -> None:
    session, params = deployed
    before = {p["metadata"]["name"] for p in service.workload_pods(session, params)}
    result = operations.rolling_update(session, params, NEW_IMAGE, show=False)
    summary = result.summary()
    assert summary["requests"] >= 5, summary
    assert result.failed == 0, summary["errors"]
    assert summary["surge_nodes"] == 1
    assert _main_images(session, params) == {NEW_IMAGE}
    after = {p["metadata"]["name"] for p in service.workload_pods(session, params)}
    assert len(after) == params.replicas and not after & before
    assert len(_tpu_nodes(session)) == params.num_nodes, "the surge node is given back"
    # One at a time: each old pod goes only after a new one is Ready.
    table = result.replacements()
    old = table[table["pod"].isin(before)].sort_values("gone_at")
    new_ready = table[~table["pod"].isin(before)]["ready_at"].dropna().sort_values().tolist()
    assert old["gone_at"].notna().all() and len(old) == params.replicas
    assert len(new_ready) >= params.replicas
    for k, gone in enumerate(old["gone_at"]):
        assert new_ready[k] <= gone, f"old pod {k + 1} went before its successor was Ready"
    # Requests kept being answered by the replicas of both generations.
    served = set(result.requests["replica"].dropna())
    assert served & before and served & after

    assert summary["ready_on_new_image"] == params.replicas
    # Run again, the procedure goes back to the params' image (a roll-back), so it always replaces pods.
    assert operations.deployed_image(session, params) == NEW_IMAGE
    assert operations.update_image(session, params) == params.vllm_image


@pytest.mark.timeout(300)
def test_scale_up_and_down_moves_replicas_and_nodes_together(deployed) -> None:
    session, params = deployed  # on NEW_IMAGE since the rolling update test
    up = operations.scale(session, params, 4, show=False)
    assert up.ready == 4 and len(_tpu_nodes(session)) == 4
    assert [s.step for s in up.steps][:2] == ["resize node pool to 4", "apply replicas: 4"]
    down = operations.scale(session, params, params.replicas, show=False)
    assert down.ready == params.replicas and len(_tpu_nodes(session)) == params.replicas
    assert [s.step for s in down.steps][:3] == [
        f"apply replicas: {params.replicas}",
        f"wait for {params.replicas} replicas",
        f"resize node pool to {params.replicas}",
    ]
    assert operations.current_replicas(session, params) == params.replicas
    assert _main_images(session, params) == {NEW_IMAGE}, "scaling keeps the image the service runs"


@pytest.mark.timeout(300)
def test_scale_to_zero_stops_the_cost_and_scale_back_measures_time_to_ready(deployed) -> None:
    session, params = deployed
    zero = operations.scale_to_zero(session, params, show=False)
    assert zero.nodes_before == 3 and zero.nodes_after == 0 and zero.chips_freed == 12
    assert zero.saved_per_hour == pytest.approx(3 * 4 * params.cost_per_chip_hour)
    assert set(zero.pods["stage"]) == {"Pending"}, "the replicas wait, nothing is deleted"

    # With no TPU node alive the cost line does not grow, whatever the time.
    stopped = time.time()
    first = cost.cost_line(session, params, until=stopped)
    later = cost.cost_line(session, params, until=stopped + 3600)
    assert first.node_hours > 0 and later.node_hours == pytest.approx(first.node_hours)
    assert all(n.deleted is not None for n in first.nodes)

    back = operations.scale_back(session, params, show=False)
    assert back.ready == params.replicas and len(_tpu_nodes(session)) == params.num_nodes
    assert back.time_to_ready_s > 0
    assert back.time_to_ready_gke_s == pytest.approx(
        back.time_to_ready_s / helpers_deploy.TIME_SCALE, rel=0.01
    )


@pytest.mark.timeout(120)
def test_cost_line_is_node_lifetimes_in_simulated_time(deployed) -> None:
    session, params = deployed
    until = time.time()
    line = cost.cost_line(session, params, until=until)
    alive = [parse_time(n.metadata.creation_timestamp.isoformat()) for n in _tpu_nodes(session)]
    alive_hours = sum(until - created for created in alive) / helpers_deploy.TIME_SCALE / 3600
    gone_hours = sum(n.deleted - n.created for n in line.nodes if n.deleted is not None)
    gone_hours = gone_hours / helpers_deploy.TIME_SCALE / 3600
    assert line.node_hours == pytest.approx(alive_hours + gone_hours, rel=1e-6)
    assert line.chip_hours == pytest.approx(4 * line.node_hours)
    assert line.estimate == pytest.approx(line.chip_hours * params.cost_per_chip_hour)
    assert "illustrative on the twin" in line.basis and "time_scale 0.002" in line.basis
    assert len(line.nodes) >= 3 + 1 + 1 + 3, "nodes of the surge, the scale-up and the scale back count too"
    # Only the window asked for: the last hour of simulated time is a tiny slice.
    recent = cost.cost_line(session, params, since=until - 1.0, until=until)
    assert recent.node_hours == pytest.approx(3 * 1.0 / helpers_deploy.TIME_SCALE / 3600, rel=1e-6)


@pytest.mark.timeout(120)
def test_record_cost_counts_each_window_once(deployed, tmp_path, monkeypatch) -> None:
    session, params = deployed
    run_dir = tmp_path / "run"
    (run_dir / "records").mkdir(parents=True)
    # A window in which the three TPU nodes were all alive (the scale back may have made them < 2 s ago).
    newest = max(parse_time(n.metadata.creation_timestamp.isoformat()) for n in _tpu_nodes(session))
    earlier_end = max(time.time() - 2.0, newest)
    earlier = {"kind": "cost", "name": "TPU node-hours", "time": earlier_end, "data": {"until": earlier_end}}
    (run_dir / "records" / "10_cache_behaviour.jsonl").write_text(json.dumps(earlier) + "\n")
    own = run_dir / "records" / "11_operations.jsonl"
    monkeypatch.setenv(cost.RUN_DIR_ENV, str(run_dir))
    monkeypatch.setenv("RHAII_NB_RECORD", str(own))
    line = cost.record_cost(session, params)
    assert line.since == earlier_end
    written = [json.loads(x) for x in own.read_text().splitlines()]
    assert written[-1]["kind"] == "cost" and written[-1]["data"]["until"] == line.until
    assert {"node_hours", "chip_hours", "estimate", "currency", "basis"} <= set(written[-1]["data"])
    # The window is about two seconds of three nodes, in simulated time.
    expected = 3 * (line.until - earlier_end) / helpers_deploy.TIME_SCALE / 3600
    assert written[-1]["data"]["node_hours"] == pytest.approx(expected, rel=1e-3)
    # The ledger keeps nodes known even when the cluster cannot be reached any more.
    ledger = json.loads((session.state_dir / cost.LEDGER_FILE).read_text())
    assert len(ledger) == len(line.nodes)
