"""``rhaii-nb lab``: JupyterLab on the runbook's notebooks, for a live demo or a trainee.

It registers the ``rhaii-nb`` kernel (the notebooks name it, so they open with this environment),
starts the twin when the params target the local machine, launches JupyterLab on ``notebooks/``
bound to 127.0.0.1 with a token, prints the URL and waits. Ctrl-C (or SIGTERM/SIGHUP) stops Lab,
its kernels and — when this command started it — the twin, so nothing is left running.

``--params FILE`` makes every notebook use FILE in place of its default ``../params/local.yaml``, and
``--scenario NAME`` stages a twin failure scenario for training: the validated values reach the
kernels through env ``RHAII_NB_OVERRIDES`` (see ``rhaii_nb.params``); a notebook's own ``overrides``
still win.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import webbrowser
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from rhaii_nb.runner import DEFAULT_PARAMS, KERNEL_NAME, NOTEBOOKS_DIR

LAB_HOST = "127.0.0.1"
DEFAULT_PORT = 8888
# JupyterLab draws plotly's JSON mime type with the jupyterlab-plotly extension the plotly wheel
# installs into this environment: small outputs, no CDN, works offline.
LAB_PLOTLY_RENDERER = "plotly_mimetype"
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 20.0
POLL_S = 0.25


class LabError(RuntimeError):
    """JupyterLab could not be started; the message says why and where its log is."""


class _StopRequested(Exception):
    """SIGTERM or SIGHUP arrived: stop like Ctrl-C does."""


@dataclass
class LabOptions:
    """What ``rhaii-nb lab`` was asked for."""

    port: int = DEFAULT_PORT
    open_browser: bool = True
    params_file: Path | None = None
    scenarios: list[str] = field(default_factory=list)
    keep_twin: bool = False
    notebooks_dir: Path = NOTEBOOKS_DIR


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``lab`` subcommand."""
    parser = subparsers.add_parser(
        "lab",
        help="open the notebooks in JupyterLab (live demo, training)",
        description="Register the rhaii-nb kernel, start the local twin when the params target it, and "
        "run JupyterLab on notebooks/ at http://127.0.0.1:PORT. Ctrl-C stops Lab, its kernels and the "
        "twin this command started.",
    )
    parser.add_argument("--no-browser", action="store_true", help="print the URL, do not open a browser")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"Lab port (default {DEFAULT_PORT})")
    parser.add_argument(
        "--params",
        type=Path,
        metavar="FILE",
        help="params YAML the notebooks use instead of their default ../params/local.yaml",
    )
    parser.add_argument(
        "--scenario",
        action="append",
        default=[],
        metavar="NAME",
        help="train on a twin failure scenario (repeatable; see `rhaii-nb run --scenario`)",
    )
    parser.add_argument(
        "--keep-twin", action="store_true", help="leave the twin running when Lab stops (if this started it)"
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    options = LabOptions(
        port=args.port,
        open_browser=not args.no_browser,
        params_file=args.params,
        scenarios=args.scenario,
        keep_twin=args.keep_twin,
    )
    return run_lab(options)


def run_lab(options: LabOptions, echo: Callable[[str], None] | None = None) -> int:
    """Run Lab until Ctrl-C/SIGTERM/SIGHUP; return 0 after a requested stop, 1 when Lab failed."""
    from rhaii_nb.params import ParamsError, load_params
    from rhaii_nb.runner import _ensure_kernel
    from rhaii_nb.twin.client import TwinError

    echo = echo or partial(print, flush=True)
    if not 1 <= options.port <= 65535:
        echo(f"error: --port must be between 1 and 65535, got {options.port}")
        return 2
    params_file = Path(options.params_file or DEFAULT_PARAMS).resolve()
    overrides = {"scenario": sorted(set(options.scenarios))} if options.scenarios else {}
    try:
        params = load_params(params_file, overrides)
    except ParamsError as exc:
        echo(str(exc))
        return 2
    _ensure_kernel()
    with _stop_signals():
        twin, started_twin = None, False
        server: LabServer | None = None
        stopped_on_request = False
        try:
            if params.target == "local":
                twin, started_twin = _start_twin(params, echo)
            env = lab_environment(params, overrides_from_file=bool(options.params_file or overrides))
            server = LabServer(options.port, options.notebooks_dir, env)
            server.start()
            echo(f"JupyterLab on {options.notebooks_dir} (kernel {KERNEL_NAME}, params {params_file}):")
            echo(f"    {server.url}")
            echo(f"Lab log: {server.log_file} (kept only if Lab fails). Stop with Ctrl-C.")
            if options.open_browser:
                webbrowser.open(server.url)
            status = server.wait()
            echo(f"JupyterLab exited by itself with status {status}; end of its log:\n{server.log_tail()}")
            return 1
        except (KeyboardInterrupt, _StopRequested):
            echo("Stopping JupyterLab ...")
            stopped_on_request = True
            return 0
        except (LabError, TwinError) as exc:
            echo(f"error: {exc}")
            return 1
        finally:
            _ignore_stop_signals()  # a second Ctrl-C must not cut the clean-up short
            if server is not None:
                server.stop(keep_log=not stopped_on_request)
            if twin is not None and started_twin and not options.keep_twin:
                twin.stop()
                echo(f"Stopped the twin in {twin.home}.")
            elif twin is not None:
                echo(f"The twin keeps running: stop it with `rhaii-nb twin down --home {twin.home}`.")


def _start_twin(params: Any, echo: Callable[[str], None]) -> tuple[Any, bool]:
    """The twin for ``params`` (started if none runs) and whether this call started it."""
    from rhaii_nb.twin.client import ensure_twin, find_twin

    already = find_twin(params.twin_home) is not None
    if not already:
        echo(f"Starting the local twin in {params.twin_home} (time scale {params.time_scale}) ...")
    twin = ensure_twin(home=params.twin_home, time_scale=params.time_scale, scenarios=tuple(params.scenario))
    if already:
        echo(f"Using the twin already running in {twin.home}.")
    return twin, not already


def lab_environment(
    params: Any, *, overrides_from_file: bool, base: dict[str, str] | None = None
) -> dict[str, str]:
    """Environment of Lab and so of its kernels: plotly renderer, twin home, params file values."""
    from rhaii_nb.params import OVERRIDES_ENV

    env = dict(os.environ if base is None else base)
    env["PLOTLY_RENDERER"] = LAB_PLOTLY_RENDERER
    if params.target == "local":
        env["RHAII_TWIN_HOME"] = str(params.twin_home)
    if overrides_from_file:
        # Every field, so nothing of the notebooks' default params file survives underneath.
        env[OVERRIDES_ENV] = json.dumps(params.model_dump(mode="json"))
    # A Lab started from inside a headless run must not write into that run's records.
    for key in ("RHAII_NB_RECORD", "RHAII_NB_RUN_DIR"):
        env.pop(key, None)
    return env


def lab_command(port: int, notebooks_dir: Path) -> list[str]:
    """The JupyterLab command line: loopback only, this port or fail, no calls to the internet."""
    return [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        f"--ServerApp.ip={LAB_HOST}",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={notebooks_dir}",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
        # Containers (CI images, dev containers) often run as root; Lab refuses that unless told.
        *(["--ServerApp.allow_root=True"] if os.geteuid() == 0 else []),
    ]


class LabServer:
    """One JupyterLab process in its own session, with its token file and log in a private directory."""

    def __init__(self, port: int, notebooks_dir: Path, env: dict[str, str]) -> None:
        self.port = port
        self.notebooks_dir = notebooks_dir.resolve()
        self.state_dir = Path(tempfile.mkdtemp(prefix="rhaii-nb-lab-"))
        self.log_file = self.state_dir / "lab.log"
        self.token = secrets.token_hex(24)
        self._token_file = self.state_dir / "token"
        self.env = env
        self.process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{LAB_HOST}:{self.port}"

    @property
    def url(self) -> str:
        """The URL to open (with the token)."""
        return f"{self.base_url}/lab?token={self.token}"

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        """Start Lab and wait until its REST API answers; ``LabError`` with the log tail otherwise."""
        if not self.notebooks_dir.is_dir():
            raise LabError(f"{self.notebooks_dir} does not exist: run from a checkout of rhaii-notebooks")
        fd = os.open(self._token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(self.token)
        # The token's value travels in a file: not on the command line, not in the kernels' environment.
        env = {
            **self.env,
            "JUPYTER_TOKEN_FILE": str(self._token_file),
            # Connection files and the cookie secret stay in our private directory.
            "JUPYTER_RUNTIME_DIR": str(self.state_dir / "runtime"),
        }
        env.pop("JUPYTER_TOKEN", None)
        with open(self.log_file, "ab") as log:
            self.process = subprocess.Popen(
                lab_command(self.port, self.notebooks_dir),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env,
                cwd=self.notebooks_dir,
                start_new_session=True,  # the terminal's Ctrl-C reaches us; we stop Lab in order
            )
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise LabError(
                    f"JupyterLab exited with status {self.process.returncode} during start-up "
                    f"(port {self.port} in use?); end of {self.log_file}:\n{self.log_tail()}"
                )
            try:
                response = httpx.get(f"{self.base_url}/api/status", headers=self.auth_headers(), timeout=5.0)
                if response.status_code == 200:
                    return
                last_error = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                last_error = type(exc).__name__
            time.sleep(POLL_S)
        raise LabError(
            f"JupyterLab did not answer {self.base_url}/api/status within {timeout:.0f} s ({last_error}); "
            f"end of {self.log_file}:\n{self.log_tail()}"
        )

    def auth_headers(self) -> dict[str, str]:
        """Headers that authenticate a REST call to this Lab."""
        return {"Authorization": f"token {self.token}"}

    def wait(self) -> int:
        """Block until Lab exits by itself; its exit status."""
        assert self.process is not None
        return self.process.wait()

    def stop(self, timeout: float = STOP_TIMEOUT_S, *, keep_log: bool = False) -> None:
        """SIGTERM Lab (it shuts its kernels down), then kill whatever of its process tree is left.

        The private directory goes too (token, cookie secret, connection files), except the log when
        ``keep_log``.
        """
        import psutil

        process, self.process = self.process, None
        if process is not None:
            try:
                tree = psutil.Process(process.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                tree = []
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                    process.wait(timeout)
            # Kernels run in sessions of their own: make sure none outlives Lab.
            alive = [p for p in tree if _running(p)]
            for child in alive:
                with contextlib.suppress(psutil.NoSuchProcess):
                    child.terminate()
            _, alive = psutil.wait_procs(alive, timeout=5)
            for child in alive:
                with contextlib.suppress(psutil.NoSuchProcess):
                    child.kill()
            psutil.wait_procs(alive, timeout=5)
        if keep_log:
            self._token_file.unlink(missing_ok=True)
            shutil.rmtree(self.state_dir / "runtime", ignore_errors=True)
        else:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of Lab's log."""
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _running(process: Any) -> bool:
    import psutil

    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _raise_stop(signum: int, _frame: Any) -> None:
    raise _StopRequested(signal.Signals(signum).name)


@contextlib.contextmanager
def _stop_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP stop Lab the way Ctrl-C does; the previous handlers come back afterwards."""
    watched = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.getsignal(sig) for sig in watched}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGHUP, _raise_stop)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _ignore_stop_signals() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
