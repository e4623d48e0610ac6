"""The run report: offline plotly charts (rendered in headless Chromium), index page, cost line."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import nbformat
import papermill
import pytest

from rhaii_nb.report import build_report, cost_summary, localize_plotly
from rhaii_nb.runner import KERNEL_NAME, PLOTLY_RENDERER, _ensure_kernel

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory holding one executed notebook with a plotly chart, and its report."""
    _ensure_kernel()
    root = tmp_path_factory.mktemp("run")
    source = root / "chart.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": KERNEL_NAME,
        "display_name": "Python (rhaii-nb)",
        "language": "python",
    }
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Chart\nOne bar chart."),
        nbformat.v4.new_code_cell(
            "import plotly.graph_objects as go\n"
            "go.Figure(go.Bar(x=['hit', 'miss'], y=[80, 200]), layout_title_text='latency')"
        ),
    ]
    nbformat.write(nb, source)
    (root / "notebooks").mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PLOTLY_RENDERER", PLOTLY_RENDERER)
        papermill.execute_notebook(
            str(source),
            str(root / "notebooks" / "09_chart.ipynb"),
            kernel_name=KERNEL_NAME,
            progress_bar=False,
        )
    summary = {
        "status": "passed",
        "started_at": "2026-01-01T00:00:00+00:00",
        "finished_at": "2026-01-01T00:01:00+00:00",
        "params": {"target": "local", "hf_token_file": "present"},
        "notebooks": [
            {
                "name": "09_chart",
                "status": "passed",
                "duration_s": 3.2,
                "criteria": [{"name": "speedup", "measured": 61.0, "op": ">=", "target": 60, "passed": True}],
            },
            {"name": "10_later", "status": "not-run", "duration_s": 0, "criteria": []},
        ],
        "cost": cost_summary(
            [
                {
                    "node_hours": 0.5,
                    "chip_hours": 2.0,
                    "estimate": 2.7,
                    "currency": "USD",
                    "basis": "illustrative",
                }
            ]
        ),
    }
    (root / "summary.json").write_text(json.dumps(summary))
    build_report(root)
    return root


def test_report_pages_reference_one_local_plotly(run_dir: Path) -> None:
    page = (run_dir / "html" / "09_chart.html").read_text()
    assert "cdn.plot.ly" not in page
    assert 'src="plotly.min.js"' in page
    assert "integrity=" not in page.split('src="plotly.min.js"')[0].rsplit("<script", 1)[-1]
    assert (run_dir / "html" / "plotly.min.js").stat().st_size > 1_000_000
    # The page itself stays small: plotly.js is shared, not embedded.
    assert len(page) < 1_000_000


def test_index_links_notebooks_and_shows_criteria_and_cost(run_dir: Path) -> None:
    index = (run_dir / "index.html").read_text()
    assert 'href="html/09_chart.html"' in index
    assert "10_later" in index and 'href="html/10_later.html"' not in index
    assert "✅ speedup: 61.0 &gt;= 60" in index
    assert "0.500 node-hours" in index and "2.70 USD" in index


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (apt-get install chromium)")
def test_charts_render_offline_in_headless_chromium(run_dir: Path) -> None:
    page = run_dir / "html" / "09_chart.html"
    dom = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=8000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert 'class="main-svg"' in dom, "plotly did not draw the chart (no svg.main-svg in the rendered DOM)"


def test_localize_plotly_rewrites_cdn_and_drops_network_scripts() -> None:
    page = (
        '<script src="https://cdnjs.cloudflare.com/ajax/libs/require.js/2.1.10/require.min.js"></script>'
        '<script type="module">import "https://cdn.plot.ly/plotly-4.1.1.min"</script>'
        '<script charset="utf-8" src="https://cdn.plot.ly/plotly-4.1.1.min.js" integrity="sha256-x" '
        'crossorigin="anonymous"></script>'
    )
    assert localize_plotly(page) == '<script charset="utf-8" src="plotly.min.js"></script>'
