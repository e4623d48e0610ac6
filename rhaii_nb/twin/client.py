"""Start, find and stop the twin daemon from Python: ``ensure_twin(...) -> TwinHandle``.

``ensure_twin`` is idempotent: a twin already running in the home is reused when its settings
(time scale, scenarios, cluster) match, and refused with a message naming the difference otherwise.
The daemon runs detached (its own session), logging to ``twin.log`` in the home.
"""

from __future__ import annotations

import fcntl
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rhaii_nb.twin.home import CONTEXT_NAME, TwinHome, pid_alive

START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 15.0
POLL_SECONDS = 0.05


class TwinError(RuntimeError):
    """The twin could not be started, found or stopped; the message says what to do."""


@dataclass
class TwinHandle:
    """A running twin: where it lives and how to reach it."""

    home: Path
    endpoints: dict[str, Any] = field(default_factory=dict)

    @property
    def kubeconfig(self) -> Path:
        """The kubeconfig (context ``rhaii-twin``)."""
        return self.home / "kubeconfig"

    @property
    def ca_cert(self) -> Path:
        """The twin CA certificate."""
        return self.home / "ca.crt"

    @property
    def pid(self) -> int | None:
        """The daemon's pid."""
        return self.endpoints.get("pid")

    def alive(self) -> bool:
        """Whether the daemon process still runs."""
        return self.pid is not None and pid_alive(int(self.pid))

    def api_client(self) -> Any:
        """A ``kubernetes.client.ApiClient`` configured from the twin's kubeconfig."""
        from kubernetes import config

        return config.new_client_from_config(str(self.kubeconfig), context=CONTEXT_NAME)

    def admin(self, method: str, path: str, json: Any = None, timeout: float = 30.0) -> Any:
        """Call an admin path of the Kubernetes API (``/twin/v1/...``) with the twin's token.

        Returns the ``httpx.Response``; raises ``httpx.HTTPStatusError`` on an error status.
        """
        import httpx

        token = TwinHome(self.home).token()
        response = httpx.request(
            method,
            self.endpoints["kubernetes"] + path,
            json=json,
            headers={"Authorization": f"Bearer {token}"},
            verify=ssl.create_default_context(cafile=str(self.ca_cert)),
            timeout=timeout,
        )
        response.raise_for_status()
        return response

    def set_scenarios(self, names: Iterable[str]) -> list[str]:
        """Switch the failure scenarios on the running twin (the others off)."""
        result = self.admin("PUT", "/twin/v1/scenarios", json={"scenarios": sorted(names)}).json()
        self.endpoints["scenarios"] = result["scenarios"]
        return result["scenarios"]

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> bool:
        """Stop the daemon (SIGTERM, SIGKILL after ``timeout``); returns whether one was running."""
        return stop_twin(self.home, timeout=timeout)


def _probe(url: str | None, ca: Path, timeout: float = 2.0) -> bool:
    """Whether ``url``/healthz answers ``ok`` (HTTP or HTTPS with the twin CA)."""
    if not url:
        return False
    import httpx

    try:
        verify = ssl.create_default_context(cafile=str(ca)) if url.startswith("https") else True
        response = httpx.get(url + "/healthz", verify=verify, timeout=timeout)
    except (httpx.HTTPError, OSError):
        return False
    return response.status_code == 200


def health(home: TwinHome, endpoints: dict[str, Any]) -> dict[str, bool]:
    """Whether each of the twin's servers answers its health check."""
    return {
        name: _probe(endpoints.get(name), home.ca_crt)
        for name in ("kubernetes", "gke", "gateway")
        if endpoints.get(name)
    }


def find_twin(home: Path | str | None = None) -> TwinHandle | None:
    """The twin running in ``home``, or None (stale pid/endpoints files do not count)."""
    twin_home = TwinHome.at(home)
    pid = twin_home.live_pid()
    endpoints = twin_home.read_endpoints()
    if pid is None or endpoints is None or endpoints.get("pid") != pid:
        return None
    return TwinHandle(twin_home.root, endpoints)


def settings_difference(
    endpoints: dict[str, Any], time_scale: float, scenarios: Sequence[str], cluster: str | None
) -> list[str]:
    """How a running twin's settings differ from the requested ones (empty when they match)."""
    differences = []
    if abs(float(endpoints.get("time_scale", 1.0)) - float(time_scale)) > 1e-12:
        differences.append(f"time scale {endpoints.get('time_scale')} (asked {time_scale})")
    running = sorted(endpoints.get("scenarios") or [])
    if running != sorted(set(scenarios)):
        differences.append(f"scenarios {running or 'none'} (asked {sorted(set(scenarios)) or 'none'})")
    if cluster and endpoints.get("cluster") not in (None, cluster):
        differences.append(f"cluster {endpoints.get('cluster')} (asked {cluster})")
    return differences


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _spawn(
    home: TwinHome, cluster: str | None, time_scale: float, scenarios: Sequence[str]
) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "rhaii_nb.twin.daemon",
        "--home",
        str(home.root),
        "--time-scale",
        repr(time_scale),
    ]
    if cluster:
        command += ["--cluster", cluster]
    for name in scenarios:
        command += ["--scenario", name]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(home.log_file, "ab") as log:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            env=env,
            close_fds=True,
        )


def ensure_twin(
    home: Path | str | None = None,
    cluster: str | None = None,
    time_scale: float = 1.0,
    scenarios: Sequence[str] = (),
    timeout: float = START_TIMEOUT_SECONDS,
) -> TwinHandle:
    """The twin running in ``home`` (default ``$RHAII_TWIN_HOME`` or ``~/.cache/rhaii-nb/twin``),
    started with these settings if none runs; ``TwinError`` when a running one has other settings."""
    from rhaii_nb.scenarios import SCENARIOS

    unknown = sorted(set(scenarios) - set(SCENARIOS))
    if unknown:
        raise TwinError(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(sorted(SCENARIOS))}")
    if time_scale <= 0:
        raise TwinError(f"time_scale must be > 0, got {time_scale}")
    twin_home = TwinHome.at(home)
    # Callers racing on one home (parallel test workers, two notebooks) start one daemon between them.
    with open(twin_home.root / ".start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _find_or_start(twin_home, cluster, time_scale, scenarios, timeout)


def _find_or_start(
    twin_home: TwinHome, cluster: str | None, time_scale: float, scenarios: Sequence[str], timeout: float
) -> TwinHandle:
    running = find_twin(twin_home.root)
    if running is not None:
        differences = settings_difference(running.endpoints, time_scale, scenarios, cluster)
        if differences:
            raise TwinError(
                f"a twin already runs in {twin_home.root} with other settings: {'; '.join(differences)}. "
                f"Stop it first: rhaii-nb twin down --home {twin_home.root}"
            )
        return running
    process = _spawn(twin_home, cluster, time_scale, list(scenarios))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = process.poll()
        if code is not None:
            raise TwinError(
                f"the twin exited with status {code} during start-up; end of {twin_home.log_file}:\n"
                + _tail(twin_home.log_file)
            )
        endpoints = twin_home.read_endpoints()
        if endpoints and endpoints.get("pid") == process.pid and twin_home.read_pid() == process.pid:
            handle = TwinHandle(twin_home.root, endpoints)
            if any(health(twin_home, endpoints).values()):
                return handle
        time.sleep(POLL_SECONDS)
    _terminate(process.pid, STOP_TIMEOUT_SECONDS)
    raise TwinError(
        f"the twin did not answer within {timeout:.0f} s (no endpoints.json with its pid, or no server "
        f"answering /healthz); end of {twin_home.log_file}:\n" + _tail(twin_home.log_file)
    )


def _terminate(pid: int, timeout: float) -> None:
    """SIGTERM ``pid``, wait up to ``timeout``, then SIGKILL it."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(POLL_SECONDS)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    for _ in range(100):
        if not pid_alive(pid):
            return
        time.sleep(POLL_SECONDS)


def stop_twin(home: Path | str | None = None, timeout: float = STOP_TIMEOUT_SECONDS) -> bool:
    """Stop the twin running in ``home``; returns whether one was running."""
    twin_home = TwinHome.at(home)
    pid = twin_home.live_pid()
    if pid is None:
        twin_home.remove_pid()
        return False
    _terminate(pid, timeout)
    twin_home.remove_pid(pid)
    return True
