"""A small client over the twin's store for the cluster-behaviour controllers (scheduler, kubelet,
LLMInferenceService, gateway class): the verbs they need, named the way a controller thinks.

Every write goes through the store's public methods with the controller's field manager, exactly as
a real controller would write through the API server.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from rhaii_nb.twin.errors import ApiError

log = logging.getLogger(__name__)


def now_rfc3339() -> str:
    """The current time as Kubernetes timestamps it (RFC 3339, seconds, ``Z``)."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def split_api_version(api_version: str) -> tuple[str, str]:
    """``apps/v1`` → (``apps``, ``v1``); ``v1`` → (``""``, ``v1``)."""
    group, _, version = api_version.rpartition("/")
    return group, version


class Kube:
    """Controller-side access to the store."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self._plural_by_kind: dict[tuple[str, str, str], str] = {}

    # --- resource types --------------------------------------------------------------------------

    def rt(self, plural: str, group: str = "", version: str = "v1") -> Any | None:
        """The resource type, or None while it is not served (e.g. a CRD not installed yet)."""
        try:
            return self.store.resource(group, version, plural)
        except (ApiError, KeyError, LookupError):
            return None

    def rt_for(self, api_version: str, kind: str) -> Any | None:
        """The resource type serving objects of ``apiVersion``/``kind``."""
        group, version = split_api_version(api_version)
        finder = getattr(self.store, "find_resource", None)
        if finder is not None:
            try:
                return finder(group, version, kind)
            except (ApiError, KeyError, LookupError):
                return None
        plural = kind.lower() + "s"
        return self.rt(plural, group, version)

    # --- reads -----------------------------------------------------------------------------------

    def list(
        self,
        plural: str,
        namespace: str | None = None,
        group: str = "",
        version: str = "v1",
        label_selector: str | None = None,
        *,
        read_only: bool = False,
    ) -> list[dict[str, Any]]:
        """Objects of a type (empty while the type is not served).

        ``read_only=True`` returns views sharing their content with the store (cheap, no deep copy):
        the caller must not change them, nor keep parts of them it will change.
        """
        rt = self.rt(plural, group, version)
        if rt is None:
            return []
        items, _ = self.store.list(
            rt, namespace=namespace, label_selector=label_selector, read_only=read_only
        )
        return items

    def get(
        self, plural: str, name: str, namespace: str | None = None, group: str = "", version: str = "v1"
    ) -> dict[str, Any] | None:
        """One object, or None when absent."""
        rt = self.rt(plural, group, version)
        if rt is None:
            return None
        try:
            return self.store.get(rt, name, namespace=namespace)
        except ApiError as exc:
            if exc.code == 404:
                return None
            raise

    # --- writes ----------------------------------------------------------------------------------

    def apply(self, obj: dict[str, Any], manager: str) -> dict[str, Any] | None:
        """Server-side apply of ``obj`` (force: a controller owns what it renders); None if unserved."""
        rt = self.rt_for(obj["apiVersion"], obj["kind"])
        if rt is None:
            return None
        meta = obj["metadata"]
        return self.store.patch(
            rt, meta["name"], obj, "apply", namespace=meta.get("namespace"), field_manager=manager, force=True
        )

    def create(self, obj: dict[str, Any], manager: str) -> dict[str, Any] | None:
        """Create ``obj``; returns None when it already exists."""
        rt = self.rt_for(obj["apiVersion"], obj["kind"])
        if rt is None:
            return None
        try:
            return self.store.create(
                rt, obj, namespace=obj["metadata"].get("namespace"), field_manager=manager
            )
        except ApiError as exc:
            if exc.code == 409:
                return None
            raise

    def patch(
        self,
        plural: str,
        name: str,
        patch: dict[str, Any],
        namespace: str | None = None,
        *,
        group: str = "",
        version: str = "v1",
        subresource: str | None = None,
        manager: str,
    ) -> dict[str, Any] | None:
        """JSON merge patch; None when the object is gone."""
        rt = self.rt(plural, group, version)
        if rt is None:
            return None
        try:
            return self.store.patch(
                rt, name, patch, "merge", namespace=namespace, subresource=subresource, field_manager=manager
            )
        except ApiError as exc:
            if exc.code == 404:
                return None
            raise

    def patch_status(
        self,
        plural: str,
        name: str,
        status: dict[str, Any],
        namespace: str | None = None,
        *,
        group: str = "",
        version: str = "v1",
        manager: str,
    ) -> dict[str, Any] | None:
        """Merge ``status`` into the object's status subresource."""
        return self.patch(
            plural,
            name,
            {"status": status},
            namespace,
            group=group,
            version=version,
            subresource="status",
            manager=manager,
        )

    def delete(
        self,
        plural: str,
        name: str,
        namespace: str | None = None,
        *,
        group: str = "",
        version: str = "v1",
        grace_seconds: int | None = None,
    ) -> bool:
        """Delete an object; False when it was already gone."""
        rt = self.rt(plural, group, version)
        if rt is None:
            return False
        try:
            self.store.delete(rt, name, namespace=namespace, grace_seconds=grace_seconds)
            return True
        except ApiError as exc:
            if exc.code == 404:
                return False
            raise

    # --- pods ------------------------------------------------------------------------------------

    def bind_pod(self, namespace: str, name: str, node: str, manager: str) -> bool:
        """``pods/binding``: set ``spec.nodeName``; False when the pod is gone or already bound."""
        rt = self.rt("pods")
        binder = getattr(self.store, "bind_pod", None)
        try:
            if binder is not None:
                binder(name, namespace, node, field_manager=manager)
                return True
            current = self.store.get(rt, name, namespace=namespace)
            if (current.get("spec") or {}).get("nodeName"):
                return False
            self.store.patch(
                rt, name, {"spec": {"nodeName": node}}, "merge", namespace=namespace, field_manager=manager
            )
            return True
        except ApiError as exc:
            if exc.code in (404, 409):
                return False
            raise

    def set_pod_condition(self, namespace: str, name: str, condition: dict[str, Any], manager: str) -> None:
        """Add or update one pod condition, keeping lastTransitionTime when the status is unchanged."""
        pod = self.get("pods", name, namespace)
        if pod is None:
            return
        conditions = list((pod.get("status") or {}).get("conditions") or [])
        existing = next((c for c in conditions if c.get("type") == condition["type"]), None)
        wanted = {"lastProbeTime": None, **condition}
        if existing is not None:
            same = all(existing.get(k) == v for k, v in wanted.items() if k != "lastProbeTime")
            if same:
                return
            transition = (
                existing.get("lastTransitionTime") if existing.get("status") == condition["status"] else None
            )
            wanted["lastTransitionTime"] = transition or now_rfc3339()
            conditions = [wanted if c is existing else c for c in conditions]
        else:
            wanted["lastTransitionTime"] = now_rfc3339()
            conditions.append(wanted)
        self.patch_status("pods", name, {"conditions": conditions}, namespace, manager=manager)

    # --- events ----------------------------------------------------------------------------------

    def event(
        self,
        involved: dict[str, Any],
        reason: str,
        message: str,
        type_: str = "Normal",
        component: str = "",
        *,
        field_path: str | None = None,
        host: str | None = None,
    ) -> None:
        """Record a core/v1 Event about ``involved`` (repeats aggregate into a count)."""
        recorder = getattr(self.store, "record_event", None)
        if recorder is None:
            events = getattr(self.store, "events", None)
            recorder = getattr(events, "record_event", None)
        if recorder is None:
            log.debug("no event recorder: %s %s", reason, message)
            return
        try:
            extra = {k: v for k, v in (("field_path", field_path), ("host", host)) if v}
            recorder(involved, reason, message, type=type_, source_component=component, **extra)
        except ApiError as exc:  # e.g. the namespace is being deleted
            log.debug("event %s not recorded: %s", reason, exc)

    # --- notifications ---------------------------------------------------------------------------

    def subscribe(self, callback: Callable[[Any, Any], None]) -> None:
        """Call ``callback(event, rt)`` after every write to the store."""
        self.store.subscribe(callback)
