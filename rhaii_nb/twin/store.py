"""The twin's object store: Kubernetes API semantics over plain dicts, in memory.

Every write goes through one pipeline (defaults → admission → validation → generation →
managedFields → commit) and produces one resourceVersion from a global counter and one watch event
in a bounded history, so watches resume from any recent resourceVersion without loss. All calls
happen on the twin's event loop; every method is synchronous except iterating a watch.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rhaii_nb.twin import apply as ssa
from rhaii_nb.twin import defaults, validation
from rhaii_nb.twin.errors import (
    STALE_OBJECT,
    ApiError,
    FieldError,
    already_exists,
    bad_request,
    conflict,
    forbidden,
    invalid,
    not_found,
)
from rhaii_nb.twin.eventconv import core_to_events_v1, events_v1_to_core
from rhaii_nb.twin.jsoncopy import clone
from rhaii_nb.twin.patching import json_patch, merge_patch, strategic_merge_patch
from rhaii_nb.twin.resources import (
    FIELD_SELECTORS,
    ResourceType,
    builtin_resource_types,
    resource_types_from_crd,
)
from rhaii_nb.twin.selectors import (
    FieldSelector,
    LabelSelector,
    field_value,
    label_selector_string,
    parse_field_selector,
    parse_label_selector,
)
from rhaii_nb.twin.typeinfo import UNTYPED, TypeNode, type_for

__all__ = ["ApiError", "ListResult", "ResourceType", "Store", "Watch", "WatchEvent"]

log = logging.getLogger(__name__)

NAME_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
BOOTSTRAP_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
CRD_CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"
_SERVER_META = (
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "selfLink",
    "managedFields",
)


@dataclass
class WatchEvent:
    """One watch event: type ADDED | MODIFIED | DELETED | BOOKMARK | ERROR and the object."""

    type: str
    object: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """``{"type": ..., "object": ...}`` as the watch stream carries it."""
        return {"type": self.type, "object": self.object}


@dataclass
class _Change:
    rv: int
    storage: str
    type: str
    obj: dict[str, Any]
    old: dict[str, Any] | None


class ListResult(tuple):
    """``(items, resourceVersion)`` plus ``continue_token`` and ``remaining`` for paged lists."""

    continue_token: str | None
    remaining: int | None

    def __new__(cls, items: list[dict[str, Any]], rv: str, continue_token: str | None = None, remaining=None):
        self = super().__new__(cls, (items, rv))
        self.continue_token = continue_token
        self.remaining = remaining
        return self

    @property
    def items(self) -> list[dict[str, Any]]:
        """The objects of this page."""
        return self[0]

    @property
    def resource_version(self) -> str:
        """The list's resourceVersion."""
        return self[1]


def now_rfc3339() -> str:
    """Current UTC time as ``2024-01-02T03:04:05Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _micro_time() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def random_suffix(length: int = 5) -> str:
    """Random name suffix from the alphabet Kubernetes uses for generateName."""
    return "".join(random.choice(NAME_SUFFIX_ALPHABET) for _ in range(length))


class Watch:
    """Async iterator of WatchEvents for one watcher; ``close()`` stops it."""

    def __init__(
        self,
        store: Store,
        rt: ResourceType,
        namespace: str | None,
        labels: LabelSelector,
        fields: FieldSelector,
        bookmark_interval: float | None,
    ):
        self._store = store
        self.rt = rt
        self.namespace = namespace
        self.labels = labels
        self.fields = fields
        self.bookmark_interval = bookmark_interval
        self._queue: deque[WatchEvent | None] = deque()
        self._wakeup: asyncio.Event | None = None
        self.closed = False

    def _matches(self, obj: dict[str, Any] | None) -> bool:
        if obj is None:
            return False
        meta = obj.get("metadata") or {}
        if self.namespace and meta.get("namespace") != self.namespace:
            return False
        return self.labels.matches(meta.get("labels")) and self.fields.matches(obj, field_value)

    def _offer(self, change: _Change) -> None:
        now_in = self._matches(change.obj)
        if change.type == "DELETED":
            if now_in:
                self._push(WatchEvent("DELETED", change.obj))
            return
        was_in = self._matches(change.old) if change.old is not None else False
        if now_in and was_in:
            self._push(WatchEvent("MODIFIED", change.obj))
        elif now_in:
            self._push(WatchEvent("ADDED", change.obj))
        elif was_in:
            self._push(WatchEvent("DELETED", change.obj))

    def _push(self, event: WatchEvent | None) -> None:
        self._queue.append(event)
        if self._wakeup is not None:
            self._wakeup.set()

    def close(self) -> None:
        """Stop the watch: the iterator ends after the events already queued."""
        if not self.closed:
            self.closed = True
            self._store._watchers.discard(self)
            self._push(None)

    def __aiter__(self) -> Watch:
        return self

    async def __anext__(self) -> WatchEvent:
        while not self._queue:
            if self._wakeup is None:
                self._wakeup = asyncio.Event()
            self._wakeup.clear()
            if self.bookmark_interval:
                try:
                    await asyncio.wait_for(self._wakeup.wait(), self.bookmark_interval)
                except TimeoutError:
                    return self.bookmark()
            else:
                await self._wakeup.wait()
        event = self._queue.popleft()
        if event is None:
            self._queue.append(None)
            raise StopAsyncIteration
        return WatchEvent(event.type, self._store._present(self.rt, event.object))

    async def aclose(self) -> None:
        """Async alias of ``close``."""
        self.close()

    def bookmark(self) -> WatchEvent:
        """A BOOKMARK event at the store's current resourceVersion (all earlier events were delivered)."""
        return WatchEvent(
            "BOOKMARK",
            {
                "kind": self.rt.kind,
                "apiVersion": self.rt.api_version,
                "metadata": {"resourceVersion": str(self._store._rv)},
            },
        )


class Store:
    """In-memory Kubernetes object store; see docs/architecture.md for the contract."""

    def __init__(self, *, bootstrap: bool = True, history_size: int = 10000):
        self._types: list[ResourceType] = []
        self._by_gvr: dict[tuple[str, str, str], ResourceType] = {}
        self._objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
        self._rv = 0
        self._history: deque[_Change] = deque()
        self._history_size = history_size
        self._history_floor = 0  # rv of the newest event dropped from the history
        self._watchers: set[Watch] = set()
        self._subscribers: list[Callable[[WatchEvent, ResourceType], None]] = []
        self._admission: list[Callable[..., None]] = []
        self._snapshots: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
        self._type_nodes: dict[int, TypeNode] = {}
        self._event_keys: dict[tuple[Any, ...], tuple[str, str]] = {}
        self._cleaning: set[str] = set()
        for rt in builtin_resource_types():
            self._add_type(rt)
        if bootstrap:
            ns_rt = self.resource("", "v1", "namespaces")
            for name in BOOTSTRAP_NAMESPACES:
                self.create(ns_rt, {"metadata": {"name": name}}, field_manager="kube-apiserver")

    # ------------------------------------------------------------------ resource types

    def _add_type(self, rt: ResourceType) -> None:
        self._types.append(rt)
        self._by_gvr[(rt.group, rt.version, rt.plural)] = rt
        self._objects.setdefault(rt.storage, {})

    def resource(self, group: str, version: str, plural: str) -> ResourceType:
        """The served type ``group/version/plural``; 404 NotFound when not served."""
        rt = self._by_gvr.get((group, version, plural))
        if rt is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return rt

    def resource_types(self) -> list[ResourceType]:
        """Every served type (builtin and CRD-registered), for discovery."""
        return list(self._types)

    def find_resource(
        self, group: str | None, version: str | None, plural_or_kind: str
    ) -> ResourceType | None:
        """A type by plural, singular, kind or short name (case-insensitive); group/version optional."""
        wanted = plural_or_kind.lower()
        for rt in self._types:
            if group is not None and rt.group != group:
                continue
            if version is not None and rt.version != version:
                continue
            names = {rt.plural, rt.singular, rt.kind.lower(), *rt.short_names}
            if wanted in names:
                return rt
        return None

    def resource_for(self, api_version: str, kind: str) -> ResourceType:
        """The type serving ``apiVersion``/``kind`` objects; 404 when unknown."""
        group, _, version = api_version.rpartition("/")
        for rt in self._types:
            if rt.group == group and rt.version == version and rt.kind == kind:
                return rt
        raise ApiError(404, "NotFound", f'no matches for kind "{kind}" in version "{api_version}"')

    def _storage_type(self, storage: str) -> ResourceType:
        candidates = [rt for rt in self._types if rt.storage == storage]
        for rt in candidates:
            if rt.storage_version and not rt.group.startswith("events.k8s.io"):
                return rt
        return candidates[0]

    def _type_node(self, rt: ResourceType) -> TypeNode:
        node = self._type_nodes.get(id(rt))
        if node is None:
            node = type_for(rt.storage, rt.schema)
            self._type_nodes[id(rt)] = node
        return node

    @property
    def resource_version(self) -> str:
        """The newest resourceVersion."""
        return str(self._rv)

    # ------------------------------------------------------------------ hooks

    def add_admission(self, hook: Callable[[str, ResourceType, Any, Any], None]) -> None:
        """Register ``hook(operation, rt, obj, old_obj)``, called before validation of main-resource writes.

        operation is CREATE, UPDATE or DELETE (for DELETE both obj and old_obj are the live object).
        The hook may mutate ``obj`` or raise ApiError to deny; ``old_obj`` of an UPDATE is the stored
        object itself: read it, never change it.
        """
        self._admission.append(hook)

    def subscribe(self, callback: Callable[[WatchEvent, ResourceType], None]) -> None:
        """Call ``callback(event, rt)`` synchronously after every committed write.

        The event's object shares its content with the store (no copy per write): callbacks read it
        and never change it (``clone`` it first to keep or modify it).
        """
        self._subscribers.append(callback)

    # ------------------------------------------------------------------ reads

    def _key(self, rt: ResourceType, name: str, namespace: str | None) -> tuple[str, str]:
        return ((namespace or "") if rt.namespaced else "", name)

    def _present(self, rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        """A stored object as ``rt`` shows it (a fresh copy the caller may change)."""
        if rt.group == "events.k8s.io":
            return clone(core_to_events_v1(obj))
        out = clone(obj)
        out["apiVersion"] = rt.api_version
        out["kind"] = rt.kind
        return out

    def _view(self, rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        """A stored object as ``rt`` shows it, sharing everything below the top level with the store.

        For internal readers only (subscribers, scans): stored objects are never changed in place (a
        write stores a new dict), so a view stays what it was, but changing it would corrupt the store.
        """
        if rt.group == "events.k8s.io":
            return core_to_events_v1(obj)
        return {**obj, "apiVersion": rt.api_version, "kind": rt.kind}

    def _stored(self, rt: ResourceType, name: str, namespace: str | None) -> dict[str, Any] | None:
        return self._objects.get(rt.storage, {}).get(self._key(rt, name, namespace))

    def _require(self, rt: ResourceType, name: str, namespace: str | None) -> dict[str, Any]:
        obj = self._stored(rt, name, namespace)
        if obj is None:
            raise not_found(rt, name)
        return obj

    def get(self, rt: ResourceType, name: str, namespace: str | None = None) -> dict[str, Any]:
        """The object; ApiError 404 if absent."""
        return self._present(rt, self._require(rt, name, namespace))

    def exists(self, rt: ResourceType, name: str, namespace: str | None = None) -> bool:
        """Whether the object exists."""
        return self._stored(rt, name, namespace) is not None

    def _selectors(
        self, rt: ResourceType, label_selector: str | None, field_selector: str | None
    ) -> tuple[LabelSelector, FieldSelector]:
        labels = parse_label_selector(label_selector)
        fields = parse_field_selector(field_selector)
        allowed = {
            "metadata.name",
            "metadata.namespace",
            *FIELD_SELECTORS.get(rt.storage, ()),
            *rt.selectable_fields,
        }
        for name in fields.fields():
            if name not in allowed:
                raise bad_request(f"field label not supported: {name}")
        return labels, fields

    def _matching(
        self, rt: ResourceType, namespace: str | None, labels: LabelSelector, fields: FieldSelector
    ) -> list[dict[str, Any]]:
        out = []
        for (ns, _name), obj in sorted(self._objects.get(rt.storage, {}).items()):
            if namespace and rt.namespaced and ns != namespace:
                continue
            if labels.matches(obj["metadata"].get("labels")) and fields.matches(obj, field_value):
                out.append(obj)
        return out

    def list(
        self,
        rt: ResourceType,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
        *,
        read_only: bool = False,
    ) -> ListResult:
        """Matching objects sorted by namespace/name, and the list resourceVersion.

        With ``limit`` the result is one page; ``.continue_token`` fetches the next one from the same
        consistent snapshot. ``read_only=True`` returns views sharing their content with the store
        (see ``_view``) instead of deep copies: for internal scans that only read, e.g. controllers
        re-listing every pod on each change, where copying made the cost grow with the pod count.
        """
        present = self._view if read_only else self._present
        labels, fields = self._selectors(rt, label_selector, field_selector)
        if continue_token:
            snap_id, rv, start = self._decode_continue(continue_token)
            items = self._snapshots.get(snap_id)
            if items is None:
                raise ApiError(
                    410,
                    "Expired",
                    "The provided continue parameter is too old to display a consistent list result. You can "
                    "start a new list without the continue parameter.",
                )
        else:
            items = self._matching(rt, namespace, labels, fields)
            rv, start, snap_id = self._rv, 0, ""
        if limit and limit > 0 and start + limit < len(items):
            if not snap_id:
                snap_id = uuid.uuid4().hex
                self._snapshots[snap_id] = items
                while len(self._snapshots) > 64:
                    self._snapshots.popitem(last=False)
            page = items[start : start + limit]
            token = self._encode_continue(snap_id, rv, start + limit)
            return ListResult([present(rt, o) for o in page], str(rv), token, len(items) - start - limit)
        page = items[start:]
        return ListResult([present(rt, o) for o in page], str(rv))

    @staticmethod
    def _encode_continue(snap_id: str, rv: int, start: int) -> str:
        raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": start, "snap": snap_id})
        return base64.urlsafe_b64encode(raw.encode()).decode()

    @staticmethod
    def _decode_continue(token: str) -> tuple[str, int, int]:
        try:
            data = json.loads(base64.urlsafe_b64decode(token.encode()))
            return str(data["snap"]), int(data["rv"]), int(data["start"])
        except (ValueError, KeyError, TypeError):
            raise bad_request("continue key is not valid: incorrect encoded start resourceVersion") from None

    def watch(
        self,
        rt: ResourceType,
        namespace: str | None = None,
        resource_version: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        bookmark_interval: float | None = None,
    ) -> Watch:
        """Start watching: an async iterator of WatchEvents.

        ``resource_version`` None/"0"/"" sends the current objects as ADDED first; otherwise every
        change after it is replayed from the history (ApiError 410 Expired when it is too old).
        With ``bookmark_interval`` seconds of silence yield a BOOKMARK event.
        """
        labels, fields = self._selectors(rt, label_selector, field_selector)
        watcher = Watch(self, rt, namespace if rt.namespaced else None, labels, fields, bookmark_interval)
        if resource_version in (None, "", "0"):
            for obj in self._matching(rt, watcher.namespace, labels, fields):
                watcher._push(WatchEvent("ADDED", obj))
        else:
            try:
                since = int(resource_version)
            except ValueError:
                raise bad_request(f"resourceVersion: Invalid value: {resource_version!r}") from None
            if since < self._history_floor:
                raise ApiError(
                    410, "Expired", f"too old resource version: {since} ({self._history_floor + 1})"
                )
            for change in self._history:
                if change.rv > since and change.storage == rt.storage:
                    watcher._offer(change)
        self._watchers.add(watcher)
        return watcher

    # ------------------------------------------------------------------ commit

    def _commit(
        self, rt: ResourceType, event_type: str, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> None:
        """Store (or remove) ``obj`` with a new resourceVersion and fan the change out."""
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        meta = obj["metadata"]
        key = self._key(rt, meta["name"], meta.get("namespace"))
        bucket = self._objects.setdefault(rt.storage, {})
        if event_type == "DELETED":
            bucket.pop(key, None)
        else:
            bucket[key] = obj
        change = _Change(self._rv, rt.storage, event_type, obj, old)
        self._history.append(change)
        while len(self._history) > self._history_size:
            self._history_floor = self._history.popleft().rv
        for watcher in list(self._watchers):
            if watcher.rt.storage == rt.storage:
                watcher._offer(change)
        storage_rt = self._storage_type(rt.storage)
        view = self._view(storage_rt, obj)
        for callback in list(self._subscribers):
            try:
                callback(WatchEvent(event_type, view), storage_rt)
            except Exception:  # a broken subscriber must not break writes
                log.exception("store subscriber failed")

    # ------------------------------------------------------------------ write helpers

    def _to_storage(self, rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        if rt.group == "events.k8s.io":
            return events_v1_to_core(obj)
        return obj

    def _check_type(self, rt: ResourceType, obj: Any) -> None:
        if not isinstance(obj, dict):
            raise bad_request("the body of the request was not a JSON object")
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if api_version and api_version != rt.api_version:
            raise bad_request(
                f"the API version in the data ({api_version}) does not match the expected API version "
                f"({rt.api_version})"
            )
        if kind and kind != rt.kind:
            raise bad_request(f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})")
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        if not isinstance(obj.setdefault("metadata", {}), dict):
            raise bad_request("metadata must be an object")

    def _resolve_namespace(self, rt: ResourceType, obj: dict[str, Any], namespace: str | None) -> str | None:
        meta = obj["metadata"]
        if not rt.namespaced:
            meta.pop("namespace", None)
            return None
        body_ns = meta.get("namespace")
        if namespace and body_ns and body_ns != namespace:
            raise bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        ns = namespace or body_ns
        if not ns:
            ns = "default"
        meta["namespace"] = ns
        return ns

    def _check_namespace_usable(self, rt: ResourceType, namespace: str | None, name: str) -> None:
        if not rt.namespaced or namespace is None:
            return
        ns_obj = self._objects["/namespaces"].get(("", namespace))
        if ns_obj is None:
            ns_rt = self._by_gvr[("", "v1", "namespaces")]
            raise not_found(ns_rt, namespace)
        if ns_obj["metadata"].get("deletionTimestamp") and rt.storage != "events":
            raise forbidden(
                rt,
                name,
                f"unable to create new content in namespace {namespace} because it is being terminated",
            )

    def _apply_defaults(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        storage = rt.storage
        if storage == "/pods":
            defaults.pod_defaults(obj)
        elif storage in ("apps/deployments", "apps/replicasets"):
            defaults.workload_defaults(obj, rt.kind)
        elif storage == "/services":
            used = {o.get("spec", {}).get("clusterIP") for o in self._objects["/services"].values()}
            defaults.service_defaults(obj, {ip for ip in used if ip})
        elif storage == "/secrets":
            defaults.secret_defaults(obj)
        elif storage == "/namespaces":
            defaults.namespace_defaults(obj)

    def _run_admission(self, operation: str, rt: ResourceType, obj: Any, old: Any) -> None:
        for hook in list(self._admission):
            hook(operation, rt, obj, old)

    def _validate(
        self,
        rt: ResourceType,
        obj: dict[str, Any],
        old: dict[str, Any] | None,
        field_validation: str,
        warnings: list[str] | None,
        apply_patch: bool = False,
    ) -> None:
        name = obj["metadata"].get("name", "")
        errors: list[FieldError] = validation.metadata_errors(obj, rt.storage, rt.namespaced)
        unknown: list[str] = []
        if rt.schema is not None:
            schema_errors, unknown = validation.validate_custom_object(obj, rt.schema)
            errors += schema_errors
        else:
            unknown = validation.builtin_unknown_fields(rt.storage, obj)
            errors += validation.builtin_errors(rt.storage, obj)
        if rt.storage == "apiextensions.k8s.io/customresourcedefinitions":
            errors += _crd_errors(obj)
        if old is not None:
            errors += _immutable_errors(rt, obj, old)
        if unknown:
            self._unknown_fields(rt, obj, unknown, field_validation, warnings, apply_patch)
        if errors:
            raise invalid(rt, name, errors)

    def _unknown_fields(
        self,
        rt: ResourceType,
        obj: dict[str, Any],
        unknown: list[str],
        field_validation: str,
        warnings: list[str] | None,
        apply_patch: bool,
    ) -> None:
        if field_validation == "Strict":
            if apply_patch:
                meta = obj["metadata"]
                ident = f"{meta.get('namespace', '')}/{meta.get('name', '')}".lstrip("/")
                paths = ", ".join(f".{p}: field not declared in schema" for p in unknown)
                raise bad_request(
                    f"failed to create typed patch object ({ident}; {rt.api_version}, Kind={rt.kind}): "
                    f"{paths}"
                )
            listed = ", ".join(f'unknown field "{p}"' for p in unknown)
            raise bad_request(
                f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: '
                f"strict decoding error: {listed}"
            )
        if field_validation == "Warn" and warnings is not None:
            warnings.extend(f'unknown field "{p}"' for p in unknown)

    def _generate_name(self, rt: ResourceType, meta: dict[str, Any]) -> None:
        if meta.get("name") or not meta.get("generateName"):
            return
        for _ in range(20):
            candidate = meta["generateName"] + random_suffix()
            if self._stored(rt, candidate, meta.get("namespace")) is None:
                meta["name"] = candidate
                return
        raise ApiError(500, "InternalError", "could not generate a unique name")

    def _reset_status_on_create(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        storage = rt.storage
        if storage == "/pods":
            obj["status"] = {"phase": "Pending", "qosClass": defaults.pod_qos_class(obj.get("spec") or {})}
        elif storage == "/namespaces":
            obj["status"] = {"phase": "Active"}
        elif storage == "/services":
            obj["status"] = {"loadBalancer": {}}
        elif storage in ("apps/deployments", "apps/replicasets"):
            obj["status"] = {}
        elif storage == "apiextensions.k8s.io/customresourcedefinitions":
            obj["status"] = _crd_status(obj)
        elif rt.has_subresource("status") and storage != "/nodes" and rt.schema is None:
            obj.pop("status", None)

    # ------------------------------------------------------------------ create

    def create(
        self,
        rt: ResourceType,
        obj: dict[str, Any],
        namespace: str | None = None,
        field_manager: str | None = None,
        *,
        dry_run: bool = False,
        field_validation: str = "Warn",
        warnings: list[str] | None = None,
        _managed: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Create an object; fills uid, resourceVersion, generation, creationTimestamp, managedFields.

        ``field_validation`` (Ignore | Warn | Strict) decides what unknown fields of custom objects do;
        Warn appends messages to ``warnings``.
        """
        obj = clone(obj)
        self._check_type(rt, obj)
        ns = self._resolve_namespace(rt, obj, namespace)
        meta = obj["metadata"]
        for key in _SERVER_META:
            meta.pop(key, None)
        self._generate_name(rt, meta)
        self._check_namespace_usable(rt, ns, meta.get("name") or "")
        self._apply_defaults(rt, obj)
        self._run_admission("CREATE", rt, obj, None)
        self._check_type(rt, obj)
        if rt.schema is not None and rt.has_subresource("status"):
            # As the real server: the create strategy drops the status before validation, and the
            # schema's defaults (e.g. a Gateway's "Waiting for controller" conditions) fill it again, so
            # an update or re-apply of the same object finds nothing new to default.
            obj.pop("status", None)
        self._validate(rt, obj, None, field_validation, warnings)
        name = meta["name"]
        if self._stored(rt, name, ns) is not None:
            raise already_exists(rt, name)
        stored = self._to_storage(rt, obj)
        self._reset_status_on_create(rt, stored)
        smeta = stored["metadata"]
        smeta["uid"] = str(uuid.uuid4())
        smeta["creationTimestamp"] = now_rfc3339()
        if rt.tracks_generation:
            smeta["generation"] = 1
        manager = field_manager or "unknown"
        if _managed is not None:
            smeta["managedFields"] = _managed
        else:
            smeta["managedFields"] = ssa.record_update(
                None,
                stored,
                self._type_node(rt),
                manager,
                rt.api_version,
                now_rfc3339(),
                section=self._section(rt),
            )
        if not smeta["managedFields"]:
            smeta.pop("managedFields")
        if dry_run:
            smeta["resourceVersion"] = ""
            return self._present(rt, stored)
        self._commit(rt, "ADDED", stored, None)
        self._after_write(rt, stored, None)
        return self._present(rt, stored)

    def _section(self, rt: ResourceType, subresource: str | None = None) -> str | None:
        if subresource == "status":
            return "status"
        return "main" if rt.has_subresource("status") else None

    # ------------------------------------------------------------------ update / patch

    def update(
        self,
        rt: ResourceType,
        obj: dict[str, Any],
        subresource: str | None = None,
        field_manager: str | None = None,
        *,
        namespace: str | None = None,
        name: str | None = None,
        dry_run: bool = False,
        field_validation: str = "Warn",
        warnings: list[str] | None = None,
    ) -> dict[str, Any]:
        """Replace an object (PUT); 409 Conflict when ``metadata.resourceVersion`` is stale.

        ``subresource`` "status" changes only the status, "finalize" (namespaces) only spec.finalizers,
        "scale" takes an autoscaling/v1 Scale. ``name``/``namespace`` are the URL's, checked against the body.
        """
        if subresource == "scale":
            return self._update_scale(rt, obj, namespace, name, field_manager, dry_run)
        obj = clone(obj)
        self._check_type(rt, obj)
        meta = obj["metadata"]
        if name and meta.get("name") and meta["name"] != name:
            raise bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the URL ({name})"
            )
        name = name or meta.get("name")
        if not name:
            raise bad_request("name is required")
        meta["name"] = name
        ns = self._resolve_namespace(rt, obj, namespace)
        old = self._require(rt, name, ns)
        want_rv = meta.get("resourceVersion")
        if want_rv and want_rv != old["metadata"]["resourceVersion"]:
            raise conflict(rt, name, STALE_OBJECT)
        candidate = self._to_storage(rt, obj)
        return self._write_update(
            rt, old, candidate, subresource, field_manager or "unknown", dry_run, field_validation, warnings
        )

    def patch(
        self,
        rt: ResourceType,
        name: str,
        patch: Any,
        patch_type: str,
        namespace: str | None = None,
        subresource: str | None = None,
        field_manager: str | None = None,
        force: bool = False,
        *,
        dry_run: bool = False,
        field_validation: str | None = None,
        warnings: list[str] | None = None,
    ) -> dict[str, Any]:
        """Patch an object: patch_type "merge" | "strategic" | "json" | "apply" (server-side apply).

        Apply creates the object when absent, needs ``field_manager``, answers 409 on conflicts with
        other managers unless ``force``, and leaves the object untouched when nothing changes.
        """
        if patch_type == "apply":
            return self._apply(
                rt,
                name,
                patch,
                namespace,
                subresource,
                field_manager,
                force,
                dry_run,
                field_validation or "Strict",
                warnings,
            )
        field_validation = field_validation or "Warn"
        if patch_type == "strategic" and rt.schema is not None:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: "
                "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
            )
        # JSON patch inserts its values as they are: the stored object must not share the caller's.
        patch = clone(patch)
        if subresource == "scale":
            scale = self.get_scale(rt, name, namespace)
            patched = self._patched(scale, patch, patch_type, UNTYPED)
            return self._update_scale(rt, patched, namespace, name, field_manager, dry_run)
        old = self._require(rt, name, namespace)
        current = self._present(rt, old)
        patched = self._patched(current, patch, patch_type, self._type_node(rt))
        if not isinstance(patched, dict):
            raise bad_request("the patched object is not a JSON object")
        pmeta = patched.setdefault("metadata", {})
        if pmeta.get("name", name) != name:
            raise bad_request(
                f"the name of the object ({pmeta.get('name')}) does not match the name on the URL ({name})"
            )
        want_rv = pmeta.get("resourceVersion")
        if want_rv and want_rv != old["metadata"]["resourceVersion"]:
            raise conflict(rt, name, STALE_OBJECT)
        self._check_type(rt, patched)
        self._resolve_namespace(rt, patched, old["metadata"].get("namespace"))
        candidate = self._to_storage(rt, patched)
        return self._write_update(
            rt, old, candidate, subresource, field_manager or "unknown", dry_run, field_validation, warnings
        )

    def _patched(self, current: dict[str, Any], patch: Any, patch_type: str, node: TypeNode) -> Any:
        if patch_type == "merge":
            if not isinstance(patch, dict):
                raise bad_request("the body of the request was not a JSON object")
            return merge_patch(current, patch)
        if patch_type == "json":
            return json_patch(current, patch)
        if patch_type == "strategic":
            return strategic_merge_patch(current, patch, node)
        raise ApiError(415, "UnsupportedMediaType", f"unsupported patch type {patch_type!r}")

    def _merge_for_subresource(
        self, rt: ResourceType, old: dict[str, Any], candidate: dict[str, Any], subresource: str | None
    ) -> dict[str, Any]:
        """Take from ``candidate`` only what the endpoint may change (status separation).

        ``candidate`` is the caller's private copy (taken over, not copied); ``old`` is never changed.
        """
        if subresource == "status":
            new = clone(old)
            if "status" in candidate:
                new["status"] = candidate["status"]
            else:
                new.pop("status", None)
            return new
        if subresource == "finalize":
            new = clone(old)
            new.setdefault("spec", {})["finalizers"] = list(
                (candidate.get("spec") or {}).get("finalizers") or []
            )
            return new
        if subresource:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        new = candidate
        if rt.has_subresource("status"):
            if "status" in old:
                new["status"] = clone(old["status"])
            else:
                new.pop("status", None)
        return new

    def _write_update(
        self,
        rt: ResourceType,
        old: dict[str, Any],
        candidate: dict[str, Any],
        subresource: str | None,
        manager: str,
        dry_run: bool,
        field_validation: str,
        warnings: list[str] | None,
        managed: list[dict[str, Any]] | None = None,
        apply_patch: bool = False,
    ) -> dict[str, Any]:
        if subresource and not rt.has_subresource(subresource):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        new = self._merge_for_subresource(rt, old, candidate, subresource)
        meta, old_meta = new["metadata"], old["metadata"]
        for key in (
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "name",
            "namespace",
        ):
            if key in old_meta:
                meta[key] = old_meta[key]
            else:
                meta.pop(key, None)
        meta.pop("resourceVersion", None)
        if not subresource:
            self._apply_defaults(rt, new)
            self._run_admission("UPDATE", rt, new, self._view(rt, old))
            self._check_type(rt, new)
        self._validate(rt, new, old, field_validation, warnings, apply_patch)
        if rt.tracks_generation and _spec_changed(old, new):
            meta["generation"] = old_meta.get("generation", 0) + 1
        node = self._type_node(rt)
        if managed is not None:
            meta["managedFields"] = managed
        else:
            meta["managedFields"] = ssa.record_update(
                old,
                new,
                node,
                manager,
                rt.api_version,
                now_rfc3339(),
                subresource or "",
                self._section(rt, subresource),
            )
        if not meta["managedFields"]:
            meta.pop("managedFields")
        meta["resourceVersion"] = old_meta["resourceVersion"]
        if _same_ignoring_times(new, old):
            return self._present(rt, old)
        if rt.storage == "apiextensions.k8s.io/customresourcedefinitions" and not subresource:
            new["status"] = _crd_status(new, old.get("status"))
        if dry_run:
            return self._present(rt, new)
        if meta.get("deletionTimestamp") and self._deletion_complete(rt, new):
            self._commit(rt, "DELETED", new, old)
            self._after_delete(rt, new)
            return self._present(rt, new)
        self._commit(rt, "MODIFIED", new, old)
        self._after_write(rt, new, old)
        return self._present(rt, new)

    def _apply(
        self,
        rt: ResourceType,
        name: str,
        patch: Any,
        namespace: str | None,
        subresource: str | None,
        field_manager: str | None,
        force: bool,
        dry_run: bool,
        field_validation: str,
        warnings: list[str] | None,
    ) -> dict[str, Any]:
        if not field_manager:
            raise invalid_patch_options()
        if not isinstance(patch, dict):
            raise bad_request("the body of the request was not a JSON object")
        applied = clone(patch)
        self._check_type(rt, applied)
        ameta = applied["metadata"]
        if ameta.get("name") and ameta["name"] != name:
            raise bad_request(
                f"the name of the object ({ameta['name']}) does not match the name on the URL ({name})"
            )
        ameta["name"] = name
        ns = self._resolve_namespace(rt, applied, namespace)
        probe = clone(applied)
        if rt.schema is not None:
            _errors, unknown = validation.validate_custom_object(probe, rt.schema)
        else:
            unknown = validation.builtin_unknown_fields(rt.storage, probe)
        if unknown:
            self._unknown_fields(rt, applied, unknown, field_validation, warnings, True)
            for path in unknown:
                _drop_field(applied, path)
        if subresource == "status":
            applied = {k: v for k, v in applied.items() if k in ("apiVersion", "kind", "metadata", "status")}
        old = self._stored(rt, name, ns)
        node = self._type_node(rt)
        section = self._section(rt, subresource)
        if old is None:
            if subresource:
                raise not_found(rt, name)
            merged, managed = ssa.server_side_apply(
                None, applied, node, field_manager, rt.api_version, now_rfc3339(), force, "", section
            )
            merged["metadata"].pop("managedFields", None)
            return self.create(
                rt,
                merged,
                ns,
                field_manager,
                dry_run=dry_run,
                field_validation="Ignore",
                warnings=warnings,
                _managed=managed,
            )
        live = self._present(rt, old)
        merged, managed = ssa.server_side_apply(
            live,
            applied,
            node,
            field_manager,
            rt.api_version,
            now_rfc3339(),
            force,
            subresource or "",
            section,
        )
        candidate = self._to_storage(rt, merged)
        return self._write_update(
            rt, old, candidate, subresource, field_manager, dry_run, "Ignore", warnings, managed, True
        )

    # ------------------------------------------------------------------ scale

    def get_scale(self, rt: ResourceType, name: str, namespace: str | None = None) -> dict[str, Any]:
        """The autoscaling/v1 Scale of a deployment, replica set or CRD with a scale subresource."""
        if not rt.has_subresource("scale"):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        obj = self._require(rt, name, namespace)
        spec_path, status_path, selector_path = _scale_paths(rt)
        selector = _read_path(obj, selector_path) if selector_path else None
        if rt.schema is None:
            selector = label_selector_string((obj.get("spec") or {}).get("selector"))
        meta = obj["metadata"]
        scale_meta = {
            k: meta[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in meta
        }
        status: dict[str, Any] = {"replicas": _read_path(obj, status_path) or 0}
        if selector:
            status["selector"] = selector
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": scale_meta,
            "spec": {"replicas": _read_path(obj, spec_path) or 0},
            "status": status,
        }

    def _update_scale(
        self,
        rt: ResourceType,
        scale: dict[str, Any],
        namespace: str | None,
        name: str | None,
        field_manager: str | None,
        dry_run: bool,
    ) -> dict[str, Any]:
        name = name or scale.get("metadata", {}).get("name")
        old = self._require(rt, name, namespace)
        if not rt.has_subresource("scale"):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        want_rv = (scale.get("metadata") or {}).get("resourceVersion")
        if want_rv and want_rv != old["metadata"]["resourceVersion"]:
            raise conflict(rt, name, STALE_OBJECT)
        replicas = (scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            scale_rt = ResourceType("autoscaling", "v1", "scale", "Scale", "scale", True)
            raise invalid(
                scale_rt,
                name,
                [
                    FieldError(
                        "spec.replicas", "Invalid value", replicas, "must be greater than or equal to 0"
                    )
                ],
            )
        new = clone(old)
        spec_path, _status, _sel = _scale_paths(rt)
        _write_path(new, spec_path, replicas)
        self._write_update(rt, old, new, None, field_manager or "unknown", dry_run, "Ignore", None)
        return self.get_scale(rt, name, namespace) if not dry_run else scale

    # ------------------------------------------------------------------ delete

    def _deletion_complete(self, rt: ResourceType, obj: dict[str, Any]) -> bool:
        meta = obj["metadata"]
        if meta.get("finalizers"):
            return False
        if rt.storage == "/namespaces" and (obj.get("spec") or {}).get("finalizers"):
            return False
        return not (rt.storage == "/pods" and meta.get("deletionGracePeriodSeconds", 0) > 0)

    def delete(
        self,
        rt: ResourceType,
        name: str,
        namespace: str | None = None,
        propagation: str | None = "Background",
        grace_seconds: int | None = None,
        *,
        preconditions: dict[str, str] | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Delete an object; returns it (still present with deletionTimestamp when finalizers/grace hold it).

        Pods bound to a node get graceful deletion (the kubelet finishes with grace 0); propagation
        Foreground/Orphan adds the ``foregroundDeletion``/``orphan`` finalizer for the garbage collector.
        """
        old = self._require(rt, name, namespace)
        meta = old["metadata"]
        if preconditions:
            for field, key in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
                want = preconditions.get(field)
                if want and want != meta.get(field):
                    raise conflict(
                        rt,
                        name,
                        f"Precondition failed: {key} in precondition: {want}, "
                        f"{key} in object meta: {meta.get(field)}",
                    )
        if propagation not in (None, "Background", "Foreground", "Orphan"):
            raise bad_request(f'propagationPolicy: Unsupported value: "{propagation}"')
        if self._admission:
            live = self._present(rt, old)
            self._run_admission("DELETE", rt, live, live)
        new = clone(old)
        nmeta = new["metadata"]
        finalizers = list(nmeta.get("finalizers") or [])
        if not nmeta.get("deletionTimestamp"):
            if propagation == "Foreground" and "foregroundDeletion" not in finalizers:
                finalizers.append("foregroundDeletion")
            elif propagation == "Orphan" and "orphan" not in finalizers:
                finalizers.append("orphan")
        if finalizers:
            nmeta["finalizers"] = finalizers
        if rt.storage == "/namespaces":
            new.setdefault("status", {})["phase"] = "Terminating"
        if (
            rt.storage == "apiextensions.k8s.io/customresourcedefinitions"
            and CRD_CLEANUP_FINALIZER not in finalizers
        ):
            nmeta["finalizers"] = [*finalizers, CRD_CLEANUP_FINALIZER]
        grace = 0
        if rt.storage == "/pods" and (new.get("spec") or {}).get("nodeName"):
            phase = (new.get("status") or {}).get("phase")
            if phase not in ("Succeeded", "Failed"):
                default = (new.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
                grace = default if grace_seconds is None else max(0, grace_seconds)
                current = nmeta.get("deletionGracePeriodSeconds")
                if current is not None and current <= grace:
                    grace = current
        if not nmeta.get("deletionTimestamp") or nmeta.get("deletionGracePeriodSeconds", 0) != grace:
            if not nmeta.get("deletionTimestamp") and rt.tracks_generation:
                nmeta["generation"] = nmeta.get("generation", 0) + 1
            nmeta["deletionTimestamp"] = _rfc3339(time.time() + grace)
            nmeta["deletionGracePeriodSeconds"] = grace
        if dry_run:
            return self._present(rt, new)
        if self._deletion_complete(rt, new):
            self._commit(rt, "DELETED", new, old)
            self._after_delete(rt, new)
            return self._present(rt, new)
        if new != old:
            self._commit(rt, "MODIFIED", new, old)
            self._after_write(rt, new, old)
        if rt.storage == "apiextensions.k8s.io/customresourcedefinitions":
            self._cleanup_crd(new)
        return self._present(rt, self._stored(rt, name, namespace) or new)

    def delete_collection(
        self,
        rt: ResourceType,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        propagation: str | None = "Background",
        grace_seconds: int | None = None,
        *,
        dry_run: bool = False,
    ) -> list[dict[str, Any]]:
        """Delete every matching object; returns what ``delete`` returned for each."""
        labels, fields = self._selectors(rt, label_selector, field_selector)
        targets = [
            (o["metadata"]["name"], o["metadata"].get("namespace"))
            for o in self._matching(rt, namespace, labels, fields)
        ]
        out = []
        for name, ns in targets:
            try:
                out.append(self.delete(rt, name, ns, propagation, grace_seconds, dry_run=dry_run))
            except ApiError as exc:
                if exc.code != 404:
                    raise
        return out

    def finalize_pod_deletion(self, name: str, namespace: str) -> dict[str, Any] | None:
        """What the kubelet does once containers stopped: delete the terminating pod with grace 0."""
        rt = self._by_gvr[("", "v1", "pods")]
        if self._stored(rt, name, namespace) is None:
            return None
        return self.delete(rt, name, namespace, grace_seconds=0)

    def finalize_namespace(self, name: str) -> dict[str, Any] | None:
        """Clear ``spec.finalizers`` of a terminating namespace (namespaces/finalize); removes it if empty."""
        rt = self._by_gvr[("", "v1", "namespaces")]
        old = self._stored(rt, name, None)
        if old is None:
            return None
        obj = clone(old)
        obj["spec"]["finalizers"] = []
        return self.update(rt, obj, subresource="finalize", field_manager="namespace-controller")

    # ------------------------------------------------------------------ pods

    def bind_pod(
        self, name: str, namespace: str, node_name: str, field_manager: str = "kube-scheduler"
    ) -> dict[str, Any]:
        """pods/binding: set spec.nodeName once and mark PodScheduled; 409 when already bound."""
        rt = self._by_gvr[("", "v1", "pods")]
        old = self._require(rt, name, namespace)
        if old["metadata"].get("deletionTimestamp"):
            raise conflict(rt, name, "pod is being deleted, cannot be assigned to a host")
        current = (old.get("spec") or {}).get("nodeName")
        if current:
            raise conflict(rt, name, f'pod {name} is already assigned to node "{current}"')
        new = clone(old)
        new["spec"]["nodeName"] = node_name
        conditions = [
            c for c in new.setdefault("status", {}).get("conditions", []) if c.get("type") != "PodScheduled"
        ]
        conditions.append(
            {
                "type": "PodScheduled",
                "status": "True",
                "lastProbeTime": None,
                "lastTransitionTime": now_rfc3339(),
            }
        )
        new["status"]["conditions"] = conditions
        return self._bind_commit(rt, old, new, field_manager)

    def _bind_commit(
        self, rt: ResourceType, old: dict[str, Any], new: dict[str, Any], manager: str
    ) -> dict[str, Any]:
        node = self._type_node(rt)
        new["metadata"]["managedFields"] = ssa.record_update(old, new, node, manager, "v1", now_rfc3339())
        self._commit(rt, "MODIFIED", new, old)
        self._after_write(rt, new, old)
        return self._present(rt, new)

    # ------------------------------------------------------------------ CRDs

    def register_crd(self, crd: dict[str, Any], field_manager: str = "twin") -> dict[str, Any]:
        """Create (or replace) a CustomResourceDefinition object; its types are served at once."""
        rt = self._by_gvr[("apiextensions.k8s.io", "v1", "customresourcedefinitions")]
        name = crd.get("metadata", {}).get("name", "")
        existing = self._stored(rt, name, None)
        if existing is None:
            return self.create(rt, crd, field_manager=field_manager)
        body = clone(crd)
        body.setdefault("metadata", {})["resourceVersion"] = existing["metadata"]["resourceVersion"]
        return self.update(rt, body, field_manager=field_manager)

    def unregister_crd(self, name: str) -> dict[str, Any]:
        """Delete a CustomResourceDefinition (its objects are deleted, then its types stop being served)."""
        rt = self._by_gvr[("apiextensions.k8s.io", "v1", "customresourcedefinitions")]
        return self.delete(rt, name)

    def _register_types(self, crd: dict[str, Any]) -> None:
        name = crd["metadata"]["name"]
        old_types = [rt for rt in self._types if rt.crd_name == name]
        new_types = resource_types_from_crd(crd)
        for rt in old_types:
            self._types.remove(rt)
            self._by_gvr.pop((rt.group, rt.version, rt.plural), None)
            self._type_nodes.pop(id(rt), None)
        for rt in new_types:
            self._add_type(rt)
        live = {(rt.group, rt.version, rt.plural): rt for rt in new_types}
        for watcher in list(self._watchers):
            if watcher.rt.crd_name == name:
                replacement = live.get((watcher.rt.group, watcher.rt.version, watcher.rt.plural))
                if replacement is None:
                    watcher.close()
                else:
                    watcher.rt = replacement

    def _unregister_types(self, name: str) -> None:
        for rt in [rt for rt in self._types if rt.crd_name == name]:
            self._types.remove(rt)
            self._by_gvr.pop((rt.group, rt.version, rt.plural), None)
            self._type_nodes.pop(id(rt), None)
            for watcher in list(self._watchers):
                if watcher.rt is rt:
                    watcher.close()

    def _cleanup_crd(self, crd: dict[str, Any]) -> None:
        """Delete a terminating CRD's objects; once none is left, drop its finalizer (removing it)."""
        name = crd["metadata"]["name"]
        types = [rt for rt in self._types if rt.crd_name == name]
        if not types:
            return
        rt = types[0]
        if name not in self._cleaning:
            self._cleaning.add(name)
            try:
                for (ns, obj_name), obj in list(self._objects.get(rt.storage, {}).items()):
                    if (
                        not obj["metadata"].get("deletionTimestamp")
                        and self._stored(rt, obj_name, ns) is not None
                    ):
                        self.delete(rt, obj_name, ns or None)
            finally:
                self._cleaning.discard(name)
        if not self._objects.get(rt.storage):
            crd_rt = self._by_gvr[("apiextensions.k8s.io", "v1", "customresourcedefinitions")]
            current = self._stored(crd_rt, name, None)
            if current is not None and CRD_CLEANUP_FINALIZER in current["metadata"].get("finalizers", []):
                body = clone(current)
                body["metadata"]["finalizers"] = [
                    f for f in body["metadata"]["finalizers"] if f != CRD_CLEANUP_FINALIZER
                ]
                self._write_update(
                    crd_rt, current, body, None, "apiextensions-controller", False, "Ignore", None
                )

    # ------------------------------------------------------------------ after-write reactions

    def _after_write(self, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        if rt.storage == "apiextensions.k8s.io/customresourcedefinitions" and not obj["metadata"].get(
            "deletionTimestamp"
        ):
            self._register_types(obj)

    def _after_delete(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        if rt.storage == "apiextensions.k8s.io/customresourcedefinitions":
            types = [t for t in self._types if t.crd_name == obj["metadata"]["name"]]
            if types:
                for gone in list(self._objects.get(types[0].storage, {}).values()):
                    self._commit(types[0], "DELETED", clone(gone), gone)
            self._unregister_types(obj["metadata"]["name"])
            return
        if rt.crd_name:
            crd_rt = self._by_gvr[("apiextensions.k8s.io", "v1", "customresourcedefinitions")]
            crd = self._stored(crd_rt, rt.crd_name, None)
            if crd is not None and crd["metadata"].get("deletionTimestamp"):
                self._cleanup_crd(crd)

    # ------------------------------------------------------------------ events

    def record_event(
        self,
        involved: dict[str, Any],
        reason: str,
        message: str,
        type: str = "Normal",
        source_component: str = "twin",
        *,
        action: str | None = None,
        field_path: str | None = None,
        host: str | None = None,
    ) -> dict[str, Any] | None:
        """Record a core/v1 Event about ``involved``; a repeat of the same event bumps its count.

        Returns the event, or None when its namespace does not exist (the real recorder drops it too).
        """
        rt = self._by_gvr[("", "v1", "events")]
        meta = involved.get("metadata") or {}
        namespace = meta.get("namespace") or "default"
        if self._objects["/namespaces"].get(("", namespace)) is None:
            return None
        ref = {
            "kind": involved.get("kind"),
            "namespace": meta.get("namespace"),
            "name": meta.get("name"),
            "uid": meta.get("uid"),
            "apiVersion": involved.get("apiVersion"),
            "resourceVersion": meta.get("resourceVersion"),
        }
        if field_path:
            ref["fieldPath"] = field_path
        ref = {k: v for k, v in ref.items() if v}
        key = (namespace, meta.get("uid") or meta.get("name"), reason, message, type, source_component)
        now = now_rfc3339()
        existing_id = self._event_keys.get(key)
        if existing_id is not None:
            existing = self._stored(rt, existing_id[1], existing_id[0])
            if existing is not None:
                body = clone(existing)
                body["count"] = body.get("count", 1) + 1
                body["lastTimestamp"] = now
                body["involvedObject"] = ref
                return self._write_update(rt, existing, body, None, source_component, False, "Ignore", None)
        source = {"component": source_component}
        if host:
            source["host"] = host
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{meta.get('name', 'event')}.{time.time_ns():x}", "namespace": namespace},
            "involvedObject": ref,
            "reason": reason,
            "message": message,
            "type": type,
            "source": source,
            "count": 1,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "eventTime": None,
            "reportingComponent": source_component,
            "reportingInstance": host or source_component,
        }
        if action:
            event["action"] = action
        created = self.create(rt, event, namespace, field_manager=source_component, field_validation="Ignore")
        self._event_keys[key] = (namespace, created["metadata"]["name"])
        if len(self._event_keys) > 20000:
            for old_key in list(self._event_keys)[:10000]:
                del self._event_keys[old_key]
        return created

    # ------------------------------------------------------------------ snapshot support

    def dump(self) -> dict[str, Any]:
        """All objects (CRDs first) and the resourceVersion counter, JSON-ready."""
        crds = list(self._objects.get("apiextensions.k8s.io/customresourcedefinitions", {}).values())
        others = []
        for storage, bucket in self._objects.items():
            if storage == "apiextensions.k8s.io/customresourcedefinitions":
                continue
            rt = self._storage_type(storage)
            others += [self._present(rt, o) for o in bucket.values()]
        return {"resourceVersion": self._rv, "crds": clone(crds), "objects": others}

    def restore(self, data: dict[str, Any]) -> None:
        """Replace the store's content by a ``dump()`` (objects keep uid, resourceVersion, timestamps)."""
        for storage in self._objects:
            self._objects[storage] = {}
        crd_rt = self._by_gvr[("apiextensions.k8s.io", "v1", "customresourcedefinitions")]
        for crd in data.get("crds", []):
            crd = clone(crd)
            self._objects[crd_rt.storage][("", crd["metadata"]["name"])] = crd
            self._register_types(crd)
        for obj in data.get("objects", []):
            obj = clone(obj)
            rt = self.resource_for(obj["apiVersion"], obj["kind"])
            stored = self._to_storage(rt, obj)
            meta = stored["metadata"]
            self._objects.setdefault(rt.storage, {})[self._key(rt, meta["name"], meta.get("namespace"))] = (
                stored
            )
        self._rv = max(int(data.get("resourceVersion", 0)), self._rv)
        self._history.clear()
        self._history_floor = self._rv

    def all_objects(self, *, read_only: bool = False) -> Iterable[tuple[ResourceType, dict[str, Any]]]:
        """Every stored object with its storage type (copies), for controllers like the GC.

        ``read_only=True`` yields views sharing their content with the store instead of copies: cheap
        for scans that only read (the objects a scan got stay as they were when it started).
        """
        present = self._view if read_only else self._present
        for storage, bucket in list(self._objects.items()):
            if not bucket:
                continue
            rt = self._storage_type(storage)
            for obj in list(bucket.values()):
                yield rt, present(rt, obj)


# ---------------------------------------------------------------------- helpers


def invalid_patch_options() -> ApiError:
    """422 for an apply without fieldManager, as the real server words it."""
    return ApiError(
        422,
        "Invalid",
        'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch',
        {
            "group": "meta.k8s.io",
            "kind": "PatchOptions",
            "causes": [
                {
                    "reason": "FieldValueRequired",
                    "message": "Required value: is required for apply patch",
                    "field": "fieldManager",
                }
            ],
        },
    )


def _spec_changed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    skip = ("metadata", "status", "apiVersion", "kind")
    keys = (set(old) | set(new)) - set(skip)
    return any(old.get(k) != new.get(k) for k in keys)


def _strip_times(entries: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.items() if k != "time"} for e in entries or []]


def _same_ignoring_times(new: dict[str, Any], old: dict[str, Any]) -> bool:
    if {k: v for k, v in new.items() if k != "metadata"} != {k: v for k, v in old.items() if k != "metadata"}:
        return False
    nm = {k: v for k, v in new["metadata"].items() if k != "managedFields"}
    om = {k: v for k, v in old["metadata"].items() if k != "managedFields"}
    if nm != om:
        return False
    return _strip_times(new["metadata"].get("managedFields")) == _strip_times(
        old["metadata"].get("managedFields")
    )


def _immutable_errors(rt: ResourceType, new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    errors = []
    if rt.storage in ("apps/deployments", "apps/replicasets"):
        before, after = (old.get("spec") or {}).get("selector"), (new.get("spec") or {}).get("selector")
        if before != after:
            errors.append(FieldError("spec.selector", "Invalid value", after, "field is immutable"))
    if rt.storage in ("/secrets", "/configmaps") and old.get("immutable"):
        for section in ("data", "binaryData", "stringData"):
            if old.get(section) != new.get(section):
                errors.append(
                    FieldError(section, "Forbidden", detail="field is immutable when `immutable` is set")
                )
    if rt.storage == "/services":
        before = (old.get("spec") or {}).get("clusterIP")
        after = (new.get("spec") or {}).get("clusterIP")
        if before and after and before != after:
            errors.append(FieldError("spec.clusterIPs[0]", "Invalid value", after, "may not change once set"))
    return errors


def _crd_errors(crd: dict[str, Any]) -> list[FieldError]:
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    errors = []
    for field in ("group",):
        if not spec.get(field):
            errors.append(FieldError(f"spec.{field}", "Required value"))
    for field in ("plural", "kind"):
        if not names.get(field):
            errors.append(FieldError(f"spec.names.{field}", "Required value"))
    if not spec.get("versions"):
        errors.append(
            FieldError(
                "spec.versions",
                "Invalid value",
                [],
                "must have exactly one version marked as storage version",
            )
        )
    name = crd.get("metadata", {}).get("name", "")
    if spec.get("group") and names.get("plural") and name != f"{names['plural']}.{spec['group']}":
        errors.append(
            FieldError("metadata.name", "Invalid value", name, 'must be spec.names.plural+"."+spec.group')
        )
    return errors


def _crd_status(crd: dict[str, Any], old_status: dict[str, Any] | None = None) -> dict[str, Any]:
    now = now_rfc3339()
    names = dict((crd.get("spec") or {}).get("names") or {})
    names.setdefault("singular", names.get("kind", "").lower())
    names.setdefault("listKind", f"{names.get('kind', '')}List")
    stored = [v["name"] for v in (crd.get("spec") or {}).get("versions", []) if v.get("storage")]
    previous = list((old_status or {}).get("storedVersions") or [])
    conditions = [
        {
            "type": "NamesAccepted",
            "status": "True",
            "lastTransitionTime": now,
            "reason": "NoConflicts",
            "message": "no conflicts found",
        },
        {
            "type": "Established",
            "status": "True",
            "lastTransitionTime": now,
            "reason": "InitialNamesAccepted",
            "message": "the initial names have been accepted",
        },
    ]
    if old_status and old_status.get("conditions"):
        conditions = old_status["conditions"]
    return {
        "conditions": conditions,
        "acceptedNames": names,
        "storedVersions": previous + [v for v in stored if v not in previous],
    }


def _scale_paths(rt: ResourceType) -> tuple[str, str, str | None]:
    if rt.scale:
        return (
            rt.scale.get("specReplicasPath", ".spec.replicas"),
            rt.scale.get("statusReplicasPath", ".status.replicas"),
            rt.scale.get("labelSelectorPath"),
        )
    return ".spec.replicas", ".status.replicas", None


def _read_path(obj: dict[str, Any], path: str) -> Any:
    current: Any = obj
    for part in path.strip(".").split("."):
        if not isinstance(current, dict):
            return None
        current = current.get(part)
    return current


def _write_path(obj: dict[str, Any], path: str, value: Any) -> None:
    parts = path.strip(".").split(".")
    current = obj
    for part in parts[:-1]:
        current = current.setdefault(part, {})
    current[parts[-1]] = value


def _drop_field(obj: Any, path: str) -> None:
    """Remove the field at a path like ``spec.containers[0].foo`` (no-op when absent)."""
    import re

    parts: list[str | int] = []
    for token in path.split("."):
        name, *indexes = re.split(r"\[(\d+)\]", token)
        if name:
            parts.append(name)
        parts += [int(i) for i in indexes if i != ""]
    current = obj
    for part in parts[:-1]:
        try:
            current = current[part]
        except (KeyError, IndexError, TypeError):
            return
    if isinstance(current, dict):
        current.pop(parts[-1], None)
