"""The CI templates in ci/: valid YAML, every `rhaii-nb` command they call parses with the real CLI
(exact flag names, known params fields, files that exist), the jobs keep their promises (artifact
even on failure, teardown always, secrets only as files), and the pull-request twin job, run here
as written — the same commands in the same order — passes.
"""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from rhaii_nb.cli import build_parser
from rhaii_nb.params import RunParams
from rhaii_nb.run_cli import parse_overrides

ROOT = Path(__file__).resolve().parents[1]
GITHUB = ROOT / "ci" / "github-actions.yml"
GITLAB = ROOT / "ci" / "gitlab-ci.yml"
_VAR = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def _load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _github_triggers(doc: dict[str, Any]) -> dict[str, Any]:
    # YAML 1.1 (PyYAML) reads the bare key `on` as the boolean True; GitHub reads it as "on".
    return doc.get("on", doc.get(True))


def _shell_lines(script: str) -> list[str]:
    """Shell commands of a script: continuation lines joined, comments and blank lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", script)
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]


def _expand(text: str, env: dict[str, str]) -> str:
    """``$VAR`` / ``${VAR}`` replaced from ``env`` (unknown ones kept as written)."""
    return _VAR.sub(lambda m: env.get(m.group(1) or m.group(2), m.group(0)), text)


def _github_commands() -> list[tuple[str, list[str], dict[str, str]]]:
    """(job, argv, job env) of every `rhaii-nb` command in the GitHub workflow."""
    found = []
    for name, job in _load(GITHUB)["jobs"].items():
        env = {k: str(v) for k, v in (job.get("env") or {}).items()}
        for step in job["steps"]:
            for line in _shell_lines(step.get("run", "")):
                if line.startswith("rhaii-nb "):
                    found.append((name, shlex.split(_expand(line, env)), env))
    return found


def _gitlab_scripts(job: dict[str, Any], default: dict[str, Any]) -> list[str]:
    before = job.get("before_script", default.get("before_script", []))
    return [*before, *job.get("script", []), *job.get("after_script", [])]


def _gitlab_commands() -> list[tuple[str, list[str], dict[str, str]]]:
    """(job, argv, job variables) of every `rhaii-nb` command in the GitLab pipeline."""
    doc = _load(GITLAB)
    default = doc.get("default", {})
    found = []
    for name, job in doc.items():
        if not isinstance(job, dict) or "script" not in job:
            continue
        env = {k: str(v) for k, v in (job.get("variables") or {}).items()}
        for script in _gitlab_scripts(job, default):
            for line in _shell_lines(script):
                if line.startswith("rhaii-nb "):
                    found.append((name, shlex.split(_expand(line, env)), env))
    return found


ALL_COMMANDS = [("github", *c) for c in _github_commands()] + [("gitlab", *c) for c in _gitlab_commands()]


def _subparser(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[argparse.ArgumentParser, list[str]]:
    """The (sub)parser that handles ``argv`` after its command words, and the remaining words."""
    while True:
        actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not actions or not argv or argv[0] not in actions[0].choices:
            return parser, argv
        parser, argv = actions[0].choices[argv[0]], argv[1:]


def test_templates_are_valid_yaml_with_the_expected_jobs():
    github = _load(GITHUB)
    triggers = _github_triggers(github)
    assert {"pull_request", "schedule"} <= set(triggers), f"GitHub triggers: {sorted(triggers)}"
    assert set(github["jobs"]) == {"twin", "gke"}
    assert "pull_request" in github["jobs"]["twin"]["if"] and "schedule" in github["jobs"]["gke"]["if"]
    gitlab = _load(GITLAB)
    assert "merge_request_event" in gitlab["twin-runbook"]["rules"][0]["if"]
    assert "schedule" in gitlab["gke-nightly"]["rules"][0]["if"]


@pytest.mark.parametrize(
    ("system", "job", "argv", "env"), ALL_COMMANDS, ids=[f"{c[0]}-{c[1]}-{c[2][1]}" for c in ALL_COMMANDS]
)
def test_every_rhaii_nb_command_parses_with_the_real_cli(system, job, argv, env):
    assert argv[0] == "rhaii-nb"
    args = argv[1:]
    try:
        parsed = build_parser().parse_args(args)
    except SystemExit as exc:
        pytest.fail(f"{system} {job}: `{shlex.join(argv)}` does not parse (exit {exc.code})")
    assert getattr(parsed, "handler", None), f"`{shlex.join(argv)}` names no command"
    parser, rest = _subparser(build_parser(), args)
    known = {flag for action in parser._actions for flag in action.option_strings}
    for word in rest:
        flag = word.split("=", 1)[0]
        if flag.startswith("-"):
            assert flag in known, f"{flag} is not a flag of `{parser.prog}` (abbreviations hide renames)"
    for key in parse_overrides(getattr(parsed, "param", [])):
        assert key in RunParams.model_fields, f"-p {key}=…: {key} is not a params field"
    for attr in ("params",):
        value = getattr(parsed, attr, None)
        if value is not None:
            assert (ROOT / value).is_file(), f"--{attr} {value}: no such file in the repository"
    if getattr(parsed, "only", None):
        from rhaii_nb.runner import discover_notebooks, select_notebooks

        only = [item.strip() for item in parsed.only.split(",")]
        assert select_notebooks(discover_notebooks(), None, only), f"--only {parsed.only} selects nothing"


def test_nightly_jobs_tear_down_always_and_keep_the_run_directory():
    gke = _load(GITHUB)["jobs"]["gke"]
    steps = gke["steps"]
    runbook = next(s for s in steps if s.get("id") == "runbook")
    teardown = next(s for s in steps if s.get("name") == "Teardown")
    upload = next(s for s in steps if "upload-artifact" in s.get("uses", ""))
    assert steps.index(runbook) < steps.index(teardown) < steps.index(upload)
    assert teardown["if"] == "always()" and upload["if"] == "always()"
    assert "--only 99" in teardown["run"] and "confirm_delete=true" in teardown["run"]
    assert "confirm_delete=true" in runbook["run"]
    run_dir = gke["env"]["RUN_DIR"]
    assert '--output "$RUN_DIR"' in runbook["run"] and '"$RUN_DIR/teardown"' in teardown["run"]
    assert upload["with"]["path"] == "${{ env.RUN_DIR }}" and run_dir

    nightly = _load(GITLAB)["gke-nightly"]
    assert any("--only 99" in line for line in nightly["after_script"])
    assert nightly["artifacts"]["when"] == "always"
    assert nightly["artifacts"]["paths"] == ["$RUN_DIR"]

    def minutes(value: str) -> int:
        number, unit = re.fullmatch(r"(\d+)\s*([mh])", value).groups()
        return int(number) * (60 if unit == "h" else 1)

    variables = nightly["variables"]
    # The teardown only runs on a script timeout if script + after_script fit in the job timeout.
    assert minutes(variables["RUNNER_SCRIPT_TIMEOUT"]) + minutes(
        variables["RUNNER_AFTER_SCRIPT_TIMEOUT"]
    ) < minutes(nightly["timeout"])


def test_secrets_reach_the_runbook_as_files_and_are_never_echoed():
    text = GITHUB.read_text()
    for job in _load(GITHUB)["jobs"].values():
        for step in job["steps"]:
            run = step.get("run", "")
            # Secrets only through a step's env, so the shell never sees them in its source.
            assert "secrets." not in run, f"step {step.get('name')} puts a secret into its script"
            assert not re.search(r"\bset -x\b|\becho\b.*\$(HF_TOKEN|PULL_SECRET)", run), step.get("name")
            for key, value in (step.get("env") or {}).items():
                if "secrets." in str(value):
                    assert re.search(rf'printf .*"\${key}" > ', run), f"{key} is not written to a file"
    assert "umask 077" in text
    gitlab = _load(GITLAB)["gke-nightly"]
    command = " ".join(gitlab["script"])
    assert '-p hf_token_file="$RHAII_HF_TOKEN_FILE"' in command
    assert '-p pull_secret_file="$RHAII_PULL_SECRET_FILE"' in command


def test_twin_jobs_of_both_systems_run_the_same_commands():
    github_job = _load(GITHUB)["jobs"]["twin"]
    github = [
        line
        for step in github_job["steps"]
        if step.get("run") and step.get("id") != "install"
        for line in _shell_lines(step["run"])
    ]
    doc = _load(GITLAB)
    gitlab_job = doc["twin-runbook"]
    gitlab = [
        line
        for script in [*gitlab_job["script"], *gitlab_job["after_script"]]
        for line in _shell_lines(script)
    ]
    assert github == gitlab
    assert github_job["env"]["RUN_DIR"] == gitlab_job["variables"]["RUN_DIR"]
    assert gitlab_job["artifacts"]["when"] == "always"


# The pull-request job itself runs here as written in tests/test_runner_e2e.py (`full_run`), whose one
# run of the whole runbook also serves the summary, report and secret checks.
