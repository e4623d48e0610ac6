"""How far the twin scales on this machine: replicas, streaming clients, 1,000 pods, memory.

- **Streaming clients / replicas**: the serving path (``benchmarks.scale_server``: gateway with
  cache-aware routing + HTTPS replicas, one process and one loop like the daemon) with a profile
  whose model time is exactly 50 ms per request. Streaming clients (aiohttp, closed loop, 16 output
  tokens) run in this process; *added latency* = measured − 50 ms, i.e. everything that is not the
  model: client, HTTP, TLS, gateway, EPP scraping, event loop. We report the most clients (at 3
  replicas) and the most replicas (at 4 clients) whose p99 added latency stays under 10 ms.
- **1,000 pods**: a real twin daemon (``ensure_twin``) with a GKE cluster; 1,000 pods created with
  the Kubernetes client; then ``kubectl get pods`` wall time (median of 3) next to kubectl's own
  start-up (``kubectl version --client``), and ``kubectl get pods --watch``: time until its 1,000
  rows are listed and until a new pod's row appears.
- **Memory per replica**: the serving process's RSS with N replicas vs 1 replica.

``python -m benchmarks.twin_scale`` runs this part alone.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from statistics import median
from typing import Any

import aiohttp

from benchmarks.common import ChildProcess, Figure, ms, percentile
from benchmarks.scale_server import MODEL_TIME_S

ADDED_LIMIT_MS = 10.0
CLIENT_LEVELS = (1, 10, 50, 200)
REPLICA_LEVELS = (3, 8, 16, 32, 64)
REPLICA_SWEEP_CLIENTS = 4
SECONDS_PER_POINT = 3.0
MAX_TOKENS = 16
PODS = 1000
CREATE_BUDGET_S = 45.0  # creating pods stops here even if fewer than PODS exist (reported)
POD_NAMESPACE = "bench-pods"
PROMPT = "Translate to French: Hello world"


async def _stream_load(url: str, clients: int, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    body = {"model": "/mnt/models", "prompt": PROMPT, "max_tokens": MAX_TOKENS, "stream": True}
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                begin = time.perf_counter()
                try:
                    async with session.post(f"{url}/v1/completions", json=body) as response:
                        chunks = 0
                        async for line in response.content:
                            chunks += line.startswith(b"data:")
                        if response.status != 200 or chunks < MAX_TOKENS:
                            errors += 1
                            continue
                except aiohttp.ClientError:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - begin)

        await asyncio.gather(*(client() for _ in range(clients)))
    added = [ms(x - MODEL_TIME_S) for x in latencies]
    return {
        "clients": clients,
        "requests": len(latencies),
        "errors": errors,
        "added_p50_ms": percentile(added, 50),
        "added_p99_ms": percentile(added, 99),
        "rate": len(latencies) / seconds,
    }


def _within(point: dict[str, Any]) -> bool:
    return point["requests"] > 0 and point["errors"] == 0 and point["added_p99_ms"] < ADDED_LIMIT_MS


def client_sweep(quick: bool = False) -> list[dict[str, Any]]:
    """Streaming clients against 3 replicas at each of ``CLIENT_LEVELS``."""
    points = []
    with ChildProcess("benchmarks.scale_server", "3") as stack:
        url = json.loads(stack.ready)["url"]
        asyncio.run(_stream_load(url, 4, 0.5))  # warm-up: connections, TLS sessions, EPP scraping
        for clients in CLIENT_LEVELS[:3] if quick else CLIENT_LEVELS:
            points.append(asyncio.run(_stream_load(url, clients, SECONDS_PER_POINT)))
    return points


def replica_sweep(quick: bool = False) -> list[dict[str, Any]]:
    """A few streaming clients against growing replica counts; RSS of the serving process each time."""
    points = []
    for replicas in REPLICA_LEVELS[:3] if quick else REPLICA_LEVELS:
        with ChildProcess("benchmarks.scale_server", str(replicas), start_timeout_s=180) as stack:
            ready = json.loads(stack.ready)
            asyncio.run(_stream_load(ready["url"], 4, 0.5))
            point = asyncio.run(_stream_load(ready["url"], REPLICA_SWEEP_CLIENTS, SECONDS_PER_POINT))
            point.update(replicas=replicas, rss_bytes=ready["rss_bytes"])
            points.append(point)
    return points


# ---- 1,000 pods through kubectl --------------------------------------------------------------------
def _kubectl(kubeconfig: Path, *args: str, timeout: float = 120) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    done = subprocess.run(
        ["kubectl", f"--kubeconfig={kubeconfig}", *args], capture_output=True, text=True, timeout=timeout
    )
    return time.perf_counter() - started, done


def _pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bench"}},
        "spec": {"containers": [{"name": "main", "image": "registry.access.redhat.com/ubi9/ubi-minimal"}]},
    }


def _watch_rows(kubeconfig: Path, expect: int, timeout: float) -> tuple[subprocess.Popen, list[float]]:
    """Start ``kubectl get pods --watch -o name``; returns the process and a list filled with
    the time (since start) of each row it prints, from a reader thread."""
    process = subprocess.Popen(
        [
            "kubectl",
            f"--kubeconfig={kubeconfig}",
            "get",
            "pods",
            "-n",
            POD_NAMESPACE,
            "--watch",
            "-o",
            "name",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    times: list[float] = []
    started = time.perf_counter()

    def read() -> None:
        assert process.stdout is not None
        for _line in process.stdout:
            times.append(time.perf_counter() - started)

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + timeout
    while len(times) < expect and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.01)
    return process, times


def kubectl_pods(quick: bool = False) -> dict[str, Any]:
    """kubectl get pods and a watch with 1,000 pods on a real twin daemon."""
    if shutil.which("kubectl") is None:
        return {"skipped": "kubectl is not installed"}
    from kubernetes import client as k8s

    from rhaii_nb.twin.client import ensure_twin

    count = 200 if quick else PODS
    with tempfile.TemporaryDirectory(prefix="rhaii-bench-twin-") as home:
        twin = ensure_twin(home=home, cluster="bench-cluster", time_scale=0.001)
        try:
            api = k8s.CoreV1Api(twin.api_client())
            api.create_namespace(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": POD_NAMESPACE}}
            )
            started = time.perf_counter()
            marks: dict[int, float] = {}
            created = 0
            while created < count and time.perf_counter() - started < CREATE_BUDGET_S:
                api.create_namespaced_pod(POD_NAMESPACE, _pod(f"bench-{created:04d}"))
                created += 1
                if created % 100 == 0:
                    marks[created] = round(time.perf_counter() - started, 2)
            create_s = time.perf_counter() - started
            count = created
            kubeconfig = twin.kubeconfig
            baseline = median(_kubectl(kubeconfig, "version", "--client", "-o", "json")[0] for _ in range(3))
            gets = []
            for _ in range(3):
                seconds, done = _kubectl(kubeconfig, "get", "pods", "-n", POD_NAMESPACE)
                rows = len(done.stdout.strip().splitlines()) - 1
                if done.returncode != 0 or rows != count:
                    raise RuntimeError(
                        f"kubectl get pods listed {rows} of {count} pods: {done.stderr[-300:]}"
                    )
                gets.append(seconds)
            process, times = _watch_rows(kubeconfig, count, timeout=30)
            try:
                listed_s = times[count - 1] if len(times) >= count else None
                before = len(times)
                created_at = time.perf_counter()
                api.create_namespaced_pod(POD_NAMESPACE, _pod("bench-late"))
                deadline = time.monotonic() + 30
                while len(times) == before and time.monotonic() < deadline:
                    time.sleep(0.005)
                event_s = time.perf_counter() - created_at if len(times) > before else None
            finally:
                process.terminate()
                process.wait(timeout=10)
        finally:
            twin.stop()
    return {
        "pods": count,
        "wanted": PODS if not quick else 200,
        "create_s": create_s,
        "created_by_s": marks,
        "kubectl_client_only_s": baseline,
        "get_pods_s": median(gets),
        "watch_listed_s": listed_s,
        "watch_event_s": event_s,
    }


def run(quick: bool = False) -> dict[str, Any]:
    """All twin-scale measurements; figures + raw points."""
    clients = client_sweep(quick)
    replicas = replica_sweep(quick)
    pods = kubectl_pods(quick)
    return {
        "figures": figures(clients, replicas, pods),
        "clients": clients,
        "replicas": replicas,
        "pods": pods,
    }


def _best(points: list[dict[str, Any]], key: str) -> tuple[int, str]:
    """The largest level whose p99 added latency stayed under the limit (0 if none), and the first miss."""
    good = [p for p in points if _within(p)]
    bad = next((p for p in points if not _within(p)), None)
    best = max((p[key] for p in good), default=0)
    if bad is None:
        why = f"every level tried (up to {points[-1][key]}) stayed under the limit" if points else ""
    else:
        why = f"first miss at {bad[key]}: p99 {bad['added_p99_ms']:.1f} ms, {bad['errors']} errors"
    return best, why


def figures(
    clients: list[dict[str, Any]], replicas: list[dict[str, Any]], pods: dict[str, Any]
) -> list[Figure]:
    """The table rows of this benchmark."""
    out = []
    best_clients, why = _best(clients, "clients")
    out.append(
        Figure(
            f"streaming clients at 3 replicas with p99 added < {ADDED_LIMIT_MS:g} ms",
            best_clients,
            "clients",
            f"≥ {CLIENT_LEVELS[0]}",
            best_clients >= CLIENT_LEVELS[0],
            "p99 added by clients: "
            + "; ".join(f"{p['clients']}: {p['added_p99_ms']:.0f} ms" for p in clients),
            note=why,
            digits=0,
        )
    )
    best_replicas, why = _best(replicas, "replicas")
    out.append(
        Figure(
            f"replicas with {REPLICA_SWEEP_CLIENTS} streaming clients, p99 added < {ADDED_LIMIT_MS:g} ms",
            best_replicas,
            "replicas",
            "≥ 3 (the guide's)",
            best_replicas >= 3,
            "p99 added by replicas: "
            + "; ".join(f"{p['replicas']}: {p['added_p99_ms']:.0f} ms" for p in replicas),
            note=why,
            digits=0,
        )
    )
    if len(replicas) >= 2:
        first, last = replicas[0], replicas[-1]
        per = (last["rss_bytes"] - first["rss_bytes"]) / (last["replicas"] - first["replicas"]) / 2**20
        out.append(
            Figure(
                "memory per replica (RSS of the serving process)",
                per,
                "MiB",
                peer=f"{first['replicas']} replicas {first['rss_bytes'] / 2**20:.0f} MiB; "
                f"{last['replicas']} replicas {last['rss_bytes'] / 2**20:.0f} MiB",
            )
        )
    if "skipped" in pods:
        out.append(Figure("kubectl get pods with 1,000 pods", None, "s", note=pods["skipped"]))
        return out
    if pods["pods"] < pods["wanted"]:
        out.append(
            Figure(
                f"pods created in {CREATE_BUDGET_S:.0f} s (Kubernetes client, one at a time)",
                pods["pods"],
                "pods",
                f"{pods['wanted']:,}",
                False,
                "seconds by count: " + ", ".join(f"{k}: {v:.0f}" for k, v in pods["created_by_s"].items()),
                digits=0,
            )
        )
    out.append(
        Figure(
            f"kubectl get pods with {pods['pods']:,} pods",
            pods["get_pods_s"] * 1000,
            "ms",
            "≤ 2,000 ms",
            pods["get_pods_s"] <= 2.0,
            f"kubectl start-up alone {pods['kubectl_client_only_s'] * 1000:.0f} ms",
            digits=0,
        )
    )
    listed = pods["watch_listed_s"]
    out.append(
        Figure(
            f"kubectl get pods --watch: {pods['pods']:,} rows listed",
            None if listed is None else listed * 1000,
            "ms",
            "≤ 2,000 ms",
            None if listed is None else listed <= 2.0,
            f"creating them took {pods['create_s']:.1f} s with the Python client",
            digits=0,
        )
    )
    event = pods["watch_event_s"]
    out.append(
        Figure(
            f"watch event for a new pod (with {pods['pods']:,} pods)",
            None if event is None else event * 1000,
            "ms",
            "≤ 1,000 ms",
            None if event is None else event <= 1.0,
            digits=0,
        )
    )
    return out


def main() -> int:
    """Run this benchmark alone and print its rows (``BENCH_PART=pods|clients|replicas`` for one part)."""
    from benchmarks.common import render_table

    started = time.monotonic()
    quick = bool(os.environ.get("BENCH_QUICK"))
    part = os.environ.get("BENCH_PART")
    if part:
        print(
            json.dumps(
                {"pods": kubectl_pods, "clients": client_sweep, "replicas": replica_sweep}[part](quick)
            )
        )
        return 0
    result = run(quick=quick)
    print(render_table(result["figures"]))
    print(json.dumps({k: result[k] for k in ("clients", "replicas", "pods")}, indent=1, default=str))
    print(f"{time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
