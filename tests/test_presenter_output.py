"""Presenter-friendly output: quiet by default (long waits show one in-place progress line), the detail
back with params ``verbose``."""

from __future__ import annotations

import io
import textwrap
from collections.abc import Iterator

import pytest

from rhaii_nb import display, redact


@pytest.fixture(autouse=True)
def _quiet_afterwards() -> Iterator[None]:
    yield
    display.set_verbose(False)


def test_headless_quiet_mode_throttles_and_hides_details():
    stream = io.StringIO()
    with display.live_line(min_interval_s=3600, stream=stream) as live:
        for i in range(4):
            live.update(f"nodes {i}/3")
    display.detail("GET /api/v1/pods 200", stream=stream)
    assert stream.getvalue().splitlines() == ["nodes 0/3", "nodes 3/3"]


def test_headless_verbose_mode_prints_every_change_and_details():
    display.set_verbose(True)
    redact.register("hf_SENTINELverbose0000")
    stream = io.StringIO()
    with display.live_line(min_interval_s=3600, stream=stream) as live:
        for i in range(4):
            live.update(f"nodes {i}/3")
        live.update("nodes 3/3")  # unchanged: still once
    display.detail("token hf_SENTINELverbose0000 sent", stream=stream)
    lines = stream.getvalue().splitlines()
    assert lines[:4] == [f"nodes {i}/3" for i in range(4)]
    assert len(lines) == 5 and lines[4].endswith("sent")
    assert "hf_SENTINELverbose0000" not in lines[4], "detail() must redact like every display helper"


@pytest.mark.timeout(120)
def test_in_a_kernel_verbose_keeps_the_live_output_and_adds_the_history(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    source = textwrap.dedent(
        """
        from rhaii_nb import display, redact
        display.set_verbose({verbose})
        with display.live_line(min_interval_s=0) as live:
            for i in range(3):
                live.update(f"step {{i}}")
        display.detail("a detail")
        """
    )
    outputs = {}
    for verbose in (False, True):
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source.format(verbose=verbose))])
        client = nbclient.NotebookClient(
            nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
        )
        try:
            client.execute()
        except Exception as exc:
            if "No such kernel" in str(exc):
                pytest.skip(f"no python3 Jupyter kernel: {exc}")
            raise
        outputs[verbose] = nb.cells[0].outputs
    for cell_outputs in outputs.values():
        shown = [o["data"]["text/plain"] for o in cell_outputs if o.output_type == "display_data"]
        assert shown == ["step 2"], "the in-place output keeps only the final state"
    quiet_stream = "".join(o.get("text", "") for o in outputs[False] if o.output_type == "stream")
    verbose_stream = "".join(o.get("text", "") for o in outputs[True] if o.output_type == "stream")
    assert quiet_stream == ""
    history = [line.split(" ", 1)[1] for line in verbose_stream.splitlines()]
    assert history == ["step 0", "step 1", "step 2", "a detail"]


@pytest.mark.timeout(120)
def test_connect_follows_the_params_verbose_flag(twin):
    from rhaii_nb.params import load_params
    from rhaii_nb.session import connect

    overrides = {"twin_home": str(twin.home), "time_scale": twin.endpoints["time_scale"], "scenario": []}
    connect(load_params(None, {**overrides, "verbose": True}))
    assert display.is_verbose()
    connect(load_params(None, {**overrides, "verbose": False}))
    assert not display.is_verbose()


@pytest.mark.timeout(180)
def test_a_long_load_in_a_notebook_shows_one_progress_line_with_the_final_count(tmp_path):
    """The throughput test against real replica servers, in a kernel: one in-place output."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    source = textwrap.dedent(
        """
        from rhaii_nb import measure
        from rhaii_nb.twin.inference.background import BackgroundReplicas
        with BackgroundReplicas("cpu-test", count=1) as replicas:
            # About 0.1 s a request (200 decode steps), one at a time: well over the 2 s quiet time.
            result = measure.throughput_test(
                replicas.urls[0], requests=40, concurrency=1, max_tokens=200, duration_s=None
            )
        print("done", result.succeeded, round(result.wall_s, 1))
        """
    )
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    client = nbclient.NotebookClient(
        nb, timeout=150, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    try:
        client.execute()
    except Exception as exc:
        if "No such kernel" in str(exc):
            pytest.skip(f"no python3 Jupyter kernel: {exc}")
        raise
    outputs = nb.cells[0].outputs
    shown = [o["data"]["text/plain"] for o in outputs if o.output_type == "display_data"]
    printed = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    succeeded, wall = printed.split()[1:3]
    assert float(wall) >= 2.0, "the load ran shorter than the quiet time; make it longer"
    assert len(shown) == 1, f"one progress output expected, got {shown}"
    assert shown[0].startswith(f"requests {succeeded}/40 · errors 0 · "), shown[0]
