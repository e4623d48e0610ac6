"""``rhaii-nb twin up/status/down`` as a user runs them: a detached daemon, its files, idempotent
``up``, a clean ``down`` without orphans, the snapshot across a restart, runtime scenarios."""

from __future__ import annotations

import json
import os
import ssl
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from kubernetes import client as k8s

from rhaii_nb.twin.client import find_twin
from rhaii_nb.twin.home import pid_alive

pytestmark = pytest.mark.timeout(120)


def rhaii_nb(*args: str, home: Path) -> subprocess.CompletedProcess:
    """Run the CLI in a subprocess, as a user would."""
    env = {**os.environ, "RHAII_TWIN_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "rhaii_nb", *args], capture_output=True, text=True, timeout=90, env=env
    )


def test_up_status_down_lifecycle(tmp_path: Path) -> None:
    home = tmp_path / "twin"
    started = rhaii_nb("twin", "up", "--time-scale", "0.01", home=home)
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        endpoints = json.loads((home / "endpoints.json").read_text())
        assert set(endpoints) >= {"kubernetes", "gke", "gateway", "pid", "time_scale", "scenarios"}
        assert endpoints["kubernetes"].startswith("https://127.0.0.1:")
        assert endpoints["time_scale"] == 0.01
        pid = endpoints["pid"]
        assert pid_alive(pid) and int((home / "twin.pid").read_text()) == pid
        for secret_file in ("token", "ca.key", "kubeconfig"):
            assert stat.S_IMODE((home / secret_file).stat().st_mode) == 0o600, secret_file
        token = (home / "token").read_text().strip()
        assert token not in json.dumps(endpoints) and token not in started.stdout
        assert (home / "ca.crt").read_text().startswith("-----BEGIN CERTIFICATE-----")
        kubeconfig = (home / "kubeconfig").read_text()
        assert "current-context: rhaii-twin" in kubeconfig and str(home / "ca.crt") in kubeconfig

        again = rhaii_nb("twin", "up", "--time-scale", "0.01", home=home)
        assert again.returncode == 0 and "already running" in again.stdout
        assert json.loads((home / "endpoints.json").read_text())["pid"] == pid

        different = rhaii_nb("twin", "up", "--time-scale", "0.01", "--scenario", "api-flaky", home=home)
        assert different.returncode == 1
        assert "other settings" in different.stdout and "twin down" in different.stdout

        status = rhaii_nb("twin", "status", home=home)
        assert status.returncode == 0
        assert endpoints["gke"] in status.stdout and str(pid) in status.stdout
    finally:
        stopped = rhaii_nb("twin", "down", home=home)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert not pid_alive(pid), "the daemon outlived twin down"
    assert not (home / "twin.pid").exists()
    assert rhaii_nb("twin", "status", home=home).returncode == 1
    assert "no twin was running" in rhaii_nb("twin", "down", home=home).stdout


def test_restart_keeps_objects_and_scenarios_switch_at_runtime(tmp_path: Path) -> None:
    from rhaii_nb.twin.client import ensure_twin

    home = tmp_path / "twin"
    handle = ensure_twin(home=home, cluster="c1", time_scale=0.01)
    try:
        api = handle.api_client()
        k8s.CoreV1Api(api).create_namespace({"metadata": {"name": "kept"}})
        api.close()
        assert handle.set_scenarios(["api-flaky"]) == ["api-flaky"]
        assert json.loads((home / "endpoints.json").read_text())["scenarios"] == ["api-flaky"]
        with pytest.raises(httpx.HTTPStatusError) as refused:
            handle.admin("PUT", "/twin/v1/scenarios", json={"scenarios": ["no-such-thing"]})
        assert refused.value.response.status_code == 400
        assert "unknown scenario(s) no-such-thing" in refused.value.response.json()["message"]
        handle.set_scenarios([])
    finally:
        assert handle.stop()
    assert (home / "snapshot.json").exists()
    restarted = ensure_twin(home=home, cluster="c1", time_scale=0.01)
    try:
        assert find_twin(home) is not None
        api = restarted.api_client()
        names = [ns.metadata.name for ns in k8s.CoreV1Api(api).list_namespace().items]
        api.close()
        assert "kept" in names
        # The restored store has no history before its resourceVersion: an older watch gets 410 Gone,
        # as an ERROR event in a 200 stream like the real server sends it.
        token = (home / "token").read_text().strip()
        response = httpx.get(
            restarted.endpoints["kubernetes"] + "/api/v1/namespaces?watch=1&resourceVersion=1",
            headers={"Authorization": f"Bearer {token}"},
            verify=ssl.create_default_context(cafile=str(home / "ca.crt")),
        )
        assert response.status_code == 200
        event = json.loads(response.text.splitlines()[0])
        assert event["type"] == "ERROR"
        assert event["object"]["code"] == 410 and event["object"]["reason"] == "Expired"
    finally:
        restarted.stop()


def test_concurrent_ensure_twin_calls_share_one_daemon(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from rhaii_nb.twin.client import ensure_twin

    home = tmp_path / "twin"
    with ThreadPoolExecutor(max_workers=3) as pool:
        handles = list(pool.map(lambda _: ensure_twin(home=home, time_scale=0.01), range(3)))
    try:
        assert len({h.pid for h in handles}) == 1
    finally:
        assert handles[0].stop()
    assert not any(h.alive() for h in handles)
