"""Success criteria: ✅/❌ table, records for the run report, failure naming the measured values."""

from __future__ import annotations

import io
import math
import textwrap

import pandas as pd
import pytest

from rhaii_nb import criteria, display, redact
from rhaii_nb.criteria import CriteriaFailed, Criterion, check
from rhaii_nb.record import RECORD_ENV, read_records


def test_all_met_passes_shows_and_records(tmp_path, monkeypatch, capsys):
    records = tmp_path / "records.jsonl"
    monkeypatch.setenv(RECORD_ENV, str(records))
    result = check(
        [
            Criterion("replicas ready", measured=3, op=">=", target=3),
            Criterion("cache-hit speed-up", measured=41.25, op=">=", target=20, unit="%"),
            Criterion("errors", measured=0, op="==", target=0),
        ],
        title="08 verify",
    )
    assert result.passed and result.failed == []
    out = capsys.readouterr().out
    assert "08 verify" in out and out.count("✅") == 3 and "❌" not in out
    assert "41.25%" in out and "at least 20%" in out
    saved = read_records(records)
    assert [r["name"] for r in saved] == ["replicas ready", "cache-hit speed-up", "errors"]
    assert saved[1]["kind"] == "criterion"
    assert saved[1]["data"] == {
        "title": "08 verify",
        "measured": 41.25,
        "op": ">=",
        "target": 20,
        "unit": "%",
        "passed": True,
        "skipped": False,
        "note": "",
    }


def test_skipped_criterion_is_recorded_as_skipped_not_failed(tmp_path, monkeypatch):
    records = tmp_path / "records.jsonl"
    monkeypatch.setenv(RECORD_ENV, str(records))
    result = check(
        [
            Criterion("replicas ready", measured=3, op=">=", target=3),
            Criterion("policies enforced", measured=None, op="==", target=True, skip="network policies off"),
        ],
        title="10 policies",
        show=False,
    )
    assert result.passed and result.failed == []
    saved = {r["name"]: r["data"] for r in read_records(records)}
    # The runner and the report read these keys of every criterion record.
    for data in saved.values():
        assert {"measured", "op", "target", "passed", "skipped"} <= set(data)
    assert saved["replicas ready"]["passed"] is True and saved["replicas ready"]["skipped"] is False
    skipped = saved["policies enforced"]
    assert skipped["passed"] is None and skipped["skipped"] is True
    assert skipped["note"] == "skipped: network policies off"


def test_unmet_criteria_raise_naming_measured_values(monkeypatch, tmp_path, capsys):
    records = tmp_path / "records.jsonl"
    monkeypatch.setenv(RECORD_ENV, str(records))
    with pytest.raises(CriteriaFailed) as info:
        check(
            [
                Criterion("replicas ready", measured=2, op=">=", target=3, note="one pod Pending"),
                Criterion("p50 latency", measured=0.35, op="<", target=0.2, unit=" s"),
                Criterion("health", measured=True, op="==", target=True),
            ]
        )
    message = str(info.value)
    assert message.startswith("2 of 3 success criteria unmet")
    assert "replicas ready = 2 (needs at least 3) — one pod Pending" in message
    assert "p50 latency = 0.35 s (needs less than 0.2 s)" in message
    assert "health" not in message
    assert [c.name for c in info.value.failed] == ["replicas ready", "p50 latency"]
    assert list(info.value.table["result"]) == ["❌", "❌", "✅"]
    out = capsys.readouterr().out
    assert out.count("❌") == 2 and out.count("✅") == 1
    assert [r["data"]["passed"] for r in read_records(records)] == [False, False, True]


@pytest.mark.parametrize(
    ("measured", "op", "target", "passed"),
    [
        (3, ">=", 3, True),
        (3, ">", 3, False),
        (1.5, "<=", 2, True),
        (2, "<", 2, False),
        ("Ready", "==", "Ready", True),
        ("x", "!=", "x", False),
        ("Running", "in", ["Running", "Completed"], True),
        (None, ">=", 0, False),
        (math.nan, ">=", 0, False),
        ("text", ">", 3, False),
    ],
)
def test_comparators(measured, op, target, passed):
    assert Criterion("c", measured, op, target).passed is passed


def test_missing_measurement_is_reported_as_not_measured():
    with pytest.raises(CriteriaFailed, match="gateway IP = not measured"):
        check([Criterion("gateway IP", None, "!=", "")], show=False, record=False)


def test_bad_comparator_and_empty_list_are_errors():
    with pytest.raises(ValueError, match="unknown comparator"):
        Criterion("c", 1, "=>", 1)
    with pytest.raises(ValueError, match="at least one"):
        check([])


def test_no_raise_mode_and_in_memory_records(monkeypatch):
    monkeypatch.delenv(RECORD_ENV, raising=False)
    result = check([Criterion("memory only", 1, "==", 2)], show=False, raise_on_failure=False)
    assert not result.passed
    from rhaii_nb.record import recorded

    assert recorded("criterion")[-1]["name"] == "memory only"
    assert "❌" in result._repr_html_()


def test_styled_table_colours_rows():
    frame = criteria.table([Criterion("a", 1, "==", 1), Criterion("b", 1, "==", 2)])
    html = criteria.styled(frame).to_html()
    assert "#e6f4ea" in html and "#fce8e6" in html


def test_secrets_never_reach_the_output(capsys):
    redact.register("hf_SENTINELcriteria0000")
    try:
        check(
            [Criterion("token check", "hf_SENTINELcriteria0000", "==", "hf_SENTINELcriteria0000")],
            record=False,
        )
    finally:
        redact.clear()
    assert "hf_SENTINELcriteria0000" not in capsys.readouterr().out


# ----- display helpers ------------------------------------------------------------------------------


def test_live_line_headless_prints_changes_and_final_state():
    stream = io.StringIO()
    with display.live_line(min_interval_s=0, stream=stream) as live:
        live.update("pods 0/3 ready")
        live.update("pods 0/3 ready")  # unchanged: not printed again
        live.update(pd.DataFrame({"pod": ["a"], "stage": ["Running"]}))
    lines = stream.getvalue().splitlines()
    assert lines[0] == "pods 0/3 ready"
    assert lines.count("pods 0/3 ready") == 1
    assert "Running" in lines[-1]


def test_live_line_throttles_but_always_prints_the_last_state():
    stream = io.StringIO()
    live = display.Live(min_interval_s=3600, stream=stream)
    for i in range(5):
        live.update(f"step {i}")
    live.close()
    assert stream.getvalue().splitlines() == ["step 0", "step 4"]


def test_show_table_headless_is_plain_text():
    stream = io.StringIO()
    display.show_table(pd.DataFrame({"a": [1], "b": ["x"]}), "Title", stream=stream)
    assert stream.getvalue().splitlines()[0] == "Title"
    assert "x" in stream.getvalue() and "<table" not in stream.getvalue()
    assert display.elapsed(65) == "1m 05s" and display.elapsed(7) == "7s"


@pytest.mark.timeout(120)
def test_in_a_kernel_outputs_update_in_place(tmp_path):
    """Run a real kernel (nbclient): one display output, updated; tables as HTML."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    source = textwrap.dedent(
        """
        from rhaii_nb import display, criteria
        live = display.live_line(min_interval_s=0)
        for i in range(3):
            live.update(f"step {i}")
        live.close()
        criteria.check([criteria.Criterion("ok", 1, "==", 1)], record=False)
        """
    )
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    client = nbclient.NotebookClient(
        nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    try:
        client.execute()
    except Exception as exc:  # no registered kernel on this machine
        if "No such kernel" in str(exc):
            pytest.skip(f"no python3 Jupyter kernel: {exc}")
        raise
    outputs = nb.cells[0].outputs
    displays = [o for o in outputs if o.output_type in ("display_data", "update_display_data")]
    texts = [o["data"].get("text/plain", "") for o in displays if "text/plain" in o.get("data", {})]
    # nbclient folds the updates into the one output: the saved notebook keeps only the final state.
    assert [t for t in texts if t.startswith("step")] == ["step 2"]
    html = [o["data"]["text/html"] for o in displays if "text/html" in o.get("data", {})]
    assert any("✅" in h and "Success criteria" in h for h in html)
