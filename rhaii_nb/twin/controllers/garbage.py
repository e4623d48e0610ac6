"""Garbage collector: ownerReference cascades, as kube-controller-manager's garbage collector does.

- Dependents whose owners are all gone are deleted (background cascade); references to owners that
  are gone are dropped while another owner remains.
- Foreground: an owner carrying the ``foregroundDeletion`` finalizer gets its dependents deleted
  (in foreground too, when they block it), and loses the finalizer once no dependent with
  ``blockOwnerDeletion`` is left.
- Orphan: an owner carrying the ``orphan`` finalizer has its reference removed from every dependent,
  then loses the finalizer.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from rhaii_nb.twin.errors import ApiError
from rhaii_nb.twin.jsoncopy import clone

log = logging.getLogger(__name__)

MANAGER = "garbage-collector"


def _deleting(obj: dict[str, Any]) -> bool:
    return bool(obj["metadata"].get("deletionTimestamp"))


class GarbageCollector:
    """One scan reconciles every ownership relation in the store."""

    def __init__(self, store: Any):
        self.store = store

    def _update(self, rt: Any, obj: dict[str, Any]) -> None:
        try:
            self.store.update(rt, obj, field_manager=MANAGER)
        except ApiError as exc:
            if exc.code not in (404, 409):
                raise

    def _delete(self, rt: Any, obj: dict[str, Any], propagation: str) -> None:
        meta = obj["metadata"]
        try:
            self.store.delete(
                rt, meta["name"], meta.get("namespace"), propagation, preconditions={"uid": meta["uid"]}
            )
        except ApiError as exc:
            if exc.code not in (404, 409):
                raise

    def _remove_finalizer(self, rt: Any, obj: dict[str, Any], finalizer: str) -> None:
        body = clone(obj)
        body["metadata"]["finalizers"] = [f for f in body["metadata"].get("finalizers", []) if f != finalizer]
        self._update(rt, body)

    def scan(self) -> None:
        """Reconcile every owner/dependent relation once.

        Reads views of the stored objects (no copy of each object per scan); only the bodies written
        back are copied.
        """
        objects = list(self.store.all_objects(read_only=True))
        by_uid = {obj["metadata"]["uid"]: (rt, obj) for rt, obj in objects}
        dependents: dict[str, list[tuple[Any, dict[str, Any], dict[str, Any]]]] = {}
        for rt, obj in objects:
            for ref in obj["metadata"].get("ownerReferences") or []:
                dependents.setdefault(ref.get("uid", ""), []).append((rt, obj, ref))
        for rt, obj in objects:
            refs = obj["metadata"].get("ownerReferences") or []
            if not refs:
                continue
            alive = [r for r in refs if r.get("uid") in by_uid]
            if not alive:
                if not _deleting(obj):
                    self._delete(rt, obj, "Background")
            elif len(alive) < len(refs):
                body = clone(obj)
                body["metadata"]["ownerReferences"] = alive
                self._update(rt, body)
        for rt, owner in objects:
            if not _deleting(owner):
                continue
            finalizers = owner["metadata"].get("finalizers") or []
            uid = owner["metadata"]["uid"]
            deps = dependents.get(uid, [])
            if "orphan" in finalizers:
                for dep_rt, dep, _ref in deps:
                    body = clone(dep)
                    body["metadata"]["ownerReferences"] = [
                        r for r in body["metadata"].get("ownerReferences", []) if r.get("uid") != uid
                    ]
                    self._update(dep_rt, body)
                self._remove_finalizer(rt, owner, "orphan")
            elif "foregroundDeletion" in finalizers:
                for dep_rt, dep, ref in deps:
                    if not _deleting(dep):
                        self._delete(
                            dep_rt, dep, "Foreground" if ref.get("blockOwnerDeletion") else "Background"
                        )
                if not any(ref.get("blockOwnerDeletion") for _rt, _dep, ref in deps):
                    self._remove_finalizer(rt, owner, "foregroundDeletion")


def _relevant(event: Any) -> bool:
    if event.type == "DELETED":
        return True
    meta = event.object.get("metadata") or {}
    return bool(meta.get("deletionTimestamp")) or (
        event.type == "ADDED" and bool(meta.get("ownerReferences"))
    )


async def run(ctx: Any) -> None:
    """Scan whenever something was deleted, started terminating, or was created with owners."""
    collector = GarbageCollector(ctx.store)
    wake = asyncio.Event()
    wake.set()
    ctx.store.subscribe(lambda event, _rt: wake.set() if _relevant(event) else None)
    while True:
        await wake.wait()
        wake.clear()
        try:
            collector.scan()
        except Exception:
            log.exception("garbage collection scan failed")
        await asyncio.sleep(0.01)
