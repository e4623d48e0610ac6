"""The runner end to end on the twin: the whole runbook with params/ci.yaml, and a failing run resumed.

- The full run uses the CI params with *sentinel* secret files: afterwards no sentinel value (nor its
  base64 form) may appear in any executed notebook, record, summary or report page.
- The failing run stages the ``quota-short`` scenario: preflight fails on TPU quota; the runner stops
  there with one readable message and exit status 1; resuming with a pool that fits the quota
  continues from the failed notebook.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CI_PARAMS = REPO / "params" / "ci.yaml"
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


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory):
    """The whole runbook on its own twin with the CI params and sentinel secrets."""
    from rhaii_nb.runner import RunOptions, run_runbook

    base = tmp_path_factory.mktemp("e2e")
    params_file = _write_sentinel_params(base)
    run_dir = base / "run"
    lines: list[str] = []
    try:
        summary = run_runbook(
            RunOptions(params_file=params_file, output=run_dir, progress=False), echo=lines.append
        )
        yield summary, run_dir, "\n".join(lines)
    finally:
        _stop_twin(run_dir)


def test_full_run_passes_with_every_criterion_met(full_run):
    summary, run_dir, log = full_run
    assert summary.ok, f"the runbook failed:\n{summary.failure_message()}\n{log[-3000:]}"
    data = json.loads((run_dir / "summary.json").read_text())
    assert data["status"] == "passed"
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


def test_full_run_leaves_a_report_with_every_notebook(full_run):
    summary, run_dir, _ = full_run
    index = (run_dir / "index.html").read_text()
    for nb in summary.notebooks:
        assert f'href="html/{nb.name}.html"' in index
        page = (run_dir / "html" / f"{nb.name}.html").read_text()
        assert "https://cdn.plot.ly" not in page, f"{nb.name}.html loads plotly.js from the internet"
    assert (run_dir / "html" / "plotly.min.js").stat().st_size > 1_000_000


def test_no_secret_value_in_notebooks_records_or_report(full_run):
    _, run_dir, log = full_run
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
def test_full_run_report_charts_render_in_chromium(full_run):
    from chromium import rendered_dom

    _, run_dir, _ = full_run
    dom = rendered_dom(run_dir / "html" / "10_cache_behaviour.html")
    assert dom.count("js-plotly-plot") >= 5 and "main-svg" in dom
