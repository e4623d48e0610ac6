"""pyproject.toml and environment.yml list the same dependencies with the same lower bounds."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
NOT_DEPENDENCIES = {"python", "pip"}


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_map(lines: list[str]) -> dict[str, str]:
    result = {}
    for line in lines:
        req = Requirement(line)
        result[_normalize(req.name)] = str(req.specifier)
    return result


def pyproject_requirements() -> dict[str, str]:
    """Runtime dependencies plus the test extras, name → specifier."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        lines.extend(extra)
    return _requirement_map(lines)


def environment_requirements() -> dict[str, str]:
    """Conda and pip-section dependencies of environment.yml, name → specifier."""
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    lines: list[str] = []
    for entry in env["dependencies"]:
        if isinstance(entry, dict):
            lines.extend(item for item in entry.get("pip", []) if not item.startswith("-"))
        else:
            lines.append(entry.replace(" ", ""))
    reqs = _requirement_map(lines)
    return {name: spec for name, spec in reqs.items() if name not in NOT_DEPENDENCIES}


def test_environment_yml_lists_the_pyproject_dependencies():
    pyproject = pyproject_requirements()
    environment = environment_requirements()
    assert len(pyproject) >= 20, "pyproject.toml lost its dependency list"
    missing = sorted(set(pyproject) - set(environment))
    extra = sorted(set(environment) - set(pyproject))
    differ = sorted(n for n in set(pyproject) & set(environment) if pyproject[n] != environment[n])
    assert not missing, f"in pyproject.toml but not environment.yml: {missing}"
    assert not extra, f"in environment.yml but not pyproject.toml: {extra}"
    assert not differ, f"different bounds: {[(n, pyproject[n], environment[n]) for n in differ]}"


def test_every_dependency_has_a_lower_bound():
    for name, spec in pyproject_requirements().items():
        assert ">=" in spec, f"{name} has no lower bound in pyproject.toml"


def test_environment_yml_installs_the_project_and_uses_conda_forge():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge"]
    pip_section = next(e["pip"] for e in env["dependencies"] if isinstance(e, dict))
    assert "-e ." in pip_section
    assert any(str(e).startswith("python>=3.11") for e in env["dependencies"])
