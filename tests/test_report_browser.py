"""The run report's plotly charts render offline in headless Chromium.

A small notebook that draws one of the runbook's charts is executed by papermill exactly as the
runner executes notebooks (kernel ``rhaii-nb``, the runner's ``PLOTLY_RENDERER``), the report is
built from it, and Chromium loads the page from ``file://``: the DOM must hold a plotly plot with its
SVG, and no script may come from the internet.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import nbformat
import pytest
from chromium import chromium, rendered_dom, screenshot
from nbformat.v4 import new_code_cell, new_notebook

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(chromium() is None, reason="chromium is not installed (apt-get install chromium)"),
]

CHART_CELL = """
import pandas as pd
from rhaii_nb import plots, record
df = pd.DataFrame({"i": range(6), "ttft_s": [0.8, 0.1, 0.09, 0.1, 0.08, 0.1],
                   "hit": [False, True, True, True, True, True], "replica": ["pod-a"] * 6})
record.figure(plots.latency_per_request(df, metric="ttft_s", title="Cache test"))
"""


@pytest.fixture(scope="module")
def report_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory with one executed chart notebook and its report; the notebook's HTML page."""
    import papermill

    from rhaii_nb.report import build_report
    from rhaii_nb.runner import KERNEL_NAME, PLOTLY_RENDERER, _ensure_kernel

    run_dir = tmp_path_factory.mktemp("report-run")
    (run_dir / "notebooks").mkdir()
    source = run_dir / "source.ipynb"
    nb = new_notebook(cells=[new_code_cell(CHART_CELL)])
    nb.metadata["kernelspec"] = {
        "name": KERNEL_NAME,
        "display_name": "Python (rhaii-nb)",
        "language": "python",
    }
    nbformat.write(nb, source)
    _ensure_kernel()
    previous = os.environ.get("PLOTLY_RENDERER")
    os.environ["PLOTLY_RENDERER"] = PLOTLY_RENDERER
    try:
        papermill.execute_notebook(
            str(source),
            str(run_dir / "notebooks" / "09_chart.ipynb"),
            kernel_name=KERNEL_NAME,
            progress_bar=False,
        )
    finally:
        if previous is None:
            os.environ.pop("PLOTLY_RENDERER", None)
        else:
            os.environ["PLOTLY_RENDERER"] = previous
    summary = {
        "status": "passed",
        "params": {"target": "local"},
        "notebooks": [{"name": "09_chart", "status": "passed"}],
    }
    (run_dir / "summary.json").write_text(json.dumps(summary))
    build_report(run_dir)
    return run_dir / "html" / "09_chart.html"


def test_report_page_loads_no_script_from_the_internet(report_page: Path):
    page = report_page.read_text()
    remote = re.findall(r'<script[^>]+src="(https?://[^"]+)"', page)
    assert remote == [], f"scripts loaded from the internet: {remote}"
    assert 'src="plotly.min.js"' in page


def test_plotly_chart_renders_offline(report_page: Path, tmp_path: Path):
    dom = rendered_dom(report_page)
    assert "js-plotly-plot" in dom, "no plotly plot in the rendered page"
    assert re.search(r'<svg[^>]*class="main-svg"', dom), "the plotly plot has no SVG: it did not render"
    assert "Cache test" in dom
    png = screenshot(report_page, tmp_path / "report.png")
    assert png.stat().st_size > 20_000, "the screenshot is nearly empty"
