"""The small helpers the notebooks call: env overrides, skipped criteria, figure records, phases.

The twin-backed parts (EPP sidecar, EnvoyFilters on/off, replica metrics through the pod proxy,
teardown) run end to end in tests/test_notebooks_nbval.py; here are the checks that need at most
a twin without a cluster.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import helpers_session
import pandas as pd
import pytest

from rhaii_nb import criteria, network_policies, plots, record
from rhaii_nb.params import ParamsError, load_params
from rhaii_nb.report import render_index
from rhaii_nb.runner import _all_criteria_skipped

twin_session = helpers_session.twin_session  # a private twin with no cluster (module scope)

REPO = Path(__file__).resolve().parents[1]
LOCAL = REPO / "params" / "local.yaml"


def test_env_overrides_sit_between_the_file_and_explicit_overrides(monkeypatch, tmp_path):
    monkeypatch.setenv("RHAII_NB_OVERRIDES", json.dumps({"replicas": 2, "twin_home": str(tmp_path)}))
    params = load_params(LOCAL)
    assert params.replicas == 2 and params.twin_home == tmp_path
    assert load_params(LOCAL, {"replicas": 1}).replicas == 1  # explicit overrides win


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]"])
def test_bad_env_overrides_name_the_variable_and_the_fix(monkeypatch, raw):
    monkeypatch.setenv("RHAII_NB_OVERRIDES", raw)
    with pytest.raises(ParamsError) as info:
        load_params(LOCAL)
    assert "RHAII_NB_OVERRIDES" in str(info.value) and "JSON object" in str(info.value)


def test_a_skipped_criterion_never_fails_and_is_recorded_as_skipped(monkeypatch, tmp_path):
    records = tmp_path / "records.jsonl"
    monkeypatch.setenv(record.RECORD_ENV, str(records))
    result = criteria.check(
        [
            criteria.Criterion("policies present", 0, "==", 4, skip="apply_network_policies is false"),
            criteria.Criterion("replicas", 3, "==", 3),
        ],
        show=False,
    )
    assert result.passed and result.failed == []
    assert list(result.table["result"]) == [criteria.SKIP, criteria.PASS]
    saved = record.read_records(records)
    assert saved[0]["data"]["skipped"] is True and saved[0]["data"]["passed"] is None
    assert not _all_criteria_skipped(saved)
    assert _all_criteria_skipped(saved[:1])
    unmet = [criteria.Criterion("replicas", 2, "==", 3), criteria.Criterion("n/a", 0, "==", 1, skip="n/a")]
    with pytest.raises(criteria.CriteriaFailed, match=r"1 of 2 success criteria unmet") as info:
        criteria.check(unmet, show=False, record=False)
    assert "replicas = 2" in str(info.value) and "n/a" not in str(info.value).split("unmet")[1]


def test_report_marks_skipped_criteria_and_names_each(tmp_path):
    summary = {
        "status": "passed",
        "params": {"target": "local"},
        "notebooks": [
            {
                "name": "07_network_policies",
                "status": "skipped",
                "duration_s": 1.0,
                "criteria": [
                    {
                        "name": "policies present",
                        "measured": 0,
                        "op": "==",
                        "target": 4,
                        "passed": None,
                        "skipped": True,
                    }
                ],
            }
        ],
    }
    page = render_index(summary, tmp_path)
    assert "⏭ policies present" in page and "❌" not in page


def test_record_figure_records_title_and_returns_the_figure(monkeypatch, tmp_path):
    records = tmp_path / "records.jsonl"
    monkeypatch.setenv(record.RECORD_ENV, str(records))
    df = pd.DataFrame({"i": [0, 1], "ttft_s": [0.5, 0.1], "hit": [False, True], "replica": ["a", "a"]})
    fig = plots.latency_per_request(df, metric="ttft_s", title="Cache test")
    assert record.figure(fig) is fig
    (entry,) = record.read_records(records)
    assert entry["kind"] == "figure" and entry["name"] == "Cache test"
    # the grey line through both requests plus one marker each for the hit and the miss
    assert entry["data"]["traces"] == 3 and entry["data"]["points"] == 4


def test_pod_timeline_draws_the_current_stage_until_now():
    start = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    stages = pd.DataFrame(
        [
            {
                "pod": "p",
                "stage": "Pending",
                "start": start,
                "end": start + dt.timedelta(seconds=2),
                "node": "",
            },
            {
                "pod": "p",
                "stage": "Running 1/1",
                "start": start + dt.timedelta(seconds=2),
                "end": pd.NaT,
                "node": "n",
            },
        ]
    )
    fig = plots.pod_timeline(stages)
    running = next(t for t in fig.data if t.name == "Running 1/1")
    assert running.x[0] >= 2900  # ms: from its start until the chart was drawn
    assert running.marker.color == plots.STAGE_COLOURS["Ready"]


def test_network_policies_step_skips_itself_when_off(capsys):
    params = load_params(LOCAL, {"apply_network_policies": False})
    assert network_policies.skip_reason(params).startswith("apply_network_policies is false")
    assert network_policies.apply(session=None, params=params) is None
    assert "Skipped: apply_network_policies is false" in capsys.readouterr().out
    on = load_params(LOCAL, {"apply_network_policies": True})
    assert network_policies.skip_reason(on) == ""
    assert len(network_policies.policy_names(on)) == 4


@pytest.mark.timeout(120)
def test_require_names_the_notebook_to_run_first(twin_session):
    from rhaii_nb import phases

    session, _ = twin_session
    with pytest.raises(phases.PhaseNotDone, match=r"does not exist: run 01_cluster first"):
        phases.require(session, "envoyfilters")
    table = phases.status(session)
    assert list(table["notebook"]) == [p.notebook for p in phases.PHASES.values()]
    assert set(table["done"]) == {"❌"}
