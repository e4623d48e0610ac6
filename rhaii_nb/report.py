"""The HTML report of a run: ``index.html`` plus each executed notebook rendered by nbconvert.

Notebooks are executed with plotly's ``plotly_mimetype+notebook_connected`` renderer (small
notebooks; JupyterLab shows the JSON mime type). In the report, the CDN reference to plotly.js is
rewritten to one local copy next to the pages, so charts render offline without embedding 4.8 MB of
JavaScript into every page.
"""

from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path
from typing import Any

PLOTLY_CDN = re.compile(r"https://cdn\.plot\.ly/plotly-\d+\.\d+\.\d+(?:\.min)?(?:\.js)?")
SRI_ATTRIBUTES = re.compile(r'\s(?:integrity|crossorigin)="[^"]*"')
MODULE_IMPORT = re.compile(r'<script type="module">import "https://cdn\.plot\.ly/[^"]*"</script>')
# MathJax is not needed by the charts; require.js would capture plotly.js as an AMD module online.
CDN_SCRIPTS = re.compile(
    r'<script[^>]*src="https://cdnjs\.cloudflare\.com/ajax/libs/(?:mathjax|require\.js)/[^"]*"[^>]*>\s*</script>'
)


def build_report(run_dir: Path) -> Path:
    """Render every executed notebook of ``run_dir`` and write ``index.html``; returns its path."""
    run_dir = Path(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    pages_dir = run_dir / "html"
    pages_dir.mkdir(exist_ok=True)
    _copy_plotly_js(pages_dir)
    for entry in summary["notebooks"]:
        executed = run_dir / "notebooks" / f"{entry['name']}.ipynb"
        if executed.exists():
            (pages_dir / f"{entry['name']}.html").write_text(render_notebook(executed), encoding="utf-8")
    index = run_dir / "index.html"
    index.write_text(render_index(summary, pages_dir), encoding="utf-8")
    return index


def render_notebook(path: Path) -> str:
    """One executed notebook as standalone HTML whose charts load ``plotly.min.js`` from beside it."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(path, as_version=4)
    # papermill keeps the injected parameters in metadata too; the report needs neither copy.
    nb.metadata.pop("papermill", None)
    exporter = HTMLExporter(template_name="lab")
    body, _ = exporter.from_notebook_node(nb)
    return localize_plotly(body)


def localize_plotly(page: str) -> str:
    """Point plotly's CDN script tags at the local ``plotly.min.js`` and drop what needs the network."""
    page = MODULE_IMPORT.sub("", page)
    page = CDN_SCRIPTS.sub("", page)
    page = PLOTLY_CDN.sub("plotly.min.js", page)
    return re.sub(
        r'<script[^>]*src="plotly\.min\.js"[^>]*>',
        lambda m: SRI_ATTRIBUTES.sub("", m.group(0)),
        page,
    )


def render_index(summary: dict[str, Any], pages_dir: Path) -> str:
    """The run's front page: outcome, per-notebook status with criteria, cost line, parameters."""
    status = summary["status"]
    badge = {"passed": "✅ passed", "failed": "❌ failed"}.get(status, f"⏸ {status}")
    rows = []
    for entry in summary["notebooks"]:
        page = pages_dir / f"{entry['name']}.html"
        name = html.escape(entry["name"])
        link = f'<a href="html/{name}.html">{name}</a>' if page.exists() else name
        mark = {"passed": "✅", "failed": "❌", "skipped": "⏭"}.get(entry["status"], "·")
        criteria = "".join(
            f"<li>{_criterion_mark(c)} {html.escape(str(c.get('name')))}: "
            f"{html.escape(str(c.get('measured')))} {html.escape(str(c.get('op', '')))} "
            f"{html.escape(str(c.get('target', '')))}</li>"
            for c in entry.get("criteria", [])
        )
        rows.append(
            f"<tr><td>{mark}</td><td>{link}</td><td>{html.escape(entry['status'])}</td>"
            f"<td>{entry.get('duration_s', 0):.1f} s</td><td><ul>{criteria}</ul></td></tr>"
        )
    failure = summary.get("failure")
    failure_html = f"<pre class='failure'>{html.escape(failure)}</pre>" if failure else ""
    cost = summary.get("cost") or {}
    cost_html = ""
    if cost.get("node_hours"):
        cost_html = (
            f"<p><b>TPU cost:</b> {cost['node_hours']:.3f} node-hours ({cost['chip_hours']:.2f} chip-hours)"
            f" ≈ {cost['estimate']:.2f} {html.escape(str(cost.get('currency', '')))}"
            f" — {html.escape(str(cost.get('basis', '')))}</p>"
        )
    params_rows = "".join(
        f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>"
        for k, v in summary.get("params", {}).items()
    )
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>RHAII runbook run — {html.escape(status)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; max-width: 70em; }}
table {{ border-collapse: collapse; }} td, th {{ border-bottom: 1px solid #ddd; padding: .3em .8em;
vertical-align: top; text-align: left; }} ul {{ margin: 0; padding-left: 1em; }}
.failure {{ background: #fee; padding: 1em; white-space: pre-wrap; }}
</style></head><body>
<h1>RHAII on GKE TPU runbook — {badge}</h1>
<p>Started {html.escape(summary.get("started_at", ""))},
finished {html.escape(summary.get("finished_at", ""))}.
Target: <b>{html.escape(str(summary.get("params", {}).get("target", "?")))}</b>.</p>
{failure_html}
<h2>Notebooks</h2>
<table><tr><th></th><th>notebook</th><th>status</th><th>duration</th><th>success criteria</th></tr>
{"".join(rows)}</table>
{cost_html}
<h2>Parameters</h2><table>{params_rows}</table>
</body></html>
"""


def _criterion_mark(criterion: dict[str, Any]) -> str:
    if criterion.get("skipped"):
        return "⏭"
    return "✅" if criterion.get("passed") else "❌"


def cost_summary(costs: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum the cost records notebooks made (node-hours, chip-hours, estimate in the params' currency)."""
    if not costs:
        return {}
    node_hours = sum(float(c.get("node_hours", 0.0)) for c in costs)
    chip_hours = sum(float(c.get("chip_hours", 0.0)) for c in costs)
    estimate = sum(float(c.get("estimate", 0.0)) for c in costs)
    return {
        "node_hours": node_hours,
        "chip_hours": chip_hours,
        "estimate": estimate,
        "currency": costs[-1].get("currency", ""),
        "basis": costs[-1].get("basis", ""),
    }


def _copy_plotly_js(pages_dir: Path) -> None:
    """Put the plotly.js that ships with the plotly package beside the pages (once per run)."""
    import plotly

    source = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    target = pages_dir / "plotly.min.js"
    if not target.exists() or target.stat().st_size != source.stat().st_size:
        shutil.copyfile(source, target)
