"""`rhaii-nb lab` for real: Lab on a free port, notebooks listed through the Jupyter server's REST API,
a kernel of the registered name running the first notebook's cells over the kernel websocket, the
later notebooks' set-up cells naming the notebook to run first, and a Ctrl-C that leaves no process
behind (Lab, kernel, twin).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import nbformat
import psutil
import pytest
import yaml

from rhaii_nb.runner import KERNEL_NAME, discover_notebooks

ROOT = Path(__file__).resolve().parents[1]
RHAII_NB = Path(sys.executable).parent / "rhaii-nb"
CI_PARAMS = ROOT / "params" / "ci.yaml"
CELL_TIMEOUT_S = 240.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LabProcess:
    """``rhaii-nb lab`` as a user starts it, with its stdout read line by line in the background."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [str(RHAII_NB), "lab", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for_line(self, needle: str, timeout: float) -> str:
        """The first output line containing ``needle``; fails with all output so far otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
            if needle in line:
                return line
        pytest.fail(
            f"`rhaii-nb lab` printed no line with {needle!r} in {timeout:.0f} s:\n" + "\n".join(self.seen)
        )

    def rest(self) -> str:
        """Everything printed after what was already read (the process must have exited)."""
        while (line := self.lines.get(timeout=10)) is not None:
            self.seen.append(line)
        return "\n".join(self.seen)

    def kill(self) -> None:
        """Last resort for a failed test: stop it and everything it started."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


class KernelChannel:
    """A kernel's websocket (``/api/kernels/<id>/channels``) speaking the Jupyter messaging protocol."""

    def __init__(self, ws_url: str, token: str) -> None:
        import websocket

        self.ws = websocket.create_connection(ws_url, header=[f"Authorization: token {token}"], timeout=30)
        self.session_id = uuid.uuid4().hex

    def execute(self, code: str, timeout: float = CELL_TIMEOUT_S) -> dict[str, Any]:
        """Run ``code``; returns {status, stdout, outputs, error}; waits for the reply and idle."""
        import websocket

        msg_id = uuid.uuid4().hex
        self.ws.send(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id,
                        "msg_type": "execute_request",
                        "username": "test",
                        "session": self.session_id,
                        "version": "5.3",
                        "date": "",
                    },
                    "parent_header": {},
                    "metadata": {},
                    "content": {
                        "code": code,
                        "silent": False,
                        "store_history": True,
                        "user_expressions": {},
                        "allow_stdin": False,
                        "stop_on_error": True,
                    },
                    "channel": "shell",
                    "buffers": [],
                }
            )
        )
        result: dict[str, Any] = {"status": None, "stdout": "", "outputs": [], "error": None}
        idle = False
        deadline = time.monotonic() + timeout
        while result["status"] is None or not idle:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"no execute_reply/idle within {timeout:.0f} s for:\n{code}\nso far: {result}")
            self.ws.settimeout(remaining)
            try:
                msg = json.loads(self.ws.recv())
            except websocket.WebSocketTimeoutException:
                continue
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["header"]["msg_type"], msg["content"]
            if kind == "execute_reply":
                result["status"] = content["status"]
            elif kind == "status" and content["execution_state"] == "idle":
                idle = True
            elif kind == "stream" and content["name"] == "stdout":
                result["stdout"] += content["text"]
            elif kind in ("display_data", "execute_result", "update_display_data"):
                result["outputs"].append(content)
            elif kind == "error":
                result["error"] = f"{content['ename']}: {content['evalue']}\n" + "\n".join(
                    content["traceback"]
                )
        return result

    def close(self) -> None:
        """Close the websocket."""
        self.ws.close()


def _check_out_of_order_messages(api: httpx.Client, channel: KernelChannel, notebooks: list[str]) -> None:
    """A trainee opening a later notebook first: its set-up cell stops and names the notebook to run.

    The twin has no cluster yet (only 00 ran), so every notebook that builds on earlier phases must
    point at 01_cluster, whichever phase it requires.
    """
    checked = []
    for name in notebooks:
        nb = nbformat.reads(json.dumps(api.get(f"/api/contents/{name}").json()["content"]), as_version=4)
        code = [cell.source for cell in nb.cells if cell.cell_type == "code"]
        setup = next((i for i, source in enumerate(code) if "require(" in source), None)
        if setup is None:
            continue
        for source in code[:setup]:
            assert channel.execute(source)["status"] == "ok", f"{name}: a cell before the set-up failed"
        result = channel.execute(code[setup])
        assert result["status"] == "error", f"{name} ran its set-up cell without the cluster"
        assert "PhaseNotDone" in result["error"] and "run 01_cluster first" in result["error"], (
            f"{name}: {result['error'][:400]}"
        )
        checked.append(name)
    assert len(checked) >= len(notebooks) // 2, f"only {checked} check their preconditions"


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.timeout(600)
def test_lab_serves_the_notebooks_runs_the_first_one_in_the_kernel_and_stops_cleanly(tmp_path):
    port = _free_port()
    twin_home = tmp_path / "twin"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RHAII_", "PLOTLY_", "JUPYTER_"))}
    env["RHAII_TWIN_HOME"] = str(twin_home)
    lab = LabProcess(["--no-browser", "--port", str(port), "--params", str(CI_PARAMS)], env)
    kernel_pid = twin_pid = None
    started: list[psutil.Process] = []
    try:
        url = lab.wait_for_line(f"http://127.0.0.1:{port}/lab?token=", timeout=150).strip()
        token = url.split("token=", 1)[1]
        started = psutil.Process(lab.process.pid).children(recursive=True)
        twin_pid = json.loads((twin_home / "endpoints.json").read_text())["pid"]
        api = httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"token {token}"}, timeout=30
        )

        assert httpx.get(f"http://127.0.0.1:{port}/api/contents", timeout=30).status_code == 403
        listed = sorted(item["name"] for item in api.get("/api/contents").json()["content"])
        expected = [p.name for p in discover_notebooks()]
        assert expected, "notebooks/ holds no runbook notebooks yet"
        assert set(expected) <= set(listed), f"Lab lists {listed}"
        specs = api.get("/api/kernelspecs").json()["kernelspecs"]
        assert KERNEL_NAME in specs, f"kernel {KERNEL_NAME} is not registered: {sorted(specs)}"

        first = expected[0]
        nb = nbformat.reads(json.dumps(api.get(f"/api/contents/{first}").json()["content"]), as_version=4)
        assert nb.metadata["kernelspec"]["name"] == KERNEL_NAME
        session = api.post(
            "/api/sessions",
            json={"path": first, "name": first, "type": "notebook", "kernel": {"name": KERNEL_NAME}},
        ).json()
        assert session["kernel"]["name"] == KERNEL_NAME
        channel = KernelChannel(
            f"ws://127.0.0.1:{port}/api/kernels/{session['kernel']['id']}/channels", token
        )
        try:
            probe = channel.execute(
                "import os, sys; print(os.getpid()); print(os.environ['PLOTLY_RENDERER'])"
            )
            assert probe["status"] == "ok", probe["error"]
            kernel_pid_text, renderer = probe["stdout"].split()
            kernel_pid = int(kernel_pid_text)
            assert renderer == "plotly_mimetype"
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                result = channel.execute(cell.source)
                assert result["status"] == "ok", f"{first} cell {index} failed:\n{result['error']}"
            # --params reached the kernel: the notebook's own params came from ci.yaml, not local.yaml.
            check = channel.execute("print(params.time_scale, params.twin_home)")
            assert check["status"] == "ok", check["error"]
            ci_time_scale = yaml.safe_load(CI_PARAMS.read_text())["time_scale"]
            assert check["stdout"].split() == [str(ci_time_scale), str(twin_home)]
            _check_out_of_order_messages(api, channel, expected)
        finally:
            channel.close()
            api.close()

        lab.process.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal sends
        assert lab.process.wait(90) == 0, lab.rest()
        output = lab.rest()
        assert "Stopping JupyterLab" in output and "Stopped the twin" in output, output
        log_line = next(line for line in output.splitlines() if line.startswith("Lab log: "))
        lab_dir = Path(log_line.split()[2]).parent
        assert not lab_dir.exists(), f"{lab_dir} (token, cookie secret) is left after a clean stop"
    finally:
        lab.kill()
    left = [p.pid for p in started if _alive(p.pid)]
    left += [pid for pid in (kernel_pid, twin_pid) if pid is not None and _alive(pid)]
    for pid in left:  # never leave them to the next test, but fail below
        psutil.Process(pid).kill()
    assert not left, f"processes left behind after stopping Lab: {left}"
    assert twin_pid is not None and kernel_pid is not None
    with socket.socket() as sock:
        # Free again for a new server (SO_REUSEADDR, as Lab's own: TIME_WAIT left by our clients is fine).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen()


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("args", "named"),
    [(["--params", "{bad}"], "replicas = 'lots'"), (["--scenario", "no-such-scenario"], "unknown scenario")],
    ids=["bad-params-file", "unknown-scenario"],
)
def test_lab_refuses_invalid_params_before_starting_anything(tmp_path, args, named):
    bad = tmp_path / "bad.yaml"
    bad.write_text("target: local\nreplicas: lots\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RHAII_")}
    env["RHAII_TWIN_HOME"] = str(tmp_path / "twin")
    argv = [str(RHAII_NB), "lab", "--no-browser", "--port", str(_free_port())]
    argv += [arg.format(bad=bad) for arg in args]
    result = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=50)
    assert result.returncode == 2, result.stdout + result.stderr
    assert named in result.stdout and "fix:" in result.stdout, result.stdout
    assert not (tmp_path / "twin" / "endpoints.json").exists(), "a twin was started for invalid params"
