"""Pod stages as kubectl prints them, and the vLLM start-up milestones in the logs."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from rhaii_nb.logs import MILESTONES, find_milestones
from rhaii_nb.pods import all_ready, human_age, pod_stage, pods_table, ready_containers
from rhaii_nb.twin.vllm_logs import storage_initializer_script, vllm_startup_script


def _pod(
    phase: str = "Pending",
    init: list[dict[str, Any]] | None = None,
    main: list[dict[str, Any]] | None = None,
    *,
    init_specs: list[dict[str, Any]] | None = None,
    conditions: list[dict[str, Any]] | None = None,
    deleting: bool = False,
    reason: str | None = None,
) -> dict[str, Any]:
    init = init or []
    main = main if main is not None else []
    pod: dict[str, Any] = {
        "metadata": {"name": "p", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {
            "initContainers": init_specs
            if init_specs is not None
            else [{"name": f"i{n}"} for n in range(len(init))],
            "containers": [{"name": "main"}],
        },
        "status": {
            "phase": phase,
            "initContainerStatuses": init,
            "containerStatuses": main,
            "conditions": conditions or [],
        },
    }
    if deleting:
        pod["metadata"]["deletionTimestamp"] = "2026-01-01T00:05:00Z"
    if reason:
        pod["status"]["reason"] = reason
    return pod


def _status(
    name: str, state: dict[str, Any], ready: bool = False, restarts: int = 0, **extra: Any
) -> dict[str, Any]:
    return {"name": name, "state": state, "ready": ready, "restartCount": restarts, **extra}


WAITING_INIT = _status("storage-initializer", {"waiting": {"reason": "PodInitializing"}})
RUNNING_INIT = _status("storage-initializer", {"running": {"startedAt": "x"}})
DONE_INIT = _status("storage-initializer", {"terminated": {"exitCode": 0, "reason": "Completed"}})
MAIN_WAITING = _status("main", {"waiting": {"reason": "PodInitializing"}})


@pytest.mark.parametrize(
    ("pod", "stage", "ready"),
    [
        (_pod("Pending"), "Pending", "0/1"),
        (_pod("Pending", [WAITING_INIT], [MAIN_WAITING]), "Init:0/1", "0/1"),
        (_pod("Pending", [RUNNING_INIT], [MAIN_WAITING]), "Init:0/1", "0/1"),
        (_pod("Pending", [DONE_INIT, _status("second", {"running": {}})], [MAIN_WAITING]), "Init:1/2", "0/1"),
        (
            _pod(
                "Pending",
                [_status("storage-initializer", {"waiting": {"reason": "CrashLoopBackOff"}}, restarts=3)],
                [MAIN_WAITING],
            ),
            "Init:CrashLoopBackOff",
            "0/1",
        ),
        (
            _pod(
                "Pending",
                [_status("storage-initializer", {"terminated": {"exitCode": 1, "reason": "Error"}})],
                [MAIN_WAITING],
            ),
            "Init:Error",
            "0/1",
        ),
        (
            _pod(
                "Pending", [_status("storage-initializer", {"terminated": {"exitCode": 2}})], [MAIN_WAITING]
            ),
            "Init:ExitCode:2",
            "0/1",
        ),
        (
            _pod(
                "Pending",
                [_status("storage-initializer", {"terminated": {"exitCode": 137, "signal": 9}})],
                [MAIN_WAITING],
            ),
            "Init:Signal:9",
            "0/1",
        ),
        (_pod("Pending", [DONE_INIT], [MAIN_WAITING]), "PodInitializing", "0/1"),
        (
            _pod("Pending", [], [_status("main", {"waiting": {"reason": "ContainerCreating"}})]),
            "ContainerCreating",
            "0/1",
        ),
        (_pod("Running", [DONE_INIT], [_status("main", {"running": {}})]), "Running", "0/1"),
        (_pod("Running", [DONE_INIT], [_status("main", {"running": {}}, ready=True)]), "Running", "1/1"),
        (
            _pod(
                "Running",
                [DONE_INIT],
                [_status("main", {"waiting": {"reason": "CrashLoopBackOff"}}, restarts=4)],
            ),
            "CrashLoopBackOff",
            "0/1",
        ),
        (
            _pod("Succeeded", [], [_status("main", {"terminated": {"exitCode": 0, "reason": "Completed"}})]),
            "Completed",
            "0/1",
        ),
        (
            _pod("Failed", [], [_status("main", {"terminated": {"exitCode": 1, "reason": "Error"}})]),
            "Error",
            "0/1",
        ),
        (_pod("Running", [], [_status("main", {"terminated": {"exitCode": 3}})]), "ExitCode:3", "0/1"),
        (
            _pod("Running", [DONE_INIT], [_status("main", {"running": {}}, ready=True)], deleting=True),
            "Terminating",
            "0/1",
        ),
        (
            _pod(
                "Running",
                [],
                [_status("main", {"running": {}}, ready=True)],
                deleting=True,
                reason="NodeLost",
            ),
            "Unknown",
            "0/1",
        ),
        (
            _pod(
                "Failed",
                [],
                [_status("main", {"terminated": {"exitCode": 1, "reason": "Error"}})],
                deleting=True,
            ),
            "Error",
            "0/1",
        ),
        (_pod("Failed", reason="Evicted"), "Evicted", "0/1"),
        (
            _pod(
                "Pending",
                conditions=[{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}],
            ),
            "SchedulingGated",
            "0/1",
        ),
    ],
)
def test_pod_stage_matches_kubectl(pod: dict[str, Any], stage: str, ready: str) -> None:
    # A pod being deleted still counts its ready containers in kubectl; ours reports them too.
    got_ready, total = ready_containers(pod)
    assert pod_stage(pod) == stage
    if "deletionTimestamp" not in pod["metadata"]:
        assert f"{got_ready}/{total}" == ready


def test_completed_container_next_to_a_running_one_reads_running_or_notready() -> None:
    main = [
        _status("sidecar", {"running": {}}, ready=True),
        _status("job", {"terminated": {"exitCode": 0, "reason": "Completed"}}),
    ]
    pod = _pod("Running", [], main)
    pod["spec"]["containers"] = [{"name": "sidecar"}, {"name": "job"}]
    assert pod_stage(pod) == "NotReady"
    pod["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
    assert pod_stage(pod) == "Running"


def test_sidecar_init_container_counts_as_a_container_not_as_initializing() -> None:
    specs = [{"name": "istio-proxy", "restartPolicy": "Always"}]
    sidecar = _status("istio-proxy", {"running": {}}, ready=True, started=True)
    pod = _pod("Running", [sidecar], [_status("main", {"running": {}}, ready=True)], init_specs=specs)
    assert pod_stage(pod) == "Running"
    assert ready_containers(pod) == (2, 2)


def test_table_and_ready_condition() -> None:
    ready = _pod("Running", [DONE_INIT], [_status("main", {"running": {}}, ready=True)])
    pending = _pod("Pending")
    pending["metadata"]["name"] = "q"
    table = pods_table([pending, ready])
    assert list(table["pod"]) == ["p", "q"] and list(table["stage"]) == ["Running", "Pending"]
    condition = all_ready(2)
    assert not condition.test([ready, pending])
    assert condition.missing([ready, pending]) == "1/2 pods ready; not ready: q Pending"
    assert condition.test([ready, {**ready, "metadata": {"name": "r"}}])


def test_human_age_like_kubectl() -> None:
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    ages = [human_age(start, start + dt.timedelta(seconds=s)) for s in (45, 192, 900, 7500, 4 * 86400)]
    assert ages == ["45s", "3m12s", "15m", "125m", "4d"]


def test_milestones_found_in_the_twins_start_up_logs_in_the_guides_order() -> None:
    init = storage_initializer_script("hf://Qwen/Qwen2.5-3B-Instruct")
    main = vllm_startup_script(
        "Qwen/Qwen2.5-3B-Instruct", ["--enable-prefix-caching", "--max-model-len", "2048"]
    )
    lines = [step.render() for step in init.steps + main.steps]
    found = find_milestones(lines)
    assert [m.key for m, _ in found] == [m.key for m in MILESTONES]
    values = {m.key: value for m, value in found}
    assert values["model_copied"] == "hf://Qwen/Qwen2.5-3B-Instruct"
    assert 10 < float(values["weights_loaded"]) < 15
    assert values["kv_cache"] == "3,145,728"
    lines_order = [next(i for i, line in enumerate(lines) if m.pattern.search(line)) for m, _ in found]
    assert lines_order == sorted(lines_order)


def test_no_milestone_from_a_failed_download() -> None:
    lines = [s.render() for s in storage_initializer_script("hf://x/y", unauthorized=True).steps]
    assert find_milestones(lines) == []


def test_stages_before_the_tracker_first_saw_a_pod_come_from_its_timestamps() -> None:
    """A watch started after the apply still charts Pending: from creation to the binding."""
    import datetime as dt

    from rhaii_nb.pods import _stages_before_first_sight

    pod = {
        "metadata": {"name": "vllm-0", "creationTimestamp": "2026-12-06T10:00:00Z"},
        "spec": {"initContainers": [{"name": "storage-initializer"}], "nodeName": "tpu-1"},
        "status": {
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-12-06T10:00:02Z"}
            ]
        },
    }
    now = dt.datetime(2026, 12, 6, 10, 0, 9, tzinfo=dt.UTC)
    seen_running = _stages_before_first_sight(pod, "Running 0/1", "tpu-1", now)
    assert [(t.stage, t.at.second) for t in seen_running] == [("Pending", 0), ("Init:0/1", 2)]
    seen_at_init = _stages_before_first_sight(pod, "Init:0/1", "tpu-1", now)
    assert [(t.stage, t.at.second) for t in seen_at_init] == [("Pending", 0), ("Init:0/1", 2)]
    assert _stages_before_first_sight(pod, "Pending", "", now) == []
    unscheduled = {**pod, "status": {}}
    assert [t.stage for t in _stages_before_first_sight(unscheduled, "Terminating", "", now)] == ["Pending"]
