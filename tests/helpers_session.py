"""Fixtures for the helper tests: a private twin (own home, no cluster yet) and a session on it.

Each test module that imports these gets its own twin daemon (module scope), so creating and
deleting the cluster never disturbs the shared ``twin`` fixture of other tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]
TIME_SCALE = 0.002


def start_twin(home: Path, **overrides: Any) -> tuple[Any, Any, Any]:
    """(handle, session, params) for a fresh twin in ``home``."""
    from rhaii_nb.params import load_params
    from rhaii_nb.session import connect

    params = load_params(
        REPO / "params" / "local.yaml", {"twin_home": str(home), "time_scale": TIME_SCALE, **overrides}
    )
    session = connect(params)
    return session.twin, session, params


@pytest.fixture(scope="module")
def twin_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any]]:
    """(session, params) on a private twin with no cluster."""
    pytest.importorskip(
        "rhaii_nb.twin.client", reason="the twin daemon client (helper A2) is not written yet"
    )
    from rhaii_nb.session import forget_sessions

    handle, session, params = start_twin(tmp_path_factory.mktemp("twin"))
    try:
        yield session, params
    finally:
        forget_sessions()
        handle.stop()


@dataclass
class TwinAdmin:
    """The twin's admin calls (not Google's API) used to stage conditions in tests."""

    gke_url: str

    def set_tpu_quota(self, region: str, chips: int) -> None:
        """Set the region's TPU v6e chip quota."""
        response = httpx.put(f"{self.gke_url}/twin/v1/tpu-quota", json={"region": region, "chips": chips})
        response.raise_for_status()


@pytest.fixture(scope="module")
def twin_admin(twin_session: tuple[Any, Any]) -> TwinAdmin:
    """Admin calls on the module's twin."""
    session, _ = twin_session
    return TwinAdmin(session.twin.endpoints["gke"])
