"""The safe fixes ``diagnose(fix=True)`` applies: re-apply the runbook's EnvoyFilters or
NetworkPolicies (server-side apply of its own manifests, all of them, whatever a scenario skipped),
and resize the TPU node pool back to ``num_nodes`` when the quota holds it."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rhaii_nb.diagnose.findings import Finding
from rhaii_nb.diagnose.observe import ClusterView


@dataclass
class FixAction:
    """A fix ``diagnose(fix=True)`` applied (or could not)."""

    finding: str
    action: str
    ok: bool
    detail: str = ""


def _apply_group(session: Any, params: Any, group: str) -> str:
    """Server-side apply the runbook's full manifest group (the same objects the runbook applies)."""
    from rhaii_nb.apply import apply_objects
    from rhaii_nb.manifests import load_manifests, with_params
    from rhaii_nb.schema_validation import validate_objects

    objects = with_params(load_manifests(group), params).objects
    validate_objects(objects, params.chips_per_node, params.tpu_topology)
    result = apply_objects(session, objects, show=False)
    return ", ".join(f"{n} {outcome}" for outcome, n in result.counts().items())


def _resize_pool(session: Any, params: Any, view: ClusterView) -> str:
    from rhaii_nb import cluster

    if view.quota_chips is not None and view.quota_chips < params.pool_chips:
        raise RuntimeError(
            f"the quota ({view.quota_chips} chips) does not hold {params.num_nodes} nodes; not resizing"
        )
    step = cluster.resize(session, params, params.num_nodes, show=False)
    return f"node pool {params.node_pool} resized to {step.node_count} nodes in {step.seconds:.1f} s"


def apply_fixes(session: Any, params: Any, findings: list[Finding], view: ClusterView) -> list[FixAction]:
    """Apply the safe fix of each fixable finding (each at most once)."""
    actions: list[FixAction] = []
    done: set[str] = set()
    plan: dict[str, tuple[str, Callable[[], str]]] = {
        "envoyfilter-missing": (
            "re-apply the EnvoyFilters",
            lambda: _apply_group(session, params, "envoyfilters"),
        ),
        "netpol-missing": (
            "apply the NetworkPolicies",
            lambda: _apply_group(session, params, "networkpolicies"),
        ),
        "node-lost": ("resize the node pool", lambda: _resize_pool(session, params, view)),
        "pool-too-small": ("resize the node pool", lambda: _resize_pool(session, params, view)),
    }
    for finding in findings:
        if not finding.fixable or finding.key not in plan:
            continue
        action, run = plan[finding.key]
        if action in done:
            continue
        done.add(action)
        try:
            actions.append(FixAction(finding.key, action, True, run()))
        except Exception as exc:
            actions.append(FixAction(finding.key, action, False, f"{type(exc).__name__}: {exc}"))
    return actions


def wait_after_fixes(session: Any, params: Any, actions: list[FixAction], timeout: float) -> None:
    """Give the fixes time to act: replicas Ready again after a resize; routing objects act at once."""
    from rhaii_nb import service

    if any(a.ok and "node pool" in a.action for a in actions):
        with contextlib.suppress(Exception):  # the re-check reports what is still missing
            service.wait_ready(session, params, timeout=timeout, show=False)
