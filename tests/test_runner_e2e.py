"""The runner end to end on the twin: the CI template's twin job (the whole runbook with params/ci.yaml),
and a failing run resumed.

- The full run uses the CI params with *sentinel* secret files: afterwards no sentinel value (nor its
  base64 form) may appear in any executed notebook, record, summary or report page.
- The failing run stages the ``quota-short`` scenario: preflight fails on TPU quota; the runner stops
  there with one readable message and exit status 1; resuming with a pool that fits the quota
  continues from the failed notebook.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CI_PARAMS = REPO / "params" / "ci.yaml"
GITHUB_TEMPLATE = REPO / "ci" / "github-actions.yml"
SENTINEL_TOKEN = "hf_Sentinel" + uuid.uuid4().hex  # token-shaped, unique to this test run
SENTINEL_PASSWORD = "sentinel-password-" + uuid.uuid4().hex[:12]

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


def _write_sentinel_params(directory: Path) -> Path:
    """params/ci.yaml with the two secret files replaced by files holding sentinel values."""
    auth = base64.b64encode(f"sentinel-user:{SENTINEL_PASSWORD}".encode()).decode()
    dockerconfig = json.dumps({"auths": {"registry.redhat.io": {"auth": auth, "email": "s@example.invalid"}}})
    hf = directory / "hf-token.yaml"
    hf.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "huggingface-token"},
                "type": "Opaque",
                "stringData": {"token": SENTINEL_TOKEN},
            }
        )
    )
    pull = directory / "pull-secret.yaml"
    pull.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "rhaiis-pull-secret"},
                "type": "kubernetes.io/dockerconfigjson",
                "data": {".dockerconfigjson": base64.b64encode(dockerconfig.encode()).decode()},
            }
        )
    )
    params = yaml.safe_load(CI_PARAMS.read_text())
    params.update(hf_token_file=str(hf), pull_secret_file=str(pull))
    path = directory / "ci-sentinel.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def _forbidden_strings() -> list[str]:
    auth = base64.b64encode(f"sentinel-user:{SENTINEL_PASSWORD}".encode()).decode()
    return [SENTINEL_TOKEN, SENTINEL_PASSWORD, auth, base64.b64encode(SENTINEL_TOKEN.encode()).decode()]


def _stop_twin(run_dir: Path) -> None:
    from rhaii_nb.twin.client import stop_twin

    stop_twin(run_dir / "twin")


@dataclass
class JobRun:
    """What the CI template's twin job left: its run directory and everything its steps printed."""

    run_dir: Path
    log: str
    failed_steps: list[str]

    @property
    def summary(self) -> dict:
        return json.loads((self.run_dir / "summary.json").read_text())


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory):
    """The whole runbook, run as the CI template's pull-request job runs it, with sentinel secrets.

    The job's ``run:`` steps execute in order with bash and GitHub's ``if: always()`` rule; ``uses:``
    steps (checkout, setup-python, upload-artifact) and the install step are what this checkout and its
    venv already are. Two things differ from CI: the run directory lives in the test's tmp, and the
    secret files are replaced by sentinel ones through ``RHAII_NB_OVERRIDES`` (the job's commands are
    unchanged). One run serves every test below, so the suite pays for the runbook once.
    """
    base = tmp_path_factory.mktemp("e2e")
    sentinel = yaml.safe_load(_write_sentinel_params(base).read_text())
    run_dir = base / "run"
    job = yaml.safe_load(GITHUB_TEMPLATE.read_text())["jobs"]["twin"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RHAII_", "PLOTLY_", "JUPYTER_"))}
    env.update({k: str(v) for k, v in job["env"].items()})
    env["RUN_DIR"] = str(run_dir)
    env["RHAII_NB_OVERRIDES"] = json.dumps(
        {"hf_token_file": sentinel["hf_token_file"], "pull_secret_file": sentinel["pull_secret_file"]}
    )
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    failed: list[str] = []
    outputs: list[str] = []
    try:
        for step in job["steps"]:
            if "run" not in step or step.get("id") == "install":
                continue
            if failed and step.get("if") != "always()":
                continue
            result = subprocess.run(
                ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
                cwd=REPO,
                env=env,
                capture_output=True,
                text=True,
                timeout=840,
            )
            outputs.append(f"--- {step['name']} (exit {result.returncode})\n{result.stdout}{result.stderr}")
            if result.returncode != 0:
                failed.append(step["name"])
        yield JobRun(run_dir, "\n".join(outputs), failed)
    finally:
        _stop_twin(run_dir)


def test_the_ci_twin_job_runs_here_as_written(full_run: JobRun):
    assert not full_run.failed_steps, f"steps failed: {full_run.failed_steps}\n{full_run.log[-6000:]}"
    assert (full_run.run_dir / "twin" / "token").is_file(), "the artifact's exclusions name files that exist"
    from rhaii_nb.twin.client import find_twin

    assert find_twin(full_run.run_dir / "twin") is None, "the twin still runs after the job's last step"


def test_full_run_passes_with_every_criterion_met(full_run: JobRun):
    data, log = full_run.summary, full_run.log
    assert data["status"] == "passed", f"the runbook failed:\n{data.get('failure')}\n{log[-3000:]}"
    names = [nb["name"] for nb in data["notebooks"]]
    assert names[0] == "00_preflight" and names[-1] == "99_teardown", names
    for nb in data["notebooks"]:
        assert nb["status"] in ("passed", "skipped"), nb
        assert nb["criteria"], f"{nb['name']} recorded no success criteria"
        for criterion in nb["criteria"]:
            assert criterion["passed"] or criterion["skipped"], (nb["name"], criterion)
    figures = {nb["name"]: nb["figures"] for nb in data["notebooks"]}
    assert figures["04_inference_service"] == ["vLLM pod lifecycle"]
    assert len(figures["09_performance"]) == 3 and len(figures["10_cache_behaviour"]) == 5
    assert data["cost"] and data["cost"]["node_hours"] > 0, data["cost"]
    assert "[1/" in log and "✅ 99_teardown passed" in log


def test_full_run_leaves_a_report_with_every_notebook(full_run: JobRun):
    run_dir = full_run.run_dir
    index = (run_dir / "index.html").read_text()
    for nb in full_run.summary["notebooks"]:
        assert f'href="html/{nb["name"]}.html"' in index
        page = (run_dir / "html" / f"{nb['name']}.html").read_text()
        assert "https://cdn.plot.ly" not in page, f"{nb['name']}.html loads plotly.js from the internet"
    assert (run_dir / "html" / "plotly.min.js").stat().st_size > 1_000_000


def test_no_secret_value_in_notebooks_records_or_report(full_run: JobRun):
    run_dir, log = full_run.run_dir, full_run.log
    checked = 0
    for path in run_dir.rglob("*"):
        if not path.is_file() or "twin" in path.relative_to(run_dir).parts or path.name == "plotly.min.js":
            continue  # the twin's own state holds the Secret objects, as a real cluster does
        text = path.read_text(errors="replace")
        checked += 1
        for secret in _forbidden_strings():
            assert secret not in text, f"a secret value leaked into {path.relative_to(run_dir)}"
    assert checked >= 3 * 12, f"only {checked} files checked"
    for secret in _forbidden_strings():
        assert secret not in log


def _cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rhaii_nb", "run", "--no-progress", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_failing_criterion_stops_the_run_and_resume_continues(tmp_path: Path):
    run_dir = tmp_path / "run"
    try:
        failed = _cli(
            "--params",
            str(CI_PARAMS),
            "--only",
            "00,01",
            "--scenario",
            "quota-short",
            "--output",
            str(run_dir),
        )
        assert failed.returncode == 1, failed.stdout[-3000:] + failed.stderr[-2000:]
        out = failed.stdout
        assert "00_preflight failed at cell" in out and "(step: Success criteria)" in out, out[-3000:]
        assert "CriteriaFailed" in out and "TPU v6e quota" in out, out[-3000:]
        assert f"rhaii-nb run --resume {run_dir}" in out
        data = json.loads((run_dir / "summary.json").read_text())
        assert data["status"] == "failed"
        assert [nb["status"] for nb in data["notebooks"]] == ["failed", "not-run"]
        quota = next(c for c in data["notebooks"][0]["criteria"] if c["name"] == "TPU v6e quota")
        assert quota["passed"] is False

        # The fix: a pool that fits the 8-chip quota (2 nodes x 4 chips, one replica each).
        resumed = _cli("--resume", str(run_dir), "-p", "num_nodes=2", "-p", "replicas=2")
        assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-2000:]
        data = json.loads((run_dir / "summary.json").read_text())
        assert data["status"] == "passed"
        assert [nb["status"] for nb in data["notebooks"]] == ["passed", "passed"]
        nodes = next(c for c in data["notebooks"][1]["criteria"] if c["name"] == "TPU nodes Ready")
        assert nodes["measured"] == 2 and nodes["passed"] is True
    finally:
        _stop_twin(run_dir)


@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="chromium is not installed (apt-get install chromium)"
)
def test_full_run_report_charts_render_in_chromium(full_run: JobRun):
    from chromium import rendered_dom

    run_dir = full_run.run_dir
    dom = rendered_dom(run_dir / "html" / "10_cache_behaviour.html")
    assert dom.count("js-plotly-plot") >= 5 and "main-svg" in dom
