"""How the runner records a notebook that fails: the failing cell, its step heading, what went wrong.

Each case runs a two-step notebook in a real kernel (papermill, the runner's own kernel spec).
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from rhaii_nb import runner


def _notebook(folder: Path, failing_code: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": runner.KERNEL_NAME, "language": "python", "display_name": "rhaii"}
    nb.cells = [
        nbformat.v4.new_markdown_cell("## Step 1: warm up"),
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_markdown_cell("## Step 2: the one that fails\nSome prose."),
        nbformat.v4.new_code_cell(failing_code),
    ]
    path = folder / "nb" / "99_failing.ipynb"
    path.parent.mkdir(parents=True)
    nbformat.write(nb, path)
    return path


def _run(tmp_path: Path, failing_code: str) -> tuple[runner.NotebookResult, Path]:
    runner._ensure_kernel()
    path = _notebook(tmp_path, failing_code)
    run_dir = tmp_path / "run"
    for folder in ("notebooks", "records"):
        (run_dir / folder).mkdir(parents=True)
    params_file = tmp_path / "params.yaml"
    params_file.write_text("{}\n")
    result = runner.NotebookResult(path.stem)
    options = runner.RunOptions(progress=False, cell_timeout_s=3)
    runner._execute(path, result, run_dir, params_file, {}, options)
    return result, run_dir / "notebooks" / path.name


@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    ("code", "ename", "evalue_part"),
    [
        ("raise RuntimeError('boom')", "RuntimeError", "boom"),
        ("import time\ntime.sleep(60)", "CellTimeoutError", "ran longer than its timeout"),
        ("import os\nos._exit(1)", "DeadKernelError", "the kernel died"),
    ],
    ids=["exception", "cell-timeout", "dead-kernel"],
)
def test_a_failure_names_the_cell_and_its_step(
    tmp_path: Path, code: str, ename: str, evalue_part: str
) -> None:
    result, executed = _run(tmp_path, code)
    assert result.status == "failed"
    assert result.error is not None
    assert result.error["step"] == "Step 2: the one that fails"
    # cell_index counts the notebook's own cells, not the error banners papermill adds to the output
    cells = [c for c in nbformat.read(executed, as_version=4).cells if "papermill" in c.metadata]
    assert cells[result.error["cell_index"]].source == code
    assert result.error["ename"] == ename and evalue_part in result.error["evalue"]
