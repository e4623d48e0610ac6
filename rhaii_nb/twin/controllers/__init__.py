"""The twin's controllers: each module defining ``async def run(ctx)`` is started by the daemon.

Shared here: ``KeyQueue`` (a de-duplicating work queue of object keys) and ``feed`` (a task that
watches one resource type, re-opening the watch from the last resourceVersion it saw, and turns
events into keys), the informer + workqueue pattern of real controllers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Hashable
from typing import Any

log = logging.getLogger(__name__)


class KeyQueue:
    """An asyncio work queue that holds each key at most once until it is taken."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Hashable] = asyncio.Queue()
        self._pending: set[Hashable] = set()

    def add(self, key: Hashable) -> None:
        """Queue ``key`` unless it is already waiting."""
        if key not in self._pending:
            self._pending.add(key)
            self._queue.put_nowait(key)

    async def get(self) -> Hashable:
        """The next key (removed from the pending set, so it can be queued again while processed)."""
        key = await self._queue.get()
        self._pending.discard(key)
        return key

    def __len__(self) -> int:
        return len(self._pending)


async def feed(store: Any, rt: Any, on_event: Callable[[str, dict[str, Any]], None]) -> None:
    """Watch ``rt`` forever, calling ``on_event(type, obj)`` for every event (initial objects as ADDED).

    A watch that ends (type unregistered) or expires is re-opened from the last resourceVersion, or
    from scratch after 410 Gone.
    """
    from rhaii_nb.twin.errors import ApiError

    rv: str | None = None
    while True:
        try:
            watch = store.watch(rt, resource_version=rv)
        except ApiError as exc:
            if exc.code == 410:
                rv = None
                continue
            raise
        try:
            async for event in watch:
                rv = event.object.get("metadata", {}).get("resourceVersion") or rv
                try:
                    on_event(event.type, event.object)
                except Exception:
                    log.exception("controller event handler failed for %s", rt)
        finally:
            watch.close()
        await asyncio.sleep(0.05)


def owner_uid(obj: dict[str, Any], kind: str | None = None) -> str | None:
    """UID of the controlling owner (optionally only if it is of ``kind``)."""
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller") and (kind is None or ref.get("kind") == kind):
            return ref.get("uid")
    return None


def controller_ref(owner: dict[str, Any]) -> dict[str, Any]:
    """The ownerReference a controller puts on objects it creates for ``owner``."""
    meta = owner["metadata"]
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
