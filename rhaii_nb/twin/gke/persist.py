"""Keep the twin's GKE model across daemon restarts (``<home>/gke.json``), next to the store snapshot.

The daemon snapshots the Kubernetes objects; this file keeps what GKE knows (clusters, pools, sizes),
so a restarted twin still has its cluster, and its Kubernetes API comes back up. Pools are
reconciled with the Node objects actually restored.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from rhaii_nb.gcp_catalog import load_catalog

log = logging.getLogger(__name__)

FILE_NAME = "gke.json"
_POOL_FIELDS = (
    "name", "zone", "initial_node_count", "config", "placement_policy", "autoscaling", "target", "nodes",
    "status", "status_message", "conditions", "pool_hash", "created",
)  # fmt: skip
_CLUSTER_FIELDS = (
    "name", "project", "location", "request", "status", "status_message", "endpoint", "ca_certificate",
    "created", "cluster_id",
)  # fmt: skip


def _path(ctx: Any) -> Path | None:
    home = getattr(ctx, "home", None)
    return Path(home) / FILE_NAME if home else None


def save(gke: Any) -> None:
    """Write the clusters and pools (best effort; a failure is logged, never raised)."""
    path = _path(gke.ctx)
    if path is None:
        return
    data = {
        "quota_overrides": gke.quota.overrides,
        "clusters": [
            {
                **{f: getattr(c, f) for f in _CLUSTER_FIELDS},
                "pools": [
                    {
                        **{f: getattr(p, f) for f in _POOL_FIELDS},
                        "machine": p.machine.name,
                        "ready": sorted(p.ready),
                    }
                    for p in c.pools.values()
                ],
            }
            for c in gke.clusters.values()
            if c.status == "RUNNING"
        ],
    }
    try:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("could not save %s: %s", path, exc)


def load(gke: Any) -> None:
    """Read the saved model (if any) into ``gke``, keeping only nodes that exist in the store."""
    from rhaii_nb.twin.gke.cluster import Cluster
    from rhaii_nb.twin.gke.pools import NodePool

    path = _path(gke.ctx)
    if path is None or not path.exists():
        return
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        log.error("could not read %s (%s): starting without clusters", path, exc)
        return
    store = gke.ctx.store
    existing = {n["metadata"]["name"] for n in store.list(store.resource("", "v1", "nodes"))[0]}
    catalog = load_catalog()
    gke.quota.overrides.update(data.get("quota_overrides") or {})
    for raw in data.get("clusters", []):
        cluster = Cluster(**{f: raw[f] for f in _CLUSTER_FIELDS})
        for raw_pool in raw.get("pools", []):
            machine = catalog.machine_type(raw_pool["machine"])
            if machine is None:
                continue
            pool = NodePool(machine=machine, **{f: raw_pool[f] for f in _POOL_FIELDS})
            pool.nodes = [n for n in pool.nodes if n in existing]
            pool.ready = {n for n in raw_pool.get("ready", []) if n in pool.nodes}
            cluster.pools[pool.name] = pool
        gke.clusters[(cluster.project, cluster.location, cluster.name)] = cluster
