"""Namespaces: the default ServiceAccount and ``kube-root-ca.crt`` in every namespace, and deletion.

Deleting a namespace sets it Terminating (the store does that); this controller then deletes every
namespaced object in it and, once nothing is left (pods may wait for the kubelet's graceful
shutdown), clears the ``kubernetes`` finalizer so the namespace goes away.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from rhaii_nb.twin.errors import ApiError
from rhaii_nb.twin.store import now_rfc3339

log = logging.getLogger(__name__)

MANAGER = "kube-controller-manager"


class NamespaceController:
    """Populates new namespaces and empties terminating ones."""

    def __init__(self, ctx: Any):
        self.ctx = ctx
        self.store = ctx.store
        self.ns_rt = self.store.resource("", "v1", "namespaces")
        self._populated: set[str] = set()

    def _ca_pem(self) -> str | None:
        path = getattr(self.ctx.pki, "ca_cert_path", None) if self.ctx.pki is not None else None
        if path and Path(path).exists():
            return Path(path).read_text()
        return None

    def populate(self, ns: dict[str, Any]) -> None:
        """Create the namespace's ``default`` ServiceAccount and ``kube-root-ca.crt`` ConfigMap."""
        name = ns["metadata"]["name"]
        objects = [
            (
                self.store.resource("", "v1", "serviceaccounts"),
                {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}},
            ),
        ]
        ca = self._ca_pem()
        if ca:
            objects.append(
                (
                    self.store.resource("", "v1", "configmaps"),
                    {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "metadata": {
                            "name": "kube-root-ca.crt",
                            "annotations": {
                                "kubernetes.io/description": "Contains a CA bundle that can be used to "
                                "verify the kube-apiserver when using internal endpoints such as the "
                                "internal service IP or kubernetes.default.svc. No other usage is "
                                "guaranteed across distributions of Kubernetes clusters."
                            },
                        },
                        "data": {"ca.crt": ca},
                    },
                )
            )
        for rt, obj in objects:
            if self.store.exists(rt, obj["metadata"]["name"], name):
                continue
            try:
                self.store.create(rt, obj, name, field_manager=MANAGER)
            except ApiError as exc:
                if exc.code not in (403, 404, 409):
                    raise

    def _namespaced_types(self) -> list[Any]:
        seen, out = set(), []
        for rt in self.store.resource_types():
            if rt.namespaced and rt.storage not in seen and "delete" in rt.verbs:
                seen.add(rt.storage)
                out.append(rt)
        return out

    def drain(self, ns: dict[str, Any]) -> None:
        """Delete the content of a terminating namespace; finalize it when empty."""
        name = ns["metadata"]["name"]
        remaining = 0
        for rt in self._namespaced_types():
            items, _ = self.store.list(rt, name)
            for obj in items:
                remaining += 1
                if obj["metadata"].get("deletionTimestamp"):
                    continue
                try:
                    self.store.delete(rt, obj["metadata"]["name"], name, "Background")
                except ApiError as exc:
                    if exc.code not in (404, 409):
                        raise
        if remaining:
            still = sum(len(self.store.list(rt, name)[0]) for rt in self._namespaced_types())
            if still:
                self._set_content_condition(ns, still)
                return
        self.store.finalize_namespace(name)

    def _set_content_condition(self, ns: dict[str, Any], count: int) -> None:
        status = ns.get("status") or {}
        message = f"Some resources are remaining: {count} objects"
        conditions = [
            c for c in status.get("conditions") or [] if c.get("type") != "NamespaceContentRemaining"
        ]
        existing = next(
            (c for c in status.get("conditions") or [] if c.get("type") == "NamespaceContentRemaining"), None
        )
        if existing and existing.get("message") == message:
            return
        conditions.append(
            {
                "type": "NamespaceContentRemaining",
                "status": "True",
                "lastTransitionTime": (existing or {}).get("lastTransitionTime") or now_rfc3339(),
                "reason": "SomeResourcesRemain",
                "message": message,
            }
        )
        body = {**ns, "status": {**status, "conditions": conditions}}
        try:
            self.store.update(self.ns_rt, body, subresource="status", field_manager=MANAGER)
        except ApiError as exc:
            if exc.code not in (404, 409):
                raise

    def scan(self) -> None:
        """One pass over every namespace."""
        items, _ = self.store.list(self.ns_rt)
        live_uids = set()
        for ns in items:
            uid = ns["metadata"]["uid"]
            live_uids.add(uid)
            if ns["metadata"].get("deletionTimestamp"):
                self.drain(ns)
            elif uid not in self._populated:
                self.populate(ns)
                self._populated.add(uid)
        self._populated &= live_uids


def _relevant(event: Any, rt: Any) -> bool:
    return rt.plural == "namespaces" or event.type == "DELETED"


async def run(ctx: Any) -> None:
    """Scan namespaces whenever a namespace changes or anything is deleted."""
    controller = NamespaceController(ctx)
    wake = asyncio.Event()
    wake.set()
    ctx.store.subscribe(lambda event, rt: wake.set() if _relevant(event, rt) else None)
    while True:
        await wake.wait()
        wake.clear()
        try:
            controller.scan()
        except Exception:
            log.exception("namespace controller scan failed")
        await asyncio.sleep(0.01)
