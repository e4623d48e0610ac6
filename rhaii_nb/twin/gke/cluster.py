"""The twin's GKE: one cluster, its node pools, and the operations that create, resize and delete them.

The twin hosts exactly one cluster. Its Kubernetes API belongs to it: the listener is started
(``ctx.start_kube_api``) once the control plane of a created cluster is up and stopped when the
cluster is deleted, and ``ctx.cluster`` describes it meanwhile. Durations are GKE's (the guide: ~5 min
control plane, ~15 min for a 3-node TPU v6e pool) scaled by ``ctx.clock``; nodes appear one by one
as a pool provisions, NotReady first.

``GkeState`` (in ``ctx.parts["gke"]``) holds the model; ``server.py`` maps HTTP onto it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import ipaddress
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from rhaii_nb.gcp_catalog import load_catalog
from rhaii_nb.twin.gke import kubeside, nodes, persist
from rhaii_nb.twin.gke.errors import (
    GoogleError,
    already_exists,
    failed_precondition,
    invalid_argument,
    not_found,
)
from rhaii_nb.twin.gke.operations import API_BASE, Operation, Operations, rfc3339
from rhaii_nb.twin.gke.pools import NODE_VERSION, NodePool, check_name
from rhaii_nb.twin.gke.quota import TpuQuota

log = logging.getLogger(__name__)

PART = "gke"
DEFAULT_PROJECT = "twin-project"
DEFAULT_LOCATION = "europe-west4-a"
MASTER_VERSION = NODE_VERSION

# Real-world durations (seconds) the twin scales with ctx.clock.
CONTROL_PLANE_S = 210  # control plane up; with the default pool's nodes the cluster takes ~5 min
CLUSTER_DELETE_S = 180
TPU_POOL_BASE_S = 360  # a 3-node TPU pool: 360 + 3 × 180 = 15 min
TPU_NODE_S = 180
CPU_POOL_BASE_S = 30
CPU_NODE_S = 30
RESIZE_BASE_S = 60
NODE_BOOT_S = 60  # from Node registered (NotReady) to Ready
NODE_REMOVE_S = 30
DRAIN_MAX_S = 30.0  # wall seconds a resize waits for a removed node's pods to stop gracefully
POOL_DELETE_BASE_S = 60

# What `twin up --cluster NAME` pre-creates: the guide's cluster script (n1-standard-4 × 2 system
# nodes) and its 3-node ct6e-standard-4t pool.
SYSTEM_POOL, SYSTEM_MACHINE, SYSTEM_NODES = "default-pool", "n1-standard-4", 2
TPU_POOL, TPU_MACHINE, TPU_TOPOLOGY, TPU_NODES = "tpu-pool", "ct6e-standard-4t", "2x2", 3


@dataclass
class Cluster:
    """The twin's cluster as GKE describes it."""

    name: str
    project: str
    location: str
    request: dict[str, Any]
    status: str = "PROVISIONING"
    status_message: str = ""
    endpoint: str = ""
    ca_certificate: str = ""
    pools: dict[str, NodePool] = field(default_factory=dict)
    created: float = field(default_factory=time.time)
    cluster_id: str = field(default_factory=lambda: secrets.token_hex(16))

    @property
    def labels(self) -> dict[str, str]:
        """``resourceLabels`` as given at creation."""
        return dict(self.request.get("resourceLabels") or {})

    @property
    def network_policy_enforced(self) -> bool:
        """Whether NetworkPolicies are enforced: Dataplane V2 or the Calico network-policy add-on."""
        dpv2 = (self.request.get("networkConfig") or {}).get("datapathProvider") == "ADVANCED_DATAPATH"
        calico = bool((self.request.get("networkPolicy") or {}).get("enabled"))
        return dpv2 or calico

    @property
    def path(self) -> str:
        """``projects/P/locations/L/clusters/C``."""
        return f"projects/{self.project}/locations/{self.location}/clusters/{self.name}"

    def pool(self, name: str) -> NodePool:
        """One node pool; 404 as GKE words it otherwise."""
        pool = self.pools.get(name)
        if pool is None:
            raise not_found(f"Not found: {self.path}/nodePools/{name}.")
        return pool

    def to_json(self) -> dict[str, Any]:
        """The cluster as container v1 returns it."""
        req = self.request
        region = self.location.rsplit("-", 1)[0]
        network_config = {
            "network": f"projects/{self.project}/global/networks/default",
            "subnetwork": f"projects/{self.project}/regions/{region}/subnetworks/default",
            **(req.get("networkConfig") or {}),
        }
        body: dict[str, Any] = {
            "name": self.name,
            "nodePools": [p.to_json(self.project, self.location, self.name) for p in self.pools.values()],
            "locations": [self.location],
            "resourceLabels": self.labels,
            "labelFingerprint": hashlib.sha256(json.dumps(self.labels, sort_keys=True).encode()).hexdigest()[
                :8
            ],
            "loggingService": "logging.googleapis.com/kubernetes",
            "monitoringService": "monitoring.googleapis.com/kubernetes",
            "network": "default",
            "subnetwork": "default",
            "clusterIpv4Cidr": "10.4.0.0/14",
            "servicesIpv4Cidr": "34.118.224.0/20",
            "addonsConfig": req.get("addonsConfig") or {},
            "ipAllocationPolicy": req.get("ipAllocationPolicy") or {"useIpAliases": True},
            "networkConfig": network_config,
            "masterAuth": {"clusterCaCertificate": self.ca_certificate} if self.ca_certificate else {},
            "selfLink": f"{API_BASE}/projects/{self.project}/zones/{self.location}/clusters/{self.name}",
            "zone": self.location,
            "location": self.location,
            "endpoint": self.endpoint,
            "initialClusterVersion": MASTER_VERSION,
            "currentMasterVersion": MASTER_VERSION,
            "currentNodeVersion": NODE_VERSION,
            "createTime": rfc3339(self.created),
            "status": self.status,
            "nodeIpv4CidrSize": 24,
            "currentNodeCount": sum(len(p.nodes) for p in self.pools.values()),
            "releaseChannel": {"channel": "REGULAR"},
            "id": self.cluster_id,
            "etag": self.cluster_id[:8],
        }
        if self.pools:
            body["nodeConfig"] = next(iter(self.pools.values())).config
        for key in ("description", "networkPolicy"):
            if req.get(key):
                body[key] = req[key]
        if self.status_message:
            body["statusMessage"] = self.status_message
        return body


def _normalize(message: str, body: dict[str, Any]) -> dict[str, Any]:
    """Parse a request body with container v1's own schema: enum numbers become names, unknown fields drop.

    google-cloud-container sends ``enum-encoding=int`` (``datapathProvider: 2``), gcloud sends names.
    """
    from google.cloud.container_v1.types import cluster_service

    cls = getattr(cluster_service, message)
    try:
        parsed = cls.from_json(json.dumps(body), ignore_unknown_fields=True)
    except Exception as exc:  # json_format.ParseError: a wrong type somewhere
        raise invalid_argument(f"Invalid JSON payload received. {exc}") from None
    return json.loads(
        cls.to_json(parsed, use_integers_for_enums=False, always_print_fields_with_no_presence=False)
    )


class GkeState:
    """Clusters, operations and quota of the twin's GKE API."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.clusters: dict[tuple[str, str, str], Cluster] = {}
        self.operations = Operations()
        self.quota = TpuQuota(ctx)
        self._tasks: set[asyncio.Task[None]] = set()
        self._node_seq = 0

    # ----- lookups -----------------------------------------------------------------------------

    def cluster(self, project: str, location: str, name: str) -> Cluster:
        """The cluster; 404 as GKE words it otherwise."""
        for (p, loc, n), cluster in self.clusters.items():
            if p == project and n == name and location in ("-", loc):
                return cluster
        raise not_found(f"Not found: projects/{project}/locations/{location}/clusters/{name}.")

    def list_clusters(self, project: str, location: str) -> list[Cluster]:
        """Clusters of a project in a location (``-`` = all)."""
        return [c for (p, loc, _), c in self.clusters.items() if p == project and location in ("-", loc)]

    def tpu_chips_used(self, region: str) -> int:
        """TPU chips held by existing nodes in ``region``."""
        return sum(
            pool.chips
            for cluster in self.clusters.values()
            for pool in cluster.pools.values()
            if pool.zone.rsplit("-", 1)[0] == region
        )

    # ----- clusters ----------------------------------------------------------------------------

    def create_cluster(self, project: str, location: str, body: dict[str, Any]) -> Operation:
        """Validate a CreateClusterRequest and start provisioning; returns the RUNNING operation."""
        cluster, pools = self._new_cluster(project, location, body)
        op = self.operations.start(project, location, "CREATE_CLUSTER", cluster.name)
        self.clusters[(project, location, cluster.name)] = cluster
        op.progress("Creating cluster control plane", NODES_TOTAL=sum(p.target for p in pools), NODES_DONE=0)
        self._run(op, self._provision_cluster(cluster, pools, op))
        return op

    def _new_cluster(
        self, project: str, location: str, body: dict[str, Any]
    ) -> tuple[Cluster, list[NodePool]]:
        request = _normalize("CreateClusterRequest", body).get("cluster") or {}
        name = request.get("name", "")
        check_name("Cluster", name)
        zone = self._zone(location)
        for (p, loc, n), existing in self.clusters.items():
            if (p, loc, n) == (project, location, name):
                raise already_exists(f"Already exists: {existing.path}.")
            raise failed_precondition(
                f"The twin hosts one cluster and {existing.path} already exists. Delete it first "
                f"(gcloud container clusters delete {n} --zone {loc}) or use that cluster."
            )
        pool_requests = list(request.get("nodePools") or [])
        if not pool_requests:
            count = int(request.get("initialNodeCount", 0))
            if count <= 0:
                raise invalid_argument("Cluster.initial_node_count must be greater than zero.")
            pool_requests = [
                {"name": SYSTEM_POOL, "initialNodeCount": count, "config": request.get("nodeConfig") or {}}
            ]
        pools = [NodePool.from_request(p, zone) for p in pool_requests]
        names = [p.name for p in pools]
        if len(set(names)) != len(names):
            raise invalid_argument(f"Node pool names must be unique, got {names}.")
        request.pop("nodePools", None)
        return Cluster(name=name, project=project, location=location, request=request), pools

    def _zone(self, location: str) -> str:
        catalog = load_catalog()
        if location in catalog.zones:
            return location
        if location in catalog.regions:
            raise invalid_argument(
                f"The twin serves zonal clusters only: use a zone of {location} such as {location}-a "
                "(the guide uses europe-west4-a)."
            )
        raise not_found(f'Location "{location}" does not exist.')

    async def _provision_cluster(self, cluster: Cluster, pools: list[NodePool], op: Operation) -> None:
        await self.ctx.clock.sleep(CONTROL_PLANE_S * 0.6)
        await self._control_plane_up(cluster)
        op.progress("Control plane is up; creating node pools")
        await self.ctx.clock.sleep(CONTROL_PLANE_S * 0.4)
        for pool in pools:
            cluster.pools[pool.name] = pool
        warnings = await asyncio.gather(*(self._grow(cluster, pool, op, initial=True) for pool in pools))
        cluster.status = "RUNNING"
        op.finish(warning="; ".join(w for w in warnings if w))

    async def _control_plane_up(self, cluster: Cluster) -> None:
        """Give the cluster its endpoint + CA and start the Kubernetes API it owns."""
        url = self.ctx.endpoints.get("kubernetes", "https://127.0.0.1")
        cluster.endpoint = url.split("://", 1)[-1].rstrip("/")
        pki = self.ctx.pki
        if pki is not None:
            cluster.ca_certificate = base64.b64encode(pki.ca_cert_path.read_bytes()).decode()
        self.ctx.cluster = {
            "name": cluster.name,
            "project": cluster.project,
            "location": cluster.location,
            "zone": cluster.location,
            "region": cluster.location.rsplit("-", 1)[0],
            "endpoint": cluster.endpoint,
            "networkPolicyEnforced": cluster.network_policy_enforced,
            "resourceLabels": cluster.labels,
        }
        if self.ctx.start_kube_api is not None:
            await self.ctx.start_kube_api()

    def delete_cluster(self, project: str, location: str, name: str) -> Operation:
        """Start deleting the cluster: nodes go, the Kubernetes API stops, its objects are wiped."""
        cluster = self.cluster(project, location, name)
        op = self.operations.start(project, cluster.location, "DELETE_CLUSTER", name)
        cluster.status = "STOPPING"
        op.progress("Deleting cluster")
        self._run(op, self._teardown_cluster(cluster, op))
        return op

    async def _teardown_cluster(self, cluster: Cluster, op: Operation) -> None:
        await self.ctx.clock.sleep(CLUSTER_DELETE_S / 2)
        if self.ctx.cluster is not None and self.ctx.cluster.get("name") == cluster.name:
            if self.ctx.stop_kube_api is not None:
                await self.ctx.stop_kube_api()
            kubeside.wipe(self.ctx)
            self.ctx.cluster = None
        for pool in cluster.pools.values():
            pool.nodes.clear()
            pool.ready.clear()
        await self.ctx.clock.sleep(CLUSTER_DELETE_S / 2)
        self.clusters.pop((cluster.project, cluster.location, cluster.name), None)
        op.finish()

    # ----- node pools --------------------------------------------------------------------------

    def create_node_pool(
        self, project: str, location: str, cluster_name: str, body: dict[str, Any]
    ) -> Operation:
        """Validate a CreateNodePoolRequest and start provisioning the pool."""
        cluster = self.cluster(project, location, cluster_name)
        request = _normalize("CreateNodePoolRequest", body).get("nodePool") or {}
        name = request.get("name", "")
        if name in cluster.pools:
            raise already_exists(f"Already exists: {cluster.path}/nodePools/{name}.")
        pool = NodePool.from_request(request, cluster.location)
        op = self.operations.start(project, cluster.location, "CREATE_NODE_POOL", cluster.name, pool.name)
        cluster.pools[pool.name] = pool
        op.progress(f"Creating node pool {pool.name}", NODES_TOTAL=pool.target, NODES_DONE=0)
        self._run(op, self._finish_grow(cluster, pool, op, initial=True))
        return op

    def set_node_pool_size(
        self, project: str, location: str, cluster_name: str, pool_name: str, body: dict[str, Any]
    ) -> Operation:
        """Start resizing a pool to ``nodeCount`` (0 allowed): nodes are added or drained and removed."""
        cluster = self.cluster(project, location, cluster_name)
        pool = cluster.pool(pool_name)
        request = _normalize("SetNodePoolSizeRequest", body)
        count = int(request.get("nodeCount", 0))
        if count < 0:
            raise invalid_argument(f"Invalid value for field 'nodeCount': {count}. Must be >= 0.")
        op = self.operations.start(project, cluster.location, "SET_NODE_POOL_SIZE", cluster.name, pool.name)
        pool.target = count
        pool.status = "RECONCILING"
        op.progress(
            f"Resizing node pool {pool.name} to {count} nodes", NODES_TOTAL=count, NODES_DONE=len(pool.nodes)
        )
        self._run(op, self._finish_grow(cluster, pool, op, initial=False))
        return op

    def delete_node_pool(self, project: str, location: str, cluster_name: str, pool_name: str) -> Operation:
        """Start deleting a pool: its nodes are drained and removed, then the pool goes."""
        cluster = self.cluster(project, location, cluster_name)
        pool = cluster.pool(pool_name)
        op = self.operations.start(project, cluster.location, "DELETE_NODE_POOL", cluster.name, pool.name)
        pool.status, pool.target = "STOPPING", 0
        op.progress(f"Deleting node pool {pool.name}")
        self._run(op, self._delete_pool(cluster, pool, op))
        return op

    async def _delete_pool(self, cluster: Cluster, pool: NodePool, op: Operation) -> None:
        await self.ctx.clock.sleep(POOL_DELETE_BASE_S)
        await self._shrink(pool, op, reason="deleted with its node pool")
        cluster.pools.pop(pool.name, None)
        op.finish()

    async def _finish_grow(self, cluster: Cluster, pool: NodePool, op: Operation, *, initial: bool) -> None:
        warning = await self._grow(cluster, pool, op, initial=initial)
        op.finish(warning=warning)

    async def _grow(self, cluster: Cluster, pool: NodePool, op: Operation, *, initial: bool) -> str:
        """Bring ``pool`` to its target size; returns a quota warning ('' when the target was met)."""
        tpu = pool.machine.is_tpu
        if initial:
            await self.ctx.clock.sleep(TPU_POOL_BASE_S if tpu else CPU_POOL_BASE_S)
        else:
            await self.ctx.clock.sleep(RESIZE_BASE_S)
        await self._shrink(pool, op, reason="removed by a node pool resize")
        warning = ""
        per_node = TPU_NODE_S if tpu else CPU_NODE_S
        while len(pool.nodes) < pool.target:
            region = pool.zone.rsplit("-", 1)[0]
            if tpu and self.tpu_chips_used(region) + pool.machine.chips > self.quota.limit(region):
                warning = self._quota_exceeded(pool, region)
                break
            await self.ctx.clock.sleep(max(per_node - NODE_BOOT_S, 0))
            name = self._add_node(cluster, pool)
            op.progress(f"Node {name} registered, waiting for it to become Ready")
            await self.ctx.clock.sleep(min(NODE_BOOT_S, per_node))
            if kubeside.mark_ready(self.ctx, name):
                pool.ready.add(name)
            op.progress(
                f"{len(pool.nodes)} of {pool.target} nodes of {pool.name} ready",
                NODES_DONE=op.metrics.get("NODES_DONE", 0) + 1,
            )
        if not warning:
            pool.record_shortfall()
        return warning

    def _quota_exceeded(self, pool: NodePool, region: str) -> str:
        catalog = load_catalog()
        limit = self.quota.limit(region)
        reason = (
            f"Quota 'TPUS_PER_TPU_FAMILY' exceeded. Limit: {float(limit)} in region {region} "
            f"({catalog.tpu_quota_id}, tpu_family {catalog.tpu_quota_family})."
        )
        pool.record_shortfall(reason, code="GCE_QUOTA_EXCEEDED", canonical="RESOURCE_EXHAUSTED")
        kubeside.record_event(
            self.ctx,
            {
                "kind": "NodePool",
                "apiVersion": "container.googleapis.com/v1",
                "metadata": {"name": pool.name},
            },
            "FailedScaleUp",
            f"Node pool {pool.name}: {pool.status_message}",
            "Warning",
            "gke-node-pool",
        )
        return pool.status_message

    async def _shrink(self, pool: NodePool, op: Operation, *, reason: str) -> None:
        while len(pool.nodes) > pool.target:
            name = pool.nodes[-1]
            kubeside.cordon(self.ctx, name)
            await self._drain(name)
            await self.ctx.clock.sleep(NODE_REMOVE_S)
            self.remove_node(pool, name, reason)
            op.progress(f"Node {name} drained and deleted")

    async def _drain(self, name: str) -> None:
        """Evict the node's serving replicas gracefully (as GKE drains a node it removes: they finish
        their requests) and wait until their pods are gone; every other pod goes with the node."""
        pods_rt = self.ctx.store.resource("", "v1", "pods")
        serving = {
            (p["metadata"].get("namespace", ""), p["metadata"]["name"])
            for p in kubeside.pods_on(self.ctx, name)
            if self.ctx.replicas.get(p["metadata"].get("namespace", ""), p["metadata"]["name"]) is not None
        }
        for namespace, pod in serving:
            with contextlib.suppress(Exception):  # gone meanwhile
                self.ctx.store.delete(pods_rt, pod, namespace=namespace)

        def left() -> bool:
            on_node = {
                (p["metadata"].get("namespace", ""), p["metadata"]["name"])
                for p in kubeside.pods_on(self.ctx, name)
            }
            return bool(serving & on_node)

        deadline = asyncio.get_running_loop().time() + DRAIN_MAX_S
        while left() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)

    def _add_node(self, cluster: Cluster, pool: NodePool) -> str:
        self._node_seq += 1
        seq = self._node_seq
        name = nodes.node_name(cluster.name, pool.name, pool.pool_hash)
        node = nodes.build_node(
            name=name,
            project=cluster.project,
            pool=pool.name,
            zone=pool.zone,
            machine=pool.machine,
            topology=pool.topology,
            spot=pool.spot,
            internal_ip=str(ipaddress.ip_address("10.164.0.2") + seq),
            pod_cidr=f"10.{4 + seq // 256}.{seq % 256}.0/24",
            now=kubeside.now_k8s(),
            labels=pool.config.get("labels"),
            taints=[
                {
                    "key": t.get("key", ""),
                    "value": t.get("value", ""),
                    "effect": _taint_effect(t.get("effect")),
                }
                for t in pool.config.get("taints") or []
            ],
        )
        kubeside.register_node(self.ctx, node)
        pool.nodes.append(name)
        return name

    def remove_node(self, pool: NodePool, name: str, reason: str) -> list[str]:
        """Remove one node of ``pool`` from the model and the store, evicting its pods."""
        if name in pool.nodes:
            pool.nodes.remove(name)
        pool.ready.discard(name)
        return kubeside.remove_node(self.ctx, name, reason)

    def lose_node(self, pool: NodePool, name: str) -> list[str]:
        """A node disappears (preemption, maintenance): the pool keeps its target and reports the loss."""
        evicted = self.remove_node(pool, name, "was lost (TPU host maintenance event)")
        pool.record_shortfall(f"node {name} was lost (TPU host maintenance event)", canonical="UNAVAILABLE")
        return evicted

    # ----- tasks -------------------------------------------------------------------------------

    def _run(self, op: Operation, work: Awaitable[None]) -> None:
        """Run an operation's work in the background; a crash finishes the operation with an error."""

        async def guarded() -> None:
            try:
                await work
            except asyncio.CancelledError:
                if not op.done:
                    op.finish(error="Operation cancelled: the twin is shutting down.", code=1)
                raise
            except GoogleError as exc:
                op.finish(error=exc.message)
            except Exception as exc:
                log.exception("GKE operation %s failed", op.name)
                op.finish(error=f"Internal error in the twin's GKE: {exc}", code=13)
            persist.save(self)

        task = asyncio.get_running_loop().create_task(guarded(), name=f"gke-{op.operation_type}-{op.name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def resume(self) -> None:
        """After a daemon restart: bring the saved cluster's Kubernetes API back up."""
        for cluster in self.clusters.values():
            if cluster.status == "RUNNING" and self.ctx.cluster is None:
                await self._control_plane_up(cluster)
                for pool in cluster.pools.values():
                    if pool.status == "RUNNING" and len(pool.nodes) < pool.target:
                        pool.record_shortfall("nodes missing after the twin restarted")

    async def close(self) -> None:
        """Cancel running operations (daemon shutdown)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _taint_effect(effect: Any) -> str:
    """Taint effect in Kubernetes spelling (GKE's NodeTaint says NO_SCHEDULE)."""
    mapping = {
        "NO_SCHEDULE": "NoSchedule",
        "PREFER_NO_SCHEDULE": "PreferNoSchedule",
        "NO_EXECUTE": "NoExecute",
    }
    return mapping.get(str(effect), str(effect or "NoSchedule"))


def state(ctx: Any) -> GkeState:
    """The GKE state of a twin (created on first use, kept in ``ctx.parts["gke"]``)."""
    current = ctx.parts.get(PART)
    if current is None:
        current = ctx.parts[PART] = GkeState(ctx)
        persist.load(current)
    return current


async def precreate(
    ctx: Any, name: str, project: str = DEFAULT_PROJECT, location: str = DEFAULT_LOCATION
) -> Cluster:
    """Create the guide's cluster at once (no simulated waits): ``default-pool`` (2 × n1-standard-4)
    and ``tpu-pool`` (3 × ct6e-standard-4t, 2x2; fewer if the TPU quota is short), all nodes Ready,
    the Kubernetes API started. For ``twin up --cluster NAME``, tests and quick starts."""
    gke = state(ctx)
    for existing in gke.clusters.values():
        if (existing.project, existing.location, existing.name) == (project, location, name):
            await gke.resume()  # kept from a previous run of this twin home
            return existing
    body = {
        "cluster": {
            "name": name,
            "resourceLabels": {"created-by": "rhaii-nb"},
            "nodePools": [
                {
                    "name": SYSTEM_POOL,
                    "initialNodeCount": SYSTEM_NODES,
                    "config": {"machineType": SYSTEM_MACHINE},
                },
                {
                    "name": TPU_POOL,
                    "initialNodeCount": TPU_NODES,
                    "config": {"machineType": TPU_MACHINE},
                    "placementPolicy": {"tpuTopology": TPU_TOPOLOGY},
                },
            ],
        }
    }
    cluster, pools = gke._new_cluster(project, location, body)
    gke.clusters[(project, location, name)] = cluster
    await gke._control_plane_up(cluster)
    for pool in pools:
        cluster.pools[pool.name] = pool
        while len(pool.nodes) < pool.target:
            region = pool.zone.rsplit("-", 1)[0]
            if pool.machine.is_tpu and gke.tpu_chips_used(region) + pool.machine.chips > gke.quota.limit(
                region
            ):
                gke._quota_exceeded(pool, region)
                break
            node = gke._add_node(cluster, pool)
            if kubeside.mark_ready(ctx, node):
                pool.ready.add(node)
        else:
            pool.record_shortfall()
    cluster.status = "RUNNING"
    persist.save(gke)
    return cluster


# Re-exported for callers that only need the hooks' shape.
KubeApiHook = Callable[[], Awaitable[None]]
