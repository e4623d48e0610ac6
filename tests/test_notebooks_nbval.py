"""nbval over the runbook's notebooks, in order, as stored, against a twin this test starts.

nbval runs notebooks exactly as stored (no papermill parameters), so the stored defaults target the
twin (``params/local.yaml``) and this test redirects them to its own twin with the environment
variable ``RHAII_NB_OVERRIDES`` (read by ``load_params``), which the notebook kernels inherit.
The notebooks that create or change something run twice in a row: a re-run on the same twin must
pass too (idempotent). Teardown runs last, twice.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
# Each entry runs once per occurrence, in this order (pytest --keep-duplicates).
ORDER = [
    "00_preflight",
    "01_cluster",
    "01_cluster",
    "02_namespace_secrets",
    "02_namespace_secrets",
    "03_operators",
    "03_operators",
    "04_inference_service",
    "04_inference_service",
    "05_epp_sidecar",
    "05_epp_sidecar",
    "06_envoyfilters",
    "06_envoyfilters",
    "07_network_policies",
    "07_network_policies",
    "08_verify",
    "09_performance",
    "10_cache_behaviour",
    "99_teardown",
    "99_teardown",
]
# The twin fast, the load tests light: this checks that the notebooks work, not how fast the twin is.
OVERRIDES = {
    "time_scale": 0.002,
    "cache_test_requests": 4,
    "load_requests": 16,
    "load_concurrency": 6,
    "load_max_duration_s": 60,
    "confirm_delete": True,
}

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]


@pytest.fixture(scope="module")
def twin_home(tmp_path_factory: pytest.TempPathFactory):
    """A twin started by this test (the notebooks' ``connect`` finds it through ``twin_home``)."""
    pytest.importorskip("nbval", reason="nbval is not installed (pip install -e '.[test]')")
    from rhaii_nb.twin.client import ensure_twin

    home = tmp_path_factory.mktemp("nbval-twin")
    handle = ensure_twin(home=home, time_scale=OVERRIDES["time_scale"])
    try:
        yield home
    finally:
        handle.stop()


def test_notebooks_pass_in_order_and_again(twin_home: Path):
    paths = [str(NOTEBOOKS / f"{name}.ipynb") for name in ORDER]
    missing = [p for p in paths if not Path(p).exists()]
    assert not missing, f"notebooks missing: {missing}"
    env = dict(os.environ, RHAII_NB_OVERRIDES=json.dumps({**OVERRIDES, "twin_home": str(twin_home)}))
    env.pop("RHAII_NB_RECORD", None)
    command = [
        sys.executable,
        "-m",
        "pytest",
        "--nbval-lax",
        "--nbval-current-env",
        "--nbval-cell-timeout=600",
        "--keep-duplicates",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:xdist",
        "-x",
        "-q",
        *paths,
    ]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=1150)
    report = done.stdout[-6000:] + done.stderr[-2000:]
    assert done.returncode == 0, f"nbval failed (exit {done.returncode}):\n{report}"
    # Every code cell of every run counted as a passing test item.
    assert " passed" in done.stdout and " failed" not in done.stdout, report
