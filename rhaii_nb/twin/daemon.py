"""The twin process: ``python -m rhaii_nb.twin.daemon --home DIR [--cluster NAME] [--time-scale X]
[--scenario NAME]...``.

Builds the ``TwinContext``, restores ``snapshot.json``, starts the GKE API and the gateway (when
those parts exist), every controller in ``rhaii_nb.twin.controllers`` that defines ``run(ctx)``,
and the Kubernetes API (right away when there is no GKE part, otherwise when the GKE part creates
a cluster). Then writes ``kubeconfig``, ``endpoints.json`` and ``twin.pid`` and serves until
SIGTERM/SIGINT, when it saves the snapshot, stops the replica servers and removes the pid file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import inspect
import json
import logging
import os
import pkgutil
import signal
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rhaii_nb.twin.home import TwinHome

log = logging.getLogger("rhaii_nb.twin.daemon")
HOST = "127.0.0.1"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options of the daemon."""
    parser = argparse.ArgumentParser(
        prog="python -m rhaii_nb.twin.daemon", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--home", required=True, help="twin home directory")
    parser.add_argument("--cluster", help="create this GKE cluster at start (needs the GKE part)")
    parser.add_argument("--time-scale", type=float, default=1.0, help="multiplier of simulated durations")
    parser.add_argument("--scenario", action="append", default=[], help="failure scenario to switch on")
    args = parser.parse_args(argv)
    if args.time_scale <= 0:
        parser.error("--time-scale must be > 0")
    return args


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1 (all sockets held until every port is picked)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((HOST, 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def optional_module(name: str) -> Any | None:
    """Import a part of the twin another helper writes; None (logged) only while it does not exist."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            log.warning("twin part %s is not available (%s): skipped", name, exc)
            return None
        raise


def controller_modules() -> list[Any]:
    """Every module of ``rhaii_nb.twin.controllers`` that defines ``async def run(ctx)``."""
    package = importlib.import_module("rhaii_nb.twin.controllers")
    found = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        name = f"{package.__name__}.{info.name}"
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("rhaii_nb."):
                log.warning("controller %s skipped: %s is not written yet", name, exc.name)
                continue
            raise
        if inspect.iscoroutinefunction(getattr(module, "run", None)):
            found.append(module)
    return found


def build_context(home: TwinHome, time_scale: float, scenarios: Sequence[str]) -> Any:
    """The shared ``TwinContext``: store (restored from the snapshot), clock, PKI, pod logs."""
    from rhaii_nb.scenarios import get_scenario
    from rhaii_nb.twin.context import Clock, TwinContext
    from rhaii_nb.twin.pki import Pki
    from rhaii_nb.twin.podlogs import PodLogs
    from rhaii_nb.twin.store import Store

    for name in scenarios:
        get_scenario(name)  # KeyError naming the known ones
    store = Store()
    if home.snapshot_file.exists():
        try:
            store.restore(json.loads(home.snapshot_file.read_text()))
            log.info("restored %s", home.snapshot_file)
        except (ValueError, KeyError) as exc:
            log.error("could not restore %s (%s): starting empty", home.snapshot_file, exc)
    return TwinContext(
        store=store,
        home=home.root,
        clock=Clock(time_scale),
        scenarios=frozenset(scenarios),
        pki=Pki(home.root),
        logs=PodLogs(),
    )


class Daemon:
    """One running twin: its servers, controller tasks and files."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.home = TwinHome.at(args.home)
        self.ctx: Any = None
        self.kube: Any = None
        self.runners: list[Any] = []
        self.tasks: list[asyncio.Task] = []
        self.stopping = asyncio.Event()

    async def _serve_http(self, app: Any, port: int) -> str:
        from aiohttp import web

        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        await web.TCPSite(runner, HOST, port, reuse_address=True).start()
        self.runners.append(runner)
        return f"http://{HOST}:{port}"

    def _start_controllers(self) -> None:
        for module in controller_modules():
            task = asyncio.create_task(module.run(self.ctx), name=module.__name__)
            task.add_done_callback(self._controller_done)
            self.tasks.append(task)
            log.info("controller %s started", module.__name__)

    def _controller_done(self, task: asyncio.Task) -> None:
        if task.cancelled() or self.stopping.is_set():
            return
        error = task.exception()
        if error is not None:
            log.error("controller %s failed", task.get_name(), exc_info=error)
        else:
            log.info("controller %s finished", task.get_name())

    async def start(self) -> None:
        """Start every part and write the files clients read."""
        from rhaii_nb.twin.kube.server import KubeApiServer

        args = self.args
        self.ctx = ctx = build_context(self.home, args.time_scale, args.scenario)
        kube_port, gke_port, gateway_port = free_ports(3)
        self.kube = KubeApiServer(ctx, HOST, kube_port)
        ctx.start_kube_api = self.kube.start
        ctx.stop_kube_api = self.kube.stop
        token = self.home.token()
        ctx.endpoints["kubernetes"] = self.kube.url
        gke_server = optional_module("rhaii_nb.twin.gke.server")
        gateway_server = optional_module("rhaii_nb.twin.gateway.server")
        if gke_server is not None:
            ctx.endpoints["gke"] = await self._serve_http(gke_server.create_app(ctx), gke_port)
        if gateway_server is not None:
            ctx.endpoints["gateway"] = await self._serve_http(gateway_server.create_app(ctx), gateway_port)
        self._start_controllers()
        if gke_server is None:
            await self.kube.start()
        if args.cluster:
            cluster = optional_module("rhaii_nb.twin.gke.cluster")
            if cluster is None:
                log.warning("--cluster %s ignored: there is no GKE part", args.cluster)
            else:
                result = cluster.precreate(ctx, args.cluster)
                if inspect.isawaitable(result):
                    await result
        self.home.write_kubeconfig(self.kube.url, token)
        self.home.write_endpoints(
            {
                "kubernetes": ctx.endpoints.get("kubernetes"),
                "gke": ctx.endpoints.get("gke"),
                "gateway": ctx.endpoints.get("gateway"),
                "pid": os.getpid(),
                "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "time_scale": args.time_scale,
                "scenarios": sorted(ctx.scenarios),
                "cluster": args.cluster,
                "ca": str(self.home.ca_crt),
            }
        )
        self.home.write_pid(os.getpid())
        log.info("twin ready: %s", json.dumps(ctx.endpoints))

    async def stop(self) -> None:
        """Stop controllers and servers, save the snapshot, remove the pid file."""
        self.stopping.set()
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 5)
        if self.kube is not None:
            await self.kube.stop()
        for runner in reversed(self.runners):
            with contextlib.suppress(Exception):
                await runner.cleanup()
        if self.ctx is not None:
            await self._stop_replicas()
            self._save_snapshot()
        self.home.remove_pid(os.getpid())
        log.info("twin stopped")

    async def _stop_replicas(self) -> None:
        for info in self.ctx.replicas.all():
            stop = getattr(info.server, "stop", None)
            if stop is None:
                continue
            with contextlib.suppress(Exception):
                result = stop()
                if inspect.isawaitable(result):
                    await asyncio.wait_for(result, 5)

    def _save_snapshot(self) -> None:
        try:
            data = self.ctx.store.dump()
            tmp = self.home.snapshot_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(data))
            os.replace(tmp, self.home.snapshot_file)
            log.info("snapshot saved to %s", self.home.snapshot_file)
        except Exception:
            log.exception("could not save the snapshot")

    async def run(self) -> int:
        """Start, serve until a stop signal, stop; returns the exit status."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        try:
            await self.start()
        except BaseException:
            log.exception("twin start-up failed")
            await self.stop()
            return 1
        await self.stopping.wait()
        await self.stop()
        return 0


def setup_logging(log_file: Path) -> None:
    """Log to ``twin.log`` (INFO)."""
    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run the twin until SIGTERM."""
    args = parse_args(argv)
    home = TwinHome.at(args.home)
    setup_logging(home.log_file)
    running = home.live_pid()
    if running is not None and running != os.getpid():
        print(f"a twin already runs in {home.root} (pid {running}); stop it first", file=sys.stderr)
        return 1
    log.info("starting twin in %s (pid %d, time scale %s)", home.root, os.getpid(), args.time_scale)
    return asyncio.run(Daemon(args).run())


if __name__ == "__main__":
    sys.exit(main())
