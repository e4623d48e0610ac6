"""Calibration: the guide's own tests against the twin's TPU profile, measured vs reference.

Runs the cache-routing test, the serial test and the parallel test (20 requests, concurrency 10)
against one replica, then — when the twin's gateway is available — through the gateway with three
replicas and cache-aware routing applied. Prints a table and writes JSON to ``benchmarks/results/``.

References (rhaii-facts §3.4): the guide claims ~6.3 req/s serial, ~25 req/s parallel and ~200 ms
for a cold request; the later measurement on the real deployment found ~10.7 req/s parallel and a
~8 % end-to-end gain (miss ~442 ms, hit ~405 ms) on a ~150-token prompt with 10 output tokens.
The shape this project must reproduce exactly: no hit below one 128-token block and a TTFT cut of
at least 60 % for a repeated 1,500-token shared prefix.

    python -m benchmarks.calibration
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from rhaii_nb import measure, names
from rhaii_nb.twin.inference import ReplicaServer
from rhaii_nb.twin.inference.background import BackgroundReplicas
from rhaii_nb.workload import GUIDE_SHORT_PROMPT, long_prefix

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
PROFILE = "tpu-v6e-qwen2.5-3b"
NS, SVC = "rhaii-inference", "qwen-3b-tpu-svc"
SHORT_PROMPT = GUIDE_SHORT_PROMPT  # the e0f3d3d guide's prompt (7 tokens: below one block)
MEDIUM_PROMPT = (
    f"{long_prefix(140, label='You are a highly skilled professional translator')} {GUIDE_SHORT_PROMPT}"
)
LONG_PREFIX = long_prefix(1500, label="Shared system prompt")


def _row(name: str, path: str, measured: float, reference: str, unit: str, ok: bool | None) -> dict[str, Any]:
    return {
        "check": name,
        "path": path,
        "measured": round(measured, 3),
        "unit": unit,
        "reference": reference,
        "ok": ok,
    }


def guide_suite(base_url: str, path: str, *, fresh: Callable[[], None]) -> list[dict[str, Any]]:
    """The guide's tests against one base URL; ``fresh`` drops every replica's cache first."""
    rows = []
    fresh()
    short = measure.cache_test(base_url, prompt=SHORT_PROMPT, requests=10).summary()
    rows.append(
        _row(
            "short prompt: cached requests",
            path,
            short["hits"],
            "0 (7 tokens < one 128-token block)",
            "requests",
            short["hits"] == 0,
        )
    )
    fresh()
    medium = measure.cache_test(base_url, prompt=MEDIUM_PROMPT, requests=10).summary()
    rows.append(
        _row(
            "cold request (~150-token prompt)",
            path,
            medium["first_latency_s"] * 1000,
            "~200 ms guide; ~442 ms measured",
            "ms",
            120 <= medium["first_latency_s"] * 1000 <= 450,
        )
    )
    rows.append(
        _row(
            "cache hit e2e gain (~150 tokens)",
            path,
            medium["speedup_pct"],
            "~8 % measured; ~75 % guide",
            "%",
            3 <= medium["speedup_pct"] <= 40,
        )
    )
    fresh()
    long = measure.cache_test(base_url, prompt=f"{LONG_PREFIX} Question: hello?", requests=5, max_tokens=10)
    summary = long.summary()
    rows.append(
        _row(
            "TTFT cut, 1,500-token shared prefix",
            path,
            summary["ttft_speedup_pct"],
            ">= 60 %",
            "%",
            summary["ttft_speedup_pct"] >= 60,
        )
    )
    serial = measure.throughput_test(base_url, prompt=SHORT_PROMPT, requests=20, concurrency=1)
    rows.append(
        _row(
            "serial throughput (max_tokens 10)",
            path,
            serial.req_per_s,
            "~6.3 req/s guide",
            "req/s",
            4.5 <= serial.req_per_s <= 8.5,
        )
    )
    parallel = measure.throughput_test(base_url, prompt=SHORT_PROMPT, requests=20, concurrency=10)
    rows.append(
        _row(
            "parallel throughput (20 req, concurrency 10)",
            path,
            parallel.req_per_s,
            "~25 req/s guide; ~10.7 measured",
            "req/s",
            10.7 <= parallel.req_per_s <= 25 * 1.1,
        )
    )
    rows.append(
        _row(
            "parallel p50 latency",
            path,
            parallel.summary()["latency_p50_s"] * 1000,
            "< 200 ms guide",
            "ms",
            None,
        )
    )
    return rows


# ---- a minimal twin slice: store + objects KServe creates + the guide's EnvoyFilters + gateway ----
def _create(store: Any, obj: dict[str, Any], plural: str) -> dict[str, Any]:
    group, _, version = obj["apiVersion"].rpartition("/")
    rt = store.resource(group, version, plural)
    return store.create(rt, copy.deepcopy(obj), namespace=obj["metadata"].get("namespace"))


def _pod(store: Any, name: str, labels: dict[str, str], containers: list[str], ip: str) -> dict[str, Any]:
    pod = _create(
        store,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": NS, "labels": labels},
            "spec": {
                "containers": [
                    {
                        "name": c,
                        "image": f"example.com/{c}:1",
                        "ports": [{"name": "https", "containerPort": 8000}],
                    }
                    for c in containers
                ]
            },
        },
        "pods",
    )
    pod["status"] = {"phase": "Running", "podIP": ip, "conditions": [{"type": "Ready", "status": "True"}]}
    return store.update(store.resource("", "v1", "pods"), pod, subresource="status")


def _labels(selector: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in selector.split(","))


def _route_objects() -> list[tuple[dict[str, Any], str]]:
    workload = _labels(names.workload_selector(SVC))
    pool_ref = {
        "group": "inference.networking.x-k8s.io",
        "kind": "InferencePool",
        "name": names.inference_pool(SVC),
        "port": 8000,
    }

    def rule(prefix: str, target: str, backend: dict[str, Any]) -> dict[str, Any]:
        return {
            "matches": [{"path": {"type": "PathPrefix", "value": prefix}}],
            "filters": [
                {
                    "type": "URLRewrite",
                    "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": target}},
                }
            ],
            "backendRefs": [backend],
        }

    base = f"/{NS}/{SVC}"
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": names.http_route(SVC), "namespace": NS},
        "spec": {
            "parentRefs": [
                {
                    "group": "gateway.networking.k8s.io",
                    "kind": "Gateway",
                    "name": names.GATEWAY_NAME,
                    "namespace": names.GATEWAY_NAMESPACE,
                }
            ],
            "rules": [
                rule(f"{base}/v1/completions", "/v1/completions", pool_ref),
                rule(f"{base}/v1/chat/completions", "/v1/chat/completions", pool_ref),
                rule(base, "/", {"kind": "Service", "name": names.workload_service(SVC), "port": 8000}),
            ],
        },
    }
    pool = {
        "apiVersion": "inference.networking.x-k8s.io/v1alpha2",
        "kind": "InferencePool",
        "metadata": {"name": names.inference_pool(SVC), "namespace": NS},
        "spec": {
            "selector": workload,
            "targetPortNumber": 8000,
            "extensionRef": {"kind": "Service", "name": names.epp_service(SVC), "failureMode": "FailOpen"},
        },
    }
    workload_svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": names.workload_service(SVC), "namespace": NS},
        "spec": {"selector": workload, "ports": [{"name": "https", "port": 8000, "targetPort": 8000}]},
    }
    epp_svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": names.epp_service(SVC), "namespace": NS},
        "spec": {
            "selector": _labels(names.scheduler_selector(SVC)),
            "ports": [{"name": "grpc", "port": 9002, "targetPort": 9002}],
        },
    }
    return [
        (route, "httproutes"),
        (pool, "inferencepools"),
        (workload_svc, "services"),
        (epp_svc, "services"),
    ]


@contextlib.asynccontextmanager
async def gateway_stack(
    replicas: int = 3, profile: str = PROFILE
) -> AsyncIterator[tuple[str, list[ReplicaServer]]]:
    """The twin's gateway with cache-aware routing applied, in front of ``replicas`` HTTPS replicas."""
    from aiohttp import web

    from rhaii_nb.twin.context import ReplicaInfo, TwinContext
    from rhaii_nb.twin.gateway.server import create_app
    from rhaii_nb.twin.pki import Pki
    from rhaii_nb.twin.store import Store

    with tempfile.TemporaryDirectory(prefix="rhaii-calibration-") as home:
        store = Store()
        pki = Pki(home)
        ctx = TwinContext(store=store, home=Path(home), pki=pki)
        for namespace in (NS, names.GATEWAY_NAMESPACE, "istio-system"):
            _create(
                store,
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
                "namespaces",
            )
        schemas = ROOT / "rhaii_nb" / "data" / "schemas"
        for path in (
            "gateway-api/gateway.networking.k8s.io_httproutes.yaml",
            "gateway-api-inference-extension/inference.networking.x-k8s.io_inferencepools.yaml",
            "istio/envoyfilters.networking.istio.io.crd.yaml",
        ):
            for crd in yaml.safe_load_all((schemas / path).read_text()):
                if crd and crd.get("kind") == "CustomResourceDefinition":
                    store.register_crd(crd)
        for obj, plural in _route_objects():
            _create(store, obj, plural)
        for path in sorted((ROOT / "manifests").glob("envoyfilter-*.yaml")):
            for envoy_filter in yaml.safe_load_all(path.read_text()):
                if envoy_filter:
                    _create(store, envoy_filter, "envoyfilters")
        workload = _labels(names.workload_selector(SVC))
        dns = [names.workload_service_fqdn(SVC, NS), "localhost"]
        servers: list[ReplicaServer] = []
        runner = None
        try:
            for index in range(replicas):
                pod_name = f"{names.workload_deployment(SVC)}-6b8c9-r{index}"
                pod = _pod(store, pod_name, workload, ["main"], f"10.8.0.{10 + index}")
                server = ReplicaServer(profile, replica_name=pod_name, seed=index)
                port = await server.start("127.0.0.1", 0, ssl_context=pki.server_ssl_context(dns))
                servers.append(server)
                ctx.replicas.put(
                    ReplicaInfo(
                        NS, pod_name, pod["metadata"]["uid"], workload, "127.0.0.1", port, True, server
                    )
                )
            _pod(
                store,
                f"{names.scheduler_deployment(SVC)}-5c6d7-epp0",
                _labels(names.scheduler_selector(SVC)),
                ["main", "istio-proxy"],
                "10.8.0.50",
            )
            runner = web.AppRunner(create_app(ctx, seed=3), access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            yield f"http://127.0.0.1:{runner.addresses[0][1]}/{NS}/{SVC}", servers
        finally:
            if runner is not None:
                await runner.cleanup()
            for server in servers:
                await server.stop()


class _GatewayInThread:
    """Serve ``gateway_stack`` from a background loop so the sync measuring helpers can call it."""

    def __init__(self, replicas: int) -> None:
        self._count = replicas
        self._cm: Any = None
        self.url = ""
        self.servers: list[ReplicaServer] = []

    def __enter__(self) -> _GatewayInThread:
        import threading

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._cm = gateway_stack(self._count)
        self.url, self.servers = asyncio.run_coroutine_threadsafe(self._cm.__aenter__(), self._loop).result(
            60
        )
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._cm.__aexit__(None, None, None), self._loop).result(60)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


def run() -> dict[str, Any]:
    """Run the suites; returns ``{"rows": [...], "gateway": "ran" | "skipped: <why>", ...}``."""
    started = time.time()
    rows: list[dict[str, Any]] = []
    with BackgroundReplicas(PROFILE) as single:
        rows += guide_suite(single.urls[0], "1 replica", fresh=lambda: [s.reset() for s in single.servers])
    gateway_status = "ran"
    try:
        with _GatewayInThread(3) as gateway:
            rows += guide_suite(
                gateway.url, "gateway, 3 replicas", fresh=lambda: [s.reset() for s in gateway.servers]
            )
    except ModuleNotFoundError as exc:
        gateway_status = f"skipped: {exc}"
    return {
        "profile": PROFILE,
        "started": started,
        "duration_s": time.time() - started,
        "gateway": gateway_status,
        "rows": rows,
    }


def main() -> int:
    """Print the table and write ``benchmarks/results/calibration-<time>.json``; 1 if a shape check fails."""
    result = run()
    table = pd.DataFrame(result["rows"])
    with pd.option_context("display.width", 160, "display.max_colwidth", 40):
        print(table.to_string(index=False))
    print(f"gateway: {result['gateway']}; {result['duration_s']:.1f} s")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"calibration-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=2, default=str))
    print(f"written: {out}")
    shape_failed = table[table["check"].str.contains("TTFT cut|short prompt") & (table["ok"] == False)]  # noqa: E712
    return 1 if len(shape_failed) else 0


if __name__ == "__main__":
    raise SystemExit(main())
