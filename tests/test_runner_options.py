"""Runner option handling that needs no kernel: notebook selection and -p overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from rhaii_nb.run_cli import parse_overrides
from rhaii_nb.runner import RunnerError, select_notebooks

NOTEBOOKS = [
    Path(f"{name}.ipynb") for name in ("00_preflight", "01_cluster", "04_inference_service", "99_teardown")
]


def test_from_and_only_select_by_number_or_stem() -> None:
    assert [p.stem for p in select_notebooks(NOTEBOOKS, "04", [])] == ["04_inference_service", "99_teardown"]
    assert [p.stem for p in select_notebooks(NOTEBOOKS, None, ["0", "99_teardown"])] == [
        "00_preflight",
        "99_teardown",
    ]
    assert [p.stem for p in select_notebooks(NOTEBOOKS, "01", ["00", "04"])] == ["04_inference_service"]


def test_unknown_notebook_names_the_known_ones() -> None:
    with pytest.raises(RunnerError, match=r"no notebook matches '07'.*00_preflight, 01_cluster"):
        select_notebooks(NOTEBOOKS, "07", [])


def test_overrides_are_read_as_yaml() -> None:
    assert parse_overrides(["replicas=2", "scenario=[node-loss, api-flaky]", "zone=europe-west4-a"]) == {
        "replicas": 2,
        "scenario": ["node-loss", "api-flaky"],
        "zone": "europe-west4-a",
    }
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        parse_overrides(["replicas"])
