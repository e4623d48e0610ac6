"""Shared fixtures: one twin daemon per test session (per xdist worker), its clients and kubectl.

- ``twin``: a ``TwinHandle`` of a daemon started in a temporary home with the guide's cluster
  (so the Kubernetes API is up) and a fast time scale; stopped at the end of the session.
- ``kube_client``: an official ``kubernetes.client.ApiClient`` from the twin's kubeconfig.
- ``kubectl``: runs ``kubectl --kubeconfig <twin> --cache-dir <tmp> ...`` and returns the
  ``CompletedProcess``; skips the test when kubectl is not installed.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

TWIN_CLUSTER = "rhaii-tpu-scaleout-cluster"
TWIN_TIME_SCALE = 0.002


@pytest.fixture(scope="session")
def twin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A running twin daemon (own home, the guide's cluster created, time scale 0.002)."""
    from rhaii_nb.twin.client import ensure_twin

    handle = ensure_twin(
        home=tmp_path_factory.mktemp("twin-home"), cluster=TWIN_CLUSTER, time_scale=TWIN_TIME_SCALE
    )
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture(scope="session")
def kube_client(twin: Any) -> Iterator[Any]:
    """``kubernetes.client.ApiClient`` configured from the twin's kubeconfig."""
    client = twin.api_client()
    try:
        yield client
    finally:
        client.close()


class Kubectl:
    """kubectl bound to the twin's kubeconfig and a private discovery cache."""

    def __init__(self, binary: str, kubeconfig: Path, cache_dir: Path) -> None:
        self.binary = binary
        self.kubeconfig = kubeconfig
        self.cache_dir = cache_dir

    def argv(self, *args: str) -> list[str]:
        """The full command line for ``args``."""
        return [self.binary, "--kubeconfig", str(self.kubeconfig), "--cache-dir", str(self.cache_dir), *args]

    def __call__(
        self, *args: str, input: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess:
        """Run kubectl and capture its output (text)."""
        return subprocess.run(self.argv(*args), input=input, capture_output=True, text=True, timeout=timeout)

    def popen(self, *args: str) -> subprocess.Popen:
        """Start a long-running kubectl (``get -w``, ``logs -f``, ``wait``) with piped text output."""
        return subprocess.Popen(self.argv(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="session")
def kubectl(twin: Any, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    """A ``Kubectl`` runner for the twin; skips when the kubectl binary is absent."""
    binary = shutil.which("kubectl")
    if binary is None:
        pytest.skip("kubectl is not installed: the kubectl conformance tests need it on PATH")
    return Kubectl(binary, twin.kubeconfig, tmp_path_factory.mktemp("kubectl-cache"))
