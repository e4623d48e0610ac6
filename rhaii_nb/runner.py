"""Run the runbook headless: papermill executes the notebooks in order into a run directory.

``run_runbook(RunOptions(...))`` is what ``rhaii-nb run`` calls and what tests call directly. A run
directory holds the executed notebooks, one records file per notebook (criteria, figures, costs),
``summary.json`` and the HTML report. The run stops at the first failing notebook and can be resumed
from it with ``RunOptions(resume=run_dir)``.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rhaii_nb.record import RECORD_ENV, read_records

PROJECT_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
DEFAULT_PARAMS = PROJECT_ROOT / "params" / "local.yaml"
KERNEL_NAME = "rhaii-nb"
# JupyterLab renders the JSON mime type; the report gets the HTML, whose CDN script the report
# rewrites to a local copy of plotly.js so it works offline (see report.py).
PLOTLY_RENDERER = "plotly_mimetype+notebook_connected"
DEFAULT_CELL_TIMEOUT_S = 1800
NOTEBOOK_NAME = re.compile(r"^(\d\d)_[a-z0-9_]+\.ipynb$")


class RunnerError(RuntimeError):
    """A run could not start (bad options, bad params, missing run directory)."""


@dataclass
class RunOptions:
    """What to run and where; mirrors the ``rhaii-nb run`` flags."""

    params_file: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    from_notebook: str | None = None  # "04" or "04_inference_service"
    only: list[str] = field(default_factory=list)
    resume: Path | None = None
    output: Path | None = None
    scenarios: list[str] = field(default_factory=list)
    keep_twin: bool = False
    notebooks_dir: Path = NOTEBOOKS_DIR
    progress: bool = True
    cell_timeout_s: int = DEFAULT_CELL_TIMEOUT_S


@dataclass
class NotebookResult:
    """Outcome of one notebook in a run."""

    name: str
    status: str = "not-run"  # passed | failed | skipped | not-run
    duration_s: float = 0.0
    error: dict[str, Any] | None = None
    records: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """JSON form stored in summary.json."""
        return {
            "name": self.name,
            "status": self.status,
            "duration_s": round(self.duration_s, 2),
            "error": self.error,
            "criteria": [{"name": r["name"], **r["data"]} for r in self.records if r["kind"] == "criterion"],
            "figures": [r["name"] for r in self.records if r["kind"] == "figure"],
            "metrics": {r["name"]: r["data"] for r in self.records if r["kind"] == "metric"},
            "costs": [r["data"] for r in self.records if r["kind"] == "cost"],
        }


@dataclass
class RunSummary:
    """Outcome of a run; ``ok`` is what the exit status follows."""

    run_dir: Path
    notebooks: list[NotebookResult]
    params: dict[str, Any]
    started_at: str
    finished_at: str = ""

    @property
    def ok(self) -> bool:
        """True when no notebook failed and every selected one ran."""
        return all(nb.status in ("passed", "skipped") for nb in self.notebooks)

    @property
    def failed(self) -> NotebookResult | None:
        """The notebook that stopped the run, if any."""
        return next((nb for nb in self.notebooks if nb.status == "failed"), None)

    def failure_message(self) -> str:
        """One readable paragraph: which notebook, which cell, what went wrong, how to resume."""
        failed = self.failed
        if failed is None:
            return ""
        error = failed.error or {}
        where = f"cell {error.get('cell_index', '?')}"
        if error.get("step"):
            where += f" (step: {error['step']})"
        return (
            f"{failed.name} failed at {where}: {error.get('ename', 'Error')}: {error.get('evalue', '')}\n"
            f"Executed notebook: {self.run_dir / 'notebooks' / (failed.name + '.ipynb')}\n"
            f"Resume from it with: rhaii-nb run --resume {self.run_dir}"
        )


def discover_notebooks(notebooks_dir: Path = NOTEBOOKS_DIR) -> list[Path]:
    """The runbook's notebooks in run order (by their two-digit prefix)."""
    found = [p for p in notebooks_dir.glob("*.ipynb") if NOTEBOOK_NAME.match(p.name)]
    return sorted(found, key=lambda p: p.name)


def select_notebooks(notebooks: list[Path], from_notebook: str | None, only: list[str]) -> list[Path]:
    """Apply ``--from`` and ``--only`` (both accept "04" or a full stem); unknown names are an error."""

    def matches(path: Path, key: str) -> bool:
        return path.stem == key or path.name[:2] == key.zfill(2)

    for key in [*only, *([from_notebook] if from_notebook else [])]:
        if not any(matches(p, key) for p in notebooks):
            known = ", ".join(p.stem for p in notebooks)
            raise RunnerError(f"no notebook matches {key!r}; known notebooks: {known}")
    selected = notebooks
    if from_notebook:
        start = next(i for i, p in enumerate(notebooks) if matches(p, from_notebook))
        selected = notebooks[start:]
    if only:
        selected = [p for p in selected if any(matches(p, key) for key in only)]
    return selected


def new_run_dir(output: Path | None) -> Path:
    """``output`` if given, else ``runs/<UTC timestamp>`` under the project."""
    if output is not None:
        return output.resolve()
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return (PROJECT_ROOT / "runs" / stamp).resolve()


def run_runbook(options: RunOptions, echo: Callable[[str], None] = print) -> RunSummary:
    """Execute the selected notebooks in order; stop at the first failure; write summary + report."""
    from rhaii_nb.params import load_params

    if options.resume is not None:
        options = _options_for_resume(options)
    run_dir = options.resume.resolve() if options.resume else new_run_dir(options.output)
    params_file = Path(options.params_file or DEFAULT_PARAMS).resolve()
    overrides = dict(options.overrides)
    if options.scenarios:
        overrides["scenario"] = sorted({*overrides.get("scenario", []), *options.scenarios})
    if "twin_home" not in overrides:
        overrides["twin_home"] = str(run_dir / "twin")
    # Validation happens here, before any notebook (and anything in a cluster) runs.
    params = load_params(params_file, overrides)
    notebooks = select_notebooks(
        discover_notebooks(options.notebooks_dir), options.from_notebook, options.only
    )
    if not notebooks:
        raise RunnerError(f"no notebooks to run in {options.notebooks_dir}")

    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "notebooks").mkdir(exist_ok=True)
    (run_dir / "records").mkdir(exist_ok=True)
    _write_run_options(run_dir, params_file, overrides, options)
    _ensure_kernel()

    previous = _previous_results(run_dir) if options.resume else {}
    results = [previous.get(p.stem) or NotebookResult(p.stem) for p in notebooks]
    summary = RunSummary(run_dir, results, _params_for_summary(params), _now())
    twin = _start_twin_if_local(params, echo)
    try:
        for index, (path, result) in enumerate(zip(notebooks, results, strict=True), start=1):
            if options.resume and result.status in ("passed", "skipped"):
                echo(
                    f"[{index}/{len(notebooks)}] {path.stem}: {result.status} in the earlier run, not re-run"
                )
                continue
            echo(f"[{index}/{len(notebooks)}] {path.stem} ...")
            _execute(path, result, run_dir, params_file, overrides, options)
            mark = {"passed": "✅", "skipped": "⏭"}.get(result.status, "❌")
            echo(f"{mark} {path.stem} {result.status} in {result.duration_s:.1f} s")
            _write_summary(summary)
            if result.status == "failed":
                break
    finally:
        summary.finished_at = _now()
        _write_summary(summary)
        _build_report(summary, echo)
        if twin is not None and summary.ok and not options.keep_twin:
            twin.stop()
        elif twin is not None:
            echo(
                f"The twin keeps running for inspection: KUBECONFIG={twin.kubeconfig}; stop it with "
                f"`rhaii-nb twin down --home {twin.home}`"
            )
    if not summary.ok and summary.failed is not None:
        echo(summary.failure_message())
    echo(f"Report: {run_dir / 'index.html'}")
    return summary


def _execute(
    path: Path,
    result: NotebookResult,
    run_dir: Path,
    params_file: Path,
    overrides: dict[str, Any],
    options: RunOptions,
) -> None:
    """Run one notebook with papermill and fill ``result`` in place."""
    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    output = run_dir / "notebooks" / path.name
    records_file = run_dir / "records" / f"{path.stem}.jsonl"
    records_file.unlink(missing_ok=True)  # a re-run replaces the notebook's earlier records
    env_before = {key: os.environ.get(key) for key in (RECORD_ENV, "PLOTLY_RENDERER", "RHAII_NB_RUN_DIR")}
    os.environ[RECORD_ENV] = str(records_file)
    os.environ["PLOTLY_RENDERER"] = PLOTLY_RENDERER
    os.environ["RHAII_NB_RUN_DIR"] = str(run_dir)
    started = time.monotonic()
    try:
        papermill.execute_notebook(
            str(path),
            str(output),
            parameters={"params_file": str(params_file), "overrides": overrides},
            kernel_name=KERNEL_NAME,
            cwd=str(path.parent),
            progress_bar=options.progress,
            request_save_on_cell_execute=True,
            timeout_func=lambda cell: _cell_timeout(cell, options.cell_timeout_s),
        )
        result.status = "passed"
        result.error = None
        skipped = _all_criteria_skipped(read_records(records_file))
        if skipped:
            result.status = "skipped"
    except PapermillExecutionError as exc:
        result.status = "failed"
        result.error = _failure(output, exc.cell_index, exc.ename, _redact(str(exc.evalue)))
    except CellTimeoutError as exc:
        result.status = "failed"
        why = f"a cell ran longer than its timeout and was interrupted ({exc})"
        result.error = _failure(output, _running_cell(output), "CellTimeoutError", why)
    except DeadKernelError as exc:
        result.status = "failed"
        why = f"the kernel died (out of memory or killed): {exc}"
        result.error = _failure(output, _running_cell(output), "DeadKernelError", why)
    finally:
        result.duration_s = time.monotonic() - started
        result.records = read_records(records_file)
        for key, value in env_before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _failure(output: Path, cell_index: int | None, ename: str, evalue: str) -> dict[str, Any]:
    """A notebook's ``error`` record: the failing cell, the step (heading) it belongs to, what went wrong."""
    return {
        "cell_index": cell_index,
        "step": _step_heading(output, cell_index),
        "ename": ename,
        "evalue": evalue,
    }


def _all_criteria_skipped(records: list[dict[str, Any]]) -> bool:
    """A notebook that passed with every criterion skipped (e.g. optional network policies off)."""
    criteria = [r for r in records if r["kind"] == "criterion"]
    return bool(criteria) and all(r["data"].get("skipped") for r in criteria)


def _cell_timeout(cell: Any, default: int) -> int:
    """Per-cell timeout: ``metadata.rhaii.timeout`` if the notebook sets one, else the default."""
    return int(cell.get("metadata", {}).get("rhaii", {}).get("timeout", default))


def _running_cell(output: Path) -> int | None:
    """Index of the cell that was executing when a timeout or a dead kernel stopped the run.

    Papermill leaves no error banner then, and marks a timed-out cell ``completed``: the cell is the
    one still marked running, else the last one that started.
    """
    import nbformat

    try:
        nb = nbformat.read(output, as_version=4)
    except (OSError, ValueError):
        return None
    last_started = None
    for index, cell in enumerate(nb.cells):
        papermill = cell.get("metadata", {}).get("papermill", {})
        if papermill.get("status") == "running":
            return index
        if papermill.get("start_time"):
            last_started = index
    return last_started


def _step_heading(output: Path, cell_index: int | None) -> str | None:
    """The markdown heading above a cell: the step a reader would name."""
    import nbformat

    if cell_index is None:
        return None
    try:
        nb = nbformat.read(output, as_version=4)
    except (OSError, ValueError):
        return None
    for cell in reversed(nb.cells[: cell_index + 1]):
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return None


def _ensure_kernel() -> None:
    """Register the ``rhaii-nb`` kernel for this interpreter inside its environment (idempotent)."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
        if spec.argv and Path(spec.argv[0]).resolve() == Path(sys.executable).resolve():
            return
    except NoSuchKernel:
        pass
    from ipykernel.kernelspec import install

    install(kernel_name=KERNEL_NAME, display_name="Python (rhaii-nb)", prefix=sys.prefix)


def _start_twin_if_local(params: Any, echo: Callable[[str], None]) -> Any:
    """Start (or find) the twin the run's params point at; None for a real GKE target."""
    if params.target != "local":
        return None
    from rhaii_nb.twin.client import ensure_twin

    echo(f"Starting the local twin in {params.twin_home} (time scale {params.time_scale}) ...")
    return ensure_twin(
        home=Path(params.twin_home), time_scale=params.time_scale, scenarios=tuple(params.scenario)
    )


def _options_for_resume(options: RunOptions) -> RunOptions:
    """Take params and selection from the earlier run; a ``--from`` given now still applies."""
    run_dir = Path(options.resume)
    saved_file = run_dir / "run-options.json"
    if not saved_file.exists():
        raise RunnerError(
            f"{run_dir} is not a run directory (no run-options.json); pass a runs/<timestamp> dir"
        )
    saved = json.loads(saved_file.read_text())
    options.params_file = Path(saved["params_file"])
    options.overrides = {**saved["overrides"], **options.overrides}
    options.only = options.only or saved.get("only", [])
    options.from_notebook = options.from_notebook or saved.get("from_notebook")
    return options


def _write_run_options(
    run_dir: Path, params_file: Path, overrides: dict[str, Any], options: RunOptions
) -> None:
    """Save how the run was started, so ``--resume`` can continue it. Holds file paths only."""
    saved = {
        "params_file": str(params_file),
        "overrides": overrides,
        "only": options.only,
        "from_notebook": options.from_notebook,
    }
    (run_dir / "run-options.json").write_text(json.dumps(saved, indent=2))


def _previous_results(run_dir: Path) -> dict[str, NotebookResult]:
    """Per-notebook results of an earlier run in ``run_dir``."""
    summary_file = run_dir / "summary.json"
    if not summary_file.exists():
        return {}
    results = {}
    for entry in json.loads(summary_file.read_text()).get("notebooks", []):
        result = NotebookResult(
            entry["name"], entry["status"], entry.get("duration_s", 0.0), entry.get("error")
        )
        result.records = read_records(run_dir / "records" / f"{entry['name']}.jsonl")
        results[entry["name"]] = result
    return results


def _params_for_summary(params: Any) -> dict[str, Any]:
    """Resolved params for the summary: secret files as present/absent, never their contents."""
    if hasattr(params, "summary_dict"):
        return params.summary_dict()
    return json.loads(params.model_dump_json())


def _write_summary(summary: RunSummary) -> None:
    """Write ``summary.json`` (rewritten after each notebook so a crash leaves a useful file)."""
    from rhaii_nb.report import cost_summary

    data = {
        "run_dir": str(summary.run_dir),
        "status": "passed" if summary.ok else ("failed" if summary.failed else "incomplete"),
        "started_at": summary.started_at,
        "finished_at": summary.finished_at,
        "params": summary.params,
        "notebooks": [nb.to_json() for nb in summary.notebooks],
        "failure": summary.failure_message() or None,
        "cost": cost_summary([c for nb in summary.notebooks for c in nb.to_json()["costs"]]),
    }
    (summary.run_dir / "summary.json").write_text(json.dumps(data, indent=2, default=str))


def _build_report(summary: RunSummary, echo: Callable[[str], None]) -> None:
    """Render the HTML report; a report failure is reported, never hides the run's own outcome."""
    from rhaii_nb.report import build_report

    try:
        build_report(summary.run_dir)
    except Exception as exc:  # the run's result matters more than its report
        echo(f"Could not build the HTML report: {type(exc).__name__}: {exc}")


def _redact(text: str) -> str:
    """Mask any known secret value in an error message."""
    try:
        from rhaii_nb.redact import redact_known
    except ImportError:
        return text
    return redact_known(text)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
