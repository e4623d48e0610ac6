"""Cache-aware routing: the EPP's Istio sidecar, the three EnvoyFilters, and switching routing off.

- :func:`enable_epp_sidecar` is the guide's step 6 (``kubectl patch deployment ...-router-scheduler``
  with ``sidecar.istio.io/inject: "true"``), then waits until the rollout is over: every EPP pod
  Ready with its ``istio-proxy`` container (2/2) and no old pod left.
- :func:`apply_envoyfilters` is step 7 (server-side apply of the three EnvoyFilters).
- :func:`routing_off` removes the ext_proc EnvoyFilter — the real mechanism that takes the EPP out
  of the request path — and puts it back afterwards; :func:`compare_routing` runs the same
  shared-prefix workload with routing on and off and reads the replicas' own prefix-cache metrics.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from rhaii_nb import names
from rhaii_nb.display import Live, elapsed
from rhaii_nb.pods import PodTracker, WaitTimeout, format_events, recent_events
from rhaii_nb.polling import poll_interval

SIDECAR_LABEL = "sidecar.istio.io/inject"
SIDECAR_CONTAINER = "istio-proxy"
ENVOYFILTER_GROUP, ENVOYFILTER_VERSION, ENVOYFILTER_PLURAL = "networking.istio.io", "v1alpha3", "envoyfilters"
EXT_PROC_FILE = "envoyfilter-ext-proc-tpu.yaml"
# After the ext_proc filter is removed or restored, Istio needs a moment to push the new Envoy config.
SETTLE_S = {"gke": 10.0, "local": 0.5}


# --- step 6: the EPP's sidecar ------------------------------------------------------------------


def sidecar_enabled(session: Any, params: Any) -> bool:
    """Whether the EPP Deployment's pod template asks Istio for a sidecar."""
    deployment = session.apps.read_namespaced_deployment(
        names.scheduler_deployment(params.service_name), params.namespace
    )
    labels = deployment.spec.template.metadata.labels or {}
    return labels.get(SIDECAR_LABEL) == "true"


def _has_sidecar(pod: dict[str, Any]) -> bool:
    spec = pod.get("spec") or {}
    containers = [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]
    return any(c.get("name") == SIDECAR_CONTAINER for c in containers)


def _epp_rolled_out(pods: list[dict[str, Any]], replicas: int) -> tuple[bool, str]:
    """Every live EPP pod carries the sidecar and is Ready, and there are exactly ``replicas`` of them."""
    from rhaii_nb.pods import is_ready, pod_stage, ready_containers

    live = [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]
    good = [p for p in live if _has_sidecar(p) and is_ready(p)]
    if len(good) == replicas and len(live) == replicas:
        return True, ""
    waiting = [
        f"{p['metadata']['name']} {pod_stage(p)} {'{}/{}'.format(*ready_containers(p))}"
        + ("" if _has_sidecar(p) else " (no sidecar)")
        for p in live
        if p not in good
    ]
    return False, f"{len(good)}/{replicas} EPP pods ready with the sidecar; waiting: {', '.join(waiting)}"


def epp_pods(session: Any, params: Any) -> pd.DataFrame:
    """The EPP scheduler pods (pod, node, stage, ready, restarts, age) plus whether each has the sidecar."""
    from rhaii_nb.pods import pods_table

    raw = session.api_client.sanitize_for_serialization(
        session.core.list_namespaced_pod(
            params.namespace, label_selector=names.scheduler_selector(params.service_name)
        )
    ).get("items", [])
    table = pods_table(raw)
    table["sidecar"] = ["✅" if _has_sidecar(p) else "❌" for p in raw]
    return table


def enable_epp_sidecar(
    session: Any, params: Any, *, timeout: float | None = None, show: bool = True
) -> pd.DataFrame:
    """Patch the EPP Deployment for sidecar injection (idempotent) and wait for the rollout; the EPP pods.

    Raises :class:`~rhaii_nb.pods.WaitTimeout` naming the pods still without a Ready sidecar.
    """
    deployment = names.scheduler_deployment(params.service_name)
    session.apps.patch_namespaced_deployment(
        deployment,
        params.namespace,
        {"spec": {"template": {"metadata": {"labels": {SIDECAR_LABEL: "true"}}}}},
    )
    timeout = timeout if timeout is not None else params.wait_s("rollout_timeout_s")
    replicas = session.apps.read_namespaced_deployment(deployment, params.namespace).spec.replicas or 1
    tracker = PodTracker(session, params.namespace, names.scheduler_selector(params.service_name), show=False)
    started = time.monotonic()
    live = Live(enabled=show, min_interval_s=2.0)
    try:
        while True:
            tracker._list()
            done, waiting = _epp_rolled_out(tracker.snapshot(), replicas)
            live.update(f"EPP rollout: {waiting or 'done'} · {elapsed(time.monotonic() - started)}")
            if done:
                return epp_pods(session, params)
            if time.monotonic() - started >= timeout:
                break
            time.sleep(poll_interval(params, 1.0))
    finally:
        live.close()
    raise WaitTimeout(
        f"Timed out after {elapsed(timeout)} waiting for {deployment} to roll out with its Istio sidecar: "
        f"{waiting}.\nIs the namespace in the mesh and istiod running (notebook 03)? Recent events:\n"
        + format_events(recent_events(session, params.namespace))
    )


# --- step 7: EnvoyFilters ---------------------------------------------------------------------------


def envoyfilter_objects(params: Any) -> list[dict[str, Any]]:
    """The three EnvoyFilters with the params' names applied (validated); a training scenario may
    leave one out (``rhaii_nb.training``)."""
    from rhaii_nb.manifests import manifests_for
    from rhaii_nb.training import as_the_runbook_applies

    return as_the_runbook_applies(params, manifests_for(params, "envoyfilters").objects)


def apply_envoyfilters(session: Any, params: Any, *, show: bool = True) -> Any:
    """Server-side apply the three EnvoyFilters; the :class:`~rhaii_nb.apply.ApplyResult`."""
    from rhaii_nb.apply import apply_objects

    return apply_objects(session, envoyfilter_objects(params), show=show)


def envoyfilters(session: Any, params: Any) -> pd.DataFrame:
    """The EnvoyFilters in the gateway's namespace (what ``kubectl get envoyfilter -n opendatahub`` lists)."""
    answer = session.custom.list_namespaced_custom_object(
        ENVOYFILTER_GROUP, ENVOYFILTER_VERSION, names.GATEWAY_NAMESPACE, ENVOYFILTER_PLURAL
    )
    wanted = {obj["metadata"]["name"] for obj in envoyfilter_objects(params)}
    rows = [
        {
            "name": item["metadata"]["name"],
            "namespace": item["metadata"].get("namespace", ""),
            "created": item["metadata"].get("creationTimestamp", ""),
            "runbook's": "✅" if item["metadata"]["name"] in wanted else "",
        }
        for item in answer.get("items", [])
    ]
    return pd.DataFrame(rows, columns=["name", "namespace", "created", "runbook's"])


def missing_envoyfilters(session: Any, params: Any) -> list[str]:
    """Names of the runbook's EnvoyFilters that are not in the cluster."""
    present = set(envoyfilters(session, params)["name"])
    return [
        obj["metadata"]["name"]
        for obj in envoyfilter_objects(params)
        if obj["metadata"]["name"] not in present
    ]


# --- routing on and off -----------------------------------------------------------------------------


def ext_proc_filter(params: Any) -> dict[str, Any]:
    """The EnvoyFilter that inserts the ext_proc call to the EPP (without it the EPP is bypassed)."""
    from rhaii_nb.manifests import manifests_for

    matches = [m.obj for m in manifests_for(params, "envoyfilters").items if m.source == EXT_PROC_FILE]
    if len(matches) != 1:
        raise RuntimeError(f"expected one EnvoyFilter in manifests/{EXT_PROC_FILE}, found {len(matches)}")
    return matches[0]


def _wait_gone(session: Any, name: str, timeout: float) -> None:
    from kubernetes.client.exceptions import ApiException

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            session.custom.get_namespaced_custom_object(
                ENVOYFILTER_GROUP, ENVOYFILTER_VERSION, names.GATEWAY_NAMESPACE, ENVOYFILTER_PLURAL, name
            )
        except ApiException as exc:
            if exc.status == 404:
                return
            raise
        time.sleep(0.5)
    raise WaitTimeout(f"EnvoyFilter {names.GATEWAY_NAMESPACE}/{name} was still present after {timeout:.0f} s")


@contextlib.contextmanager
def routing_off(session: Any, params: Any) -> Iterator[None]:
    """Inside the block the ext_proc EnvoyFilter is deleted (requests bypass the EPP); it is always
    re-applied on the way out, also when the block fails."""
    from kubernetes.client.exceptions import ApiException

    from rhaii_nb.apply import apply_objects

    ext_proc = ext_proc_filter(params)
    name = ext_proc["metadata"]["name"]
    settle = SETTLE_S.get(params.target, 5.0)
    try:
        session.custom.delete_namespaced_custom_object(
            ENVOYFILTER_GROUP, ENVOYFILTER_VERSION, names.GATEWAY_NAMESPACE, ENVOYFILTER_PLURAL, name
        )
    except ApiException as exc:
        if exc.status != 404:
            raise
    try:
        _wait_gone(session, name, timeout=60.0)
        time.sleep(settle)
        yield
    finally:
        from rhaii_nb.training import as_the_runbook_applies

        apply_objects(session, as_the_runbook_applies(params, [ext_proc]), show=False)
        time.sleep(settle)


@dataclass
class RoutingComparison:
    """The same shared-prefix workload with cache-aware routing on and off."""

    runs: dict[str, pd.DataFrame]  # mode -> one row per request (measure.RECORD_COLUMNS)
    replica_stats: dict[str, pd.DataFrame]  # mode -> per-replica metrics delta (metrics.stats_delta)
    wall_s: dict[str, float] = field(default_factory=dict)

    def summary(self) -> pd.DataFrame:
        """Per mode: hit rate from the replicas' metrics, TTFT p50/p90, req/s, per-replica spread."""
        from rhaii_nb.measure import latency_percentiles

        rows = []
        for mode, df in self.runs.items():
            stats = self.replica_stats[mode]
            queries, hits = float(stats["queries"].sum()), float(stats["hits"].sum())
            ttft = latency_percentiles(df[df["error"].isna()], "ttft_s")
            served = df["replica"].dropna().value_counts()
            ok = int(df["error"].isna().sum())
            rows.append(
                {
                    "routing": mode,
                    "requests": len(df),
                    "failed": len(df) - ok,
                    "hit_rate_pct": hits / queries * 100 if queries else math.nan,
                    "ttft_p50_ms": ttft["p50"] * 1000,
                    "ttft_p90_ms": ttft["p90"] * 1000,
                    "req_per_s": ok / self.wall_s[mode] if self.wall_s.get(mode) else math.nan,
                    "replicas_used": int(served.size),
                    "busiest_replica_share_pct": float(served.max() / served.sum() * 100)
                    if served.size
                    else math.nan,
                    "prefix_affinity_pct": _affinity(df),
                }
            )
        return pd.DataFrame(rows).set_index("routing")


def _affinity(df: pd.DataFrame) -> float:
    """Share of requests served by the replica that served most of their prefix's requests (100 = sticky)."""
    data = df.dropna(subset=["replica"])
    if data.empty or "prefix_id" not in data:
        return math.nan
    top = data.groupby("prefix_id")["replica"].agg(lambda s: s.value_counts().iloc[0]).sum()
    return float(top / len(data) * 100)


def compare_routing(
    session: Any,
    params: Any,
    *,
    prefixes: int = 4,
    suffixes: int = 8,
    prefix_tokens: int = 1024,
    concurrency: int = 3,
    max_tokens: int = 4,
    show: bool = True,
) -> RoutingComparison:
    """Run a P-prefixes x S-suffixes workload through the gateway with routing on, then off (ext_proc
    EnvoyFilter removed, re-applied afterwards). Each mode uses its own fresh prefixes, so both
    start with cold caches; the replicas' ``/metrics`` are read before and after each run."""
    from rhaii_nb import measure, metrics
    from rhaii_nb.display import show_text
    from rhaii_nb.workload import shared_prefix_workload

    endpoint = measure.gateway_endpoint(session, params)
    runs: dict[str, pd.DataFrame] = {}
    stats: dict[str, pd.DataFrame] = {}
    wall: dict[str, float] = {}

    def one(mode: str) -> None:
        nonce = f"{mode}-{time.time_ns()}"
        # Shuffled: in a fixed cycle a round-robin router would send each prefix to one replica by chance.
        workload = shared_prefix_workload(prefixes, suffixes, prefix_tokens, seed=nonce, order="shuffled")
        before = metrics.service_stats(session, params)
        result = measure.load(
            endpoint,
            [w.text for w in workload],
            requests=len(workload),
            concurrency=concurrency,
            max_tokens=max_tokens,
        )
        after = metrics.service_stats(session, params)
        df = result.df.copy()
        df["prefix_id"] = [workload[int(i)].prefix_id for i in df["i"]]
        runs[mode], stats[mode], wall[mode] = df, metrics.stats_delta(before, after), result.wall_s
        if show:
            show_text(f"routing {mode}: {len(df)} requests in {result.wall_s:.1f} s")

    one("cache-aware")
    with routing_off(session, params):
        one("round-robin")
    return RoutingComparison(runs, stats, wall)
