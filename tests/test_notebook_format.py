"""Every notebook is stored clean (no outputs, no execution counts) with one `parameters` cell."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"


def _notebooks() -> list[Path]:
    return sorted(NOTEBOOKS_DIR.glob("*.ipynb")) if NOTEBOOKS_DIR.is_dir() else []


def test_notebooks_directory_exists():
    assert NOTEBOOKS_DIR.is_dir(), f"{NOTEBOOKS_DIR} is missing: the runbook's notebooks live there"


@pytest.mark.parametrize("path", _notebooks() or [None], ids=lambda p: p.name if p else "no-notebooks")
def test_notebook_is_stripped_with_one_parameters_cell(path: Path | None):
    if path is None:
        pytest.skip("notebooks/ holds no notebooks yet")
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        assert cell.get("outputs") == [], f"{path.name} cell {index} has stored outputs: strip them"
        assert cell.get("execution_count") is None, f"{path.name} cell {index} has an execution count"
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: {len(tagged)} cells tagged 'parameters' (need exactly one)"
    assert nb.cells[tagged[0]].cell_type == "code", f"{path.name}: the parameters cell must be a code cell"
    assert "papermill" not in nb.metadata, f"{path.name} still carries papermill run metadata"
