"""Scenario ``node-loss``: a TPU node disappears shortly after the replicas are up.

Once every node of a TPU pool is Ready and a workload pod (``kserve.io/component=workload``) runs
on one of them, the twin waits ~2 minutes (scaled) and removes that node, as a TPU host
maintenance event or a preemption would. The pool keeps its requested size, so the pool reports
fewer nodes than requested (RUNNING_WITH_ERROR) until someone resizes it; the evicted replica is
re-created by its Deployment and stays Pending. It happens once per twin run.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from rhaii_nb.twin.gke import kubeside
from rhaii_nb.twin.gke.cluster import state

log = logging.getLogger(__name__)

SCENARIO = "node-loss"
LOSS_DELAY_S = 120  # real-world seconds between "replicas up" and the loss
POLL_S = 0.25  # wall-clock seconds between checks
WORKLOAD_LABEL = ("kserve.io/component", "workload")


def _victim(ctx: Any) -> tuple[Any, str] | None:
    """(pool, node) to lose: a node of a fully Ready TPU pool running a workload pod, else None."""
    for cluster in state(ctx).clusters.values():
        for pool in cluster.pools.values():
            if not pool.machine.is_tpu or not pool.nodes or len(pool.ready) < pool.target:
                continue
            for node in pool.nodes:
                for pod in kubeside.pods_on(ctx, node):
                    labels = pod.get("metadata", {}).get("labels") or {}
                    running = (pod.get("status") or {}).get("phase") == "Running"
                    if running and labels.get(WORKLOAD_LABEL[0]) == WORKLOAD_LABEL[1]:
                        return pool, node
    return None


async def run(ctx: Any) -> None:
    """Watch for the moment to lose a TPU node while the scenario is on (checked continuously)."""
    while True:
        await asyncio.sleep(POLL_S)
        if not ctx.scenario(SCENARIO):
            continue
        found = _victim(ctx)
        if found is None:
            continue
        await ctx.clock.sleep(LOSS_DELAY_S)
        pool, node = found
        if node not in pool.nodes:  # resized or deleted meanwhile: look again
            continue
        evicted = state(ctx).lose_node(pool, node)
        log.warning("scenario node-loss: node %s lost; pods evicted: %s", node, ", ".join(evicted) or "none")
        return
