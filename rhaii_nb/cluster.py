"""GKE cluster lifecycle with google-cloud-container: create (idempotent), resize, delete (guarded).

- :func:`create` makes the cluster (labelled ``created-by=rhaii-nb``; GKE Dataplane V2 — which
  enforces NetworkPolicy — when ``params.apply_network_policies``, unlike the guide's script which
  leaves policies unenforced) and the TPU v6e node pool (machine type, topology, node count from
  params). An existing cluster/pool is adopted when it matches and reported with its differences when
  it does not. Operations are awaited with a progress line and elapsed time.
- :func:`resize` scales the TPU pool (up, down, to zero and back).
- :func:`delete` removes only what the runbook created (label check) and only with ``confirm=True``.

Every create/resize/delete is appended to a small ledger (``<session state dir>/node_pool_ledger.json``)
so :func:`node_hours` can price the run across notebooks (each notebook is its own kernel).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd
from google.api_core import exceptions as gexc
from google.cloud import container_v1

from rhaii_nb.display import Live, elapsed
from rhaii_nb.polling import poll_interval

LABEL_KEY, LABEL_VALUE = "created-by", "rhaii-nb"
# The cluster's own pool for system pods (operators, gateway, EPP), as the guide's script creates it.
SYSTEM_POOL, SYSTEM_MACHINE_TYPE, SYSTEM_NODES = "default-pool", "n1-standard-4", 2
POLL_S = 2.0  # on GKE; the twin asks more often (polling.poll_interval)


class ClusterMismatch(RuntimeError):
    """An existing cluster or node pool differs from the params in a way the runbook cannot adopt."""


class OperationFailed(RuntimeError):
    """A GKE operation finished with an error."""


class NotConfirmed(RuntimeError):
    """A deletion was asked without ``confirm=True``."""


@dataclass
class StepRecord:
    """What one lifecycle step did and how long it took."""

    step: str
    target: str
    action: str  # created | adopted | resized | deleted | absent | unchanged
    seconds: float
    started_at: float
    finished_at: float
    node_count: int | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class _StepClock:
    """Times one lifecycle step: wall-clock start and end for the record, monotonic for its length."""

    begun: float = field(default_factory=time.time)
    started: float = field(default_factory=time.monotonic)

    def record(self, step: str, target: str, action: str, **extra: Any) -> StepRecord:
        """The step's :class:`StepRecord`, ending now."""
        seconds = round(time.monotonic() - self.started, 2)
        return StepRecord(step, target, action, seconds, self.begun, time.time(), **extra)


@dataclass
class ClusterRecord:
    """Result of :func:`create`: the steps and the differences found on adopted objects."""

    cluster: str
    steps: list[StepRecord]
    differences: list[str] = field(default_factory=list)

    @property
    def table(self) -> pd.DataFrame:
        """The steps as a table (step, target, action, seconds, node_count, notes)."""
        rows = [{**asdict(s), "notes": "; ".join(s.notes)} for s in self.steps]
        return pd.DataFrame(rows, columns=["step", "target", "action", "seconds", "node_count", "notes"])


# --- specs --------------------------------------------------------------------------------------


def cluster_spec(params: Any) -> container_v1.Cluster:
    """The cluster the runbook creates (with the CPU system pool; the TPU pool is added separately)."""
    network_config = container_v1.NetworkConfig()
    if params.apply_network_policies:
        # Dataplane V2 enforces NetworkPolicy natively; without it the optional policies do nothing.
        network_config.datapath_provider = container_v1.DatapathProvider.ADVANCED_DATAPATH
    return container_v1.Cluster(
        name=params.cluster_name,
        description="RHAII inference on TPU v6e (created by the rhaii-nb runbook)",
        resource_labels={LABEL_KEY: LABEL_VALUE},
        node_pools=[
            container_v1.NodePool(
                name=SYSTEM_POOL,
                initial_node_count=SYSTEM_NODES,
                config=container_v1.NodeConfig(machine_type=SYSTEM_MACHINE_TYPE),
            )
        ],
        ip_allocation_policy=container_v1.IPAllocationPolicy(use_ip_aliases=True),
        network_config=network_config,
    )


def node_pool_spec(params: Any) -> container_v1.NodePool:
    """The TPU v6e node pool: machine type, single-host topology, one node per replica."""
    return container_v1.NodePool(
        name=params.node_pool,
        initial_node_count=params.num_nodes,
        locations=[params.zone],
        config=container_v1.NodeConfig(
            machine_type=params.machine_type, resource_labels={LABEL_KEY: LABEL_VALUE}
        ),
        placement_policy=container_v1.NodePool.PlacementPolicy(tpu_topology=params.tpu_topology),
    )


def cluster_differences(cluster: container_v1.Cluster, params: Any) -> tuple[list[str], list[str]]:
    """(blocking, informational) differences between an existing cluster and the params."""
    blocking, info = [], []
    if params.apply_network_policies:
        dpv2 = cluster.network_config.datapath_provider == container_v1.DatapathProvider.ADVANCED_DATAPATH
        legacy_policy = bool(cluster.network_policy.enabled)  # --enable-network-policy (Calico)
        if not (dpv2 or legacy_policy):
            blocking.append(
                "NetworkPolicy enforcement is off (no Dataplane V2, no --enable-network-policy), but "
                "apply_network_policies is true: the policies would silently do nothing"
            )
    if cluster.resource_labels.get(LABEL_KEY) != LABEL_VALUE:
        info.append(
            f"label {LABEL_KEY}={LABEL_VALUE} missing: the runbook did not create it and will not delete it"
        )
    status = container_v1.Cluster.Status(cluster.status).name
    if status in ("ERROR", "STOPPING"):
        blocking.append(f"cluster status is {status}")
    return blocking, info


def node_pool_differences(pool: container_v1.NodePool, params: Any) -> tuple[list[str], list[str]]:
    """(blocking, informational) differences between an existing node pool and the params."""
    blocking, info = [], []
    if pool.config.machine_type != params.machine_type:
        blocking.append(f"machine type {pool.config.machine_type} (params: {params.machine_type})")
    topology = pool.placement_policy.tpu_topology
    if topology and topology != params.tpu_topology:
        blocking.append(f"TPU topology {topology} (params: {params.tpu_topology})")
    if pool.initial_node_count and pool.initial_node_count != params.num_nodes:
        info.append(
            f"{pool.initial_node_count} nodes (params: {params.num_nodes}); use cluster.resize to change"
        )
    return blocking, info


# --- operations ---------------------------------------------------------------------------------


def wait_operation(
    session: Any, operation: container_v1.Operation, what: str, timeout: float, *, show: bool = True
) -> container_v1.Operation:
    """Poll a GKE operation until DONE, showing progress and elapsed time; raise on error or timeout."""
    name = f"{session.location_path}/operations/{operation.name}"
    started = time.monotonic()
    live = Live(enabled=show, min_interval_s=10.0)
    op = operation
    try:
        while op.status != container_v1.Operation.Status.DONE:
            if time.monotonic() - started > timeout:
                raise TimeoutError(
                    f"Timed out after {elapsed(timeout)} {what}: operation {operation.name} still "
                    f"{container_v1.Operation.Status(op.status).name}"
                    + (f" ({_progress(op)})" if _progress(op) else "")
                    + ". It keeps running on GKE; re-run this step to keep waiting (it adopts it), or raise "
                    "cluster_timeout_s."
                )
            live.update(
                f"{what}: {_progress(op) or container_v1.Operation.Status(op.status).name} · "
                f"{elapsed(time.monotonic() - started)}"
            )
            time.sleep(poll_interval(session.params, POLL_S))
            op = session.gke.get_operation(name=name, retry=session.gcp.retry)
        live.update(f"{what}: done in {elapsed(time.monotonic() - started)}")
    finally:
        live.close()
    if op.error and op.error.code:
        raise OperationFailed(f"{what} failed: {op.error.message or op.status_message}")
    return op


def _progress(op: container_v1.Operation) -> str:
    metrics = {m.name: m.int_value for m in op.progress.metrics}
    parts = []
    if "NODES_TOTAL" in metrics:
        parts.append(f"nodes {metrics.get('NODES_DONE', 0)}/{metrics['NODES_TOTAL']}")
    if op.detail:
        parts.append(op.detail)
    return ", ".join(parts)


def _wait_status(
    session: Any, fetch: Any, ready: tuple[str, ...], what: str, timeout: float, show: bool
) -> Any:
    """Poll ``fetch()`` until its status name is in ``ready`` (adopting something still being made)."""
    started = time.monotonic()
    live = Live(enabled=show, min_interval_s=10.0)
    try:
        while True:
            obj = fetch()
            status = type(obj).Status(obj.status).name
            if status in ready:
                return obj
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"Timed out after {elapsed(timeout)} {what}: status still {status}")
            live.update(f"{what}: {status} · {elapsed(time.monotonic() - started)}")
            time.sleep(poll_interval(session.params, POLL_S))
    finally:
        live.close()


# --- create -------------------------------------------------------------------------------------


def create(session: Any, params: Any, *, timeout: float | None = None, show: bool = True) -> ClusterRecord:
    """Create (or adopt) the cluster and its TPU v6e node pool; wait until both are RUNNING."""
    timeout = timeout if timeout is not None else params.wait_s("cluster_timeout_s")
    deadline = time.monotonic() + timeout
    steps: list[StepRecord] = []
    notes: list[str] = []

    clock = _StepClock()
    cluster = session.get_cluster()
    if cluster is None:
        op = _create_or_busy(
            lambda: session.gke.create_cluster(
                parent=session.location_path, cluster=cluster_spec(params), retry=session.gcp.retry
            )
        )
        if op is not None:
            wait_operation(
                session, op, f"creating cluster {params.cluster_name}", deadline - time.monotonic(), show=show
            )
        action = "created"
    else:
        blocking, info = cluster_differences(cluster, params)
        if blocking:
            raise ClusterMismatch(
                f"Cluster {params.cluster_name} exists but differs from the params: "
                + "; ".join(blocking)
                + ". Fix: delete it (cluster.delete) or use another cluster_name."
            )
        notes += info
        action = "adopted"
    cluster = _wait_status(
        session,
        session.get_cluster,
        ("RUNNING",),
        f"cluster {params.cluster_name}",
        deadline - time.monotonic(),
        show,
    )
    steps.append(clock.record("cluster", params.cluster_name, action, notes=notes))
    session.reset_kube()  # the Kubernetes endpoint exists now (or changed)

    steps.append(_ensure_node_pool(session, params, deadline, show))
    return ClusterRecord(params.cluster_name, steps, differences=[n for s in steps for n in s.notes])


def _create_or_busy(call: Any) -> container_v1.Operation | None:
    """Run a create call; None when the object already exists (a re-run racing an earlier one)."""
    try:
        return call()
    except gexc.AlreadyExists:
        return None


def _pool_name(session: Any, params: Any) -> str:
    return f"{session.cluster_path}/nodePools/{params.node_pool}"


def get_node_pool(session: Any, params: Any) -> container_v1.NodePool | None:
    """The TPU node pool, or None when absent."""
    try:
        return session.gke.get_node_pool(name=_pool_name(session, params), retry=session.gcp.retry)
    except gexc.NotFound:
        return None


def _ensure_node_pool(session: Any, params: Any, deadline: float, show: bool) -> StepRecord:
    clock = _StepClock()
    notes: list[str] = []
    pool = get_node_pool(session, params)
    what = f"node pool {params.node_pool} ({params.num_nodes}× {params.machine_type}, {params.tpu_topology})"
    if pool is None:
        op = _create_or_busy(
            lambda: session.gke.create_node_pool(
                parent=session.cluster_path, node_pool=node_pool_spec(params), retry=session.gcp.retry
            )
        )
        if op is not None:
            done = wait_operation(session, op, f"creating {what}", deadline - time.monotonic(), show=show)
            if done.status_message:
                notes.append(done.status_message)
        action = "created"
    else:
        blocking, info = node_pool_differences(pool, params)
        if blocking:
            raise ClusterMismatch(
                f"Node pool {params.node_pool} exists but differs from the params: "
                + "; ".join(blocking)
                + ". Fix: delete the pool (cluster.delete_node_pool) or change the params."
            )
        notes += info
        action = "adopted"
    pool = _wait_status(
        session,
        lambda: get_node_pool(session, params),
        ("RUNNING", "RUNNING_WITH_ERROR"),
        what,
        deadline - time.monotonic(),
        show,
    )
    nodes = current_node_count(session, params)
    if nodes is not None and nodes < params.num_nodes:
        notes.append(f"only {nodes}/{params.num_nodes} nodes exist (quota or capacity)")
    if action == "created":
        _ledger_add(session, params, "create", nodes if nodes is not None else params.num_nodes)
    return clock.record("node pool", params.node_pool, action, node_count=nodes, notes=notes)


def current_node_count(session: Any, params: Any) -> int | None:
    """Nodes of the TPU pool registered in Kubernetes (None when the API is unreachable)."""
    try:
        answer = session.core.list_node(label_selector=f"cloud.google.com/gke-nodepool={params.node_pool}")
    except Exception:
        return None
    return len(answer.items)


def tpu_nodes(session: Any, params: Any) -> pd.DataFrame:
    """The TPU pool's nodes as Kubernetes sees them: name, ready, TPU chips, topology, accelerator."""
    answer = session.core.list_node(label_selector=f"cloud.google.com/gke-nodepool={params.node_pool}")
    rows = []
    for node in answer.items:
        labels = node.metadata.labels or {}
        ready = next((c.status for c in node.status.conditions or [] if c.type == "Ready"), "Unknown")
        rows.append(
            {
                "node": node.metadata.name,
                "ready": ready,
                "chips": int((node.status.capacity or {}).get("google.com/tpu", 0)),
                "topology": labels.get("cloud.google.com/gke-tpu-topology", ""),
                "accelerator": labels.get("cloud.google.com/gke-tpu-accelerator", ""),
            }
        )
    return pd.DataFrame(rows, columns=["node", "ready", "chips", "topology", "accelerator"])


def summary(session: Any, params: Any) -> dict[str, Any]:
    """What the guide's step 2 checks: cluster and pool status, TPU nodes Ready, chips."""
    cluster = session.get_cluster()
    pool = get_node_pool(session, params) if cluster is not None else None
    nodes = tpu_nodes(session, params) if cluster is not None else pd.DataFrame(columns=["ready", "chips"])
    return {
        "cluster_status": container_v1.Cluster.Status(cluster.status).name if cluster else "absent",
        "node_pool_status": container_v1.NodePool.Status(pool.status).name if pool else "absent",
        "tpu_nodes": len(nodes),
        "tpu_nodes_ready": int((nodes["ready"] == "True").sum()),
        "tpu_chips": int(nodes["chips"].sum()),
    }


# --- resize -------------------------------------------------------------------------------------


def resize(
    session: Any, params: Any, node_count: int, *, timeout: float | None = None, show: bool = True
) -> StepRecord:
    """Set the TPU pool's size (0 scales it away, keeping the pool; N brings nodes back)."""
    if node_count < 0:
        raise ValueError(f"node_count must be ≥ 0, not {node_count}")
    timeout = timeout if timeout is not None else params.wait_s("cluster_timeout_s")
    clock = _StepClock()
    if get_node_pool(session, params) is None:
        raise ClusterMismatch(
            f"Node pool {params.node_pool} does not exist. Fix: create it first (cluster.create)."
        )
    op = session.gke.set_node_pool_size(
        request=container_v1.SetNodePoolSizeRequest(name=_pool_name(session, params), node_count=node_count),
        retry=session.gcp.retry,
    )
    done = wait_operation(
        session, op, f"resizing {params.node_pool} to {node_count} nodes", timeout, show=show
    )
    _ledger_add(session, params, "resize", node_count)
    return clock.record(
        "resize",
        params.node_pool,
        "resized",
        node_count=node_count,
        notes=[done.status_message] if done.status_message else [],
    )


# --- delete -------------------------------------------------------------------------------------


def _require_confirm(confirm: bool, what: str) -> None:
    if confirm is not True:
        raise NotConfirmed(
            f"Refusing to delete {what} without confirmation. Fix: pass confirm=True "
            "(in the teardown notebook: set confirm_delete: true in the params)."
        )


def _require_ours(cluster: container_v1.Cluster, params: Any) -> None:
    if cluster.resource_labels.get(LABEL_KEY) != LABEL_VALUE:
        raise ClusterMismatch(
            f"Cluster {params.cluster_name} is not labelled {LABEL_KEY}={LABEL_VALUE}: "
            "the runbook did not create it, so it will not delete it."
        )


def delete_node_pool(
    session: Any, params: Any, *, confirm: bool = False, timeout: float | None = None, show: bool = True
) -> StepRecord:
    """Delete the TPU node pool (stops the TPU cost, keeps the cluster); only in a cluster we created."""
    _require_confirm(confirm, f"node pool {params.node_pool}")
    timeout = timeout if timeout is not None else params.wait_s("delete_timeout_s")
    clock = _StepClock()
    cluster = session.get_cluster()
    if cluster is None or get_node_pool(session, params) is None:
        return clock.record("delete node pool", params.node_pool, "absent")
    _require_ours(cluster, params)
    op = session.gke.delete_node_pool(name=_pool_name(session, params), retry=session.gcp.retry)
    wait_operation(session, op, f"deleting node pool {params.node_pool}", timeout, show=show)
    _ledger_add(session, params, "delete", 0)
    return clock.record("delete node pool", params.node_pool, "deleted", node_count=0)


def delete(
    session: Any, params: Any, *, confirm: bool = False, timeout: float | None = None, show: bool = True
) -> StepRecord:
    """Delete the cluster (and its pools) — only if labelled ``created-by=rhaii-nb`` and ``confirm=True``."""
    _require_confirm(confirm, f"cluster {params.cluster_name}")
    timeout = timeout if timeout is not None else params.wait_s("delete_timeout_s")
    clock = _StepClock()
    cluster = session.get_cluster()
    if cluster is None:
        return clock.record("delete cluster", params.cluster_name, "absent")
    _require_ours(cluster, params)
    try:
        op = session.gke.delete_cluster(name=session.cluster_path, retry=session.gcp.retry)
        wait_operation(session, op, f"deleting cluster {params.cluster_name}", timeout, show=show)
    except gexc.NotFound:
        pass  # deleted meanwhile
    session.reset_kube()
    _ledger_add(session, params, "delete", 0)
    return clock.record("delete cluster", params.cluster_name, "deleted", node_count=0)


# --- node-hours ---------------------------------------------------------------------------------


def _ledger_path(session: Any) -> Any:
    return session.state_dir / "node_pool_ledger.json"


def ledger(session: Any) -> list[dict[str, Any]]:
    """Recorded TPU pool size changes: ``{t, pool, action, node_count, chips_per_node}`` (epoch seconds)."""
    path = _ledger_path(session)
    return json.loads(path.read_text()) if path.exists() else []


def _ledger_add(session: Any, params: Any, action: str, node_count: int) -> None:
    entries = ledger(session)
    try:
        chips = params.chips_per_node
    except Exception:
        chips = None
    entries.append(
        {
            "t": time.time(),
            "pool": params.node_pool,
            "action": action,
            "node_count": node_count,
            "chips_per_node": chips,
        }
    )
    path = _ledger_path(session)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entries, indent=1))


def node_hours(
    session: Any, until: float | None = None, entries: list[dict[str, Any]] | None = None
) -> dict[str, float]:
    """TPU node-hours and chip-hours from the ledger (pool sizes integrated over time, up to ``until``)."""
    entries = ledger(session) if entries is None else entries
    until = until or time.time()
    nodes = chips = 0.0
    for current, following in zip(entries, [*entries[1:], None], strict=True):
        end = following["t"] if following is not None else until
        hours = max(0.0, end - current["t"]) / 3600
        nodes += current["node_count"] * hours
        chips += current["node_count"] * (current.get("chips_per_node") or 0) * hours
    return {"node_hours": round(nodes, 4), "chip_hours": round(chips, 4)}
