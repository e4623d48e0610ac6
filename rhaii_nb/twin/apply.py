"""Server-side apply and ``metadata.managedFields`` (field ownership per manager, FieldsV1 format).

A field set is a set of paths; a path is a tuple of elements ``("f", name)`` (map field), ``("k",
'{"name":"x"}')`` (keyed list item), ``("v", '"x"')`` (set member) or ``("i", 3)`` (list index). They
serialise to the real ``fieldsV1`` form: ``{"f:spec": {"f:containers": {"k:{\"name\":\"x\"}": {".": {},
"f:image": {}}}}}``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rhaii_nb.twin.errors import ApiError
from rhaii_nb.twin.typeinfo import TypeNode

Element = tuple[str, Any]
Path = tuple[Element, ...]

# Fields the server owns: never part of any manager's set (as structured-merge-diff strips them).
_STRIPPED_META = {
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
    "generateName",
}
_KEY_DEFAULTS = {"protocol": "TCP"}


def _key_json(item: Any, keys: tuple[str, ...]) -> str:
    if not isinstance(item, dict):
        return json.dumps(item, separators=(",", ":"))
    values = {k: item.get(k, _KEY_DEFAULTS.get(k)) for k in keys if k in item or k in _KEY_DEFAULTS}
    return json.dumps(values, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def _is_granular_map(value: Any, node: TypeNode) -> bool:
    return isinstance(value, dict) and bool(value) and not node.atomic_map


def _is_granular_list(value: Any, node: TypeNode) -> bool:
    return isinstance(value, list) and bool(value) and node.list_type in ("map", "set")


def field_set(obj: dict[str, Any], node: TypeNode, section: str | None = None) -> set[Path]:
    """Every owned path of ``obj`` (leaves, keyed list items and set members).

    ``section`` limits the set to ``status`` ("status") or to everything but status ("main").
    """
    out: set[Path] = set()
    for key, value in obj.items():
        if key in ("apiVersion", "kind"):
            continue
        if section == "status" and key != "status":
            continue
        if section == "main" and key == "status":
            continue
        if key == "metadata" and isinstance(value, dict):
            value = {k: v for k, v in value.items() if k not in _STRIPPED_META}
            if not value:
                continue
        _walk(value, node.field(key), (("f", key),), out)
    return out


def _walk(value: Any, node: TypeNode, path: Path, out: set[Path]) -> None:
    if _is_granular_map(value, node):
        for key, child in value.items():
            _walk(child, node.field(key), (*path, ("f", key)), out)
    elif _is_granular_list(value, node):
        if node.list_type == "set":
            for item in value:
                out.add((*path, ("v", json.dumps(item, separators=(",", ":"), ensure_ascii=False))))
            return
        item_node = node.item()
        for item in value:
            item_path = (*path, ("k", _key_json(item, node.keys)))
            out.add(item_path)
            if isinstance(item, dict):
                for key, child in item.items():
                    _walk(child, item_node.field(key), (*item_path, ("f", key)), out)
    else:
        out.add(path)


def _find_item(items: list[Any], element: Element, keys: tuple[str, ...]) -> int | None:
    kind, ident = element
    for i, item in enumerate(items):
        if kind == "k" and _key_json(item, keys) == ident:
            return i
        if kind == "v" and json.dumps(item, separators=(",", ":"), ensure_ascii=False) == ident:
            return i
        if kind == "i" and i == ident:
            return i
    return None


def value_at(obj: Any, path: Path, node: TypeNode) -> tuple[bool, Any]:
    """(found, value) of ``path`` in ``obj``."""
    current = obj
    for element in path:
        if element[0] == "f":
            if not isinstance(current, dict) or element[1] not in current:
                return False, None
            current = current[element[1]]
            node = node.field(element[1])
        else:
            if not isinstance(current, list):
                return False, None
            index = _find_item(current, element, node.keys)
            if index is None:
                return False, None
            current = current[index]
            node = node.item()
    return True, current


def remove_path(obj: dict[str, Any], path: Path, node: TypeNode) -> None:
    """Delete the field, list item or set member at ``path`` (no-op when absent)."""
    current: Any = obj
    for element in path[:-1]:
        if element[0] == "f":
            if not isinstance(current, dict) or element[1] not in current:
                return
            current = current[element[1]]
            node = node.field(element[1])
        else:
            if not isinstance(current, list):
                return
            index = _find_item(current, element, node.keys)
            if index is None:
                return
            current = current[index]
            node = node.item()
    last = path[-1]
    if last[0] == "f":
        if isinstance(current, dict):
            current.pop(last[1], None)
    elif isinstance(current, list):
        index = _find_item(current, last, node.keys)
        if index is not None:
            current.pop(index)


def merge_applied(live: Any, applied: Any, node: TypeNode) -> Any:
    """Merge an applied configuration into the live value (granular maps, keyed lists, sets)."""
    if isinstance(applied, dict) and isinstance(live, dict) and not node.atomic_map:
        out = dict(live)
        for key, value in applied.items():
            out[key] = merge_applied(live.get(key), value, node.field(key))
        return out
    if isinstance(applied, list) and isinstance(live, list):
        if node.list_type == "map":
            out_list = list(live)
            item_node = node.item()
            for item in applied:
                index = _find_item(out_list, ("k", _key_json(item, node.keys)), node.keys)
                if index is None:
                    out_list.append(copy.deepcopy(item))
                else:
                    out_list[index] = merge_applied(out_list[index], item, item_node)
            return out_list
        if node.list_type == "set":
            return list(live) + [copy.deepcopy(v) for v in applied if v not in live]
    return copy.deepcopy(applied)


# ---------------------------------------------------------------- FieldsV1 encoding


def _encode(element: Element) -> str:
    kind, value = element
    return f"{kind}:{value}"


def _decode(text: str) -> Element:
    kind, _, value = text.partition(":")
    if kind == "i":
        return ("i", int(value))
    return (kind, value)


def to_fields_v1(paths: Iterable[Path]) -> dict[str, Any]:
    """Serialise a field set to the FieldsV1 JSON object."""
    root: dict[str, Any] = {}
    members: set[int] = set()
    for path in paths:
        node = root
        for element in path:
            node = node.setdefault(_encode(element), {})
        members.add(id(node))

    def finish(node: dict[str, Any]) -> dict[str, Any]:
        children = {k: finish(v) for k, v in sorted(node.items())}
        if id(node) in members and children:
            return {".": {}, **children}
        return children

    return finish(root)


def from_fields_v1(fields: dict[str, Any]) -> set[Path]:
    """Parse a FieldsV1 JSON object into a field set."""
    out: set[Path] = set()

    def walk(node: dict[str, Any], path: Path) -> None:
        if path and (not node or "." in node):
            out.add(path)
        for key, child in node.items():
            if key != ".":
                walk(child, (*path, _decode(key)))

    walk(fields or {}, ())
    return out


def path_string(path: Path) -> str:
    """``.spec.containers[name="x"].image`` as structured-merge-diff prints paths."""
    parts = []
    for kind, value in path:
        if kind == "f":
            parts.append(f".{value}")
        elif kind == "k":
            pairs = json.loads(value)
            inner = ",".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in pairs.items())
            parts.append(f"[{inner}]")
        elif kind == "v":
            parts.append(f"[={value}]")
        else:
            parts.append(f"[{value}]")
    return "".join(parts)


# ---------------------------------------------------------------- managers


@dataclass
class Manager:
    """One managedFields entry with its parsed field set."""

    manager: str
    operation: str
    api_version: str
    subresource: str
    time: str
    fields: set[Path]

    def same_identity(self, other: Manager) -> bool:
        """Whether both entries are the same slot (Apply entries ignore the apiVersion)."""
        if (self.manager, self.operation, self.subresource) != (
            other.manager,
            other.operation,
            other.subresource,
        ):
            return False
        return self.operation == "Apply" or self.api_version == other.api_version

    def display(self) -> str:
        """How conflict messages name the manager."""
        text = json.dumps(self.manager)
        if self.subresource:
            text += f" with subresource {json.dumps(self.subresource)}"
        if self.operation == "Update":
            text += f" using {self.api_version}"
        return text

    def to_entry(self) -> dict[str, Any]:
        """The ``metadata.managedFields[]`` JSON entry."""
        entry = {
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": to_fields_v1(self.fields),
        }
        if self.subresource:
            entry["subresource"] = self.subresource
        return entry


def parse_managed(entries: list[dict[str, Any]] | None) -> list[Manager]:
    """Parse ``metadata.managedFields``."""
    out = []
    for entry in entries or []:
        out.append(
            Manager(
                manager=entry.get("manager", ""),
                operation=entry.get("operation", "Update"),
                api_version=entry.get("apiVersion", ""),
                subresource=entry.get("subresource", ""),
                time=entry.get("time", ""),
                fields=from_fields_v1(entry.get("fieldsV1") or {}),
            )
        )
    return out


def render_managed(managers: list[Manager]) -> list[dict[str, Any]]:
    """Serialise managers back to ``metadata.managedFields`` (empty sets are dropped)."""
    return [m.to_entry() for m in managers if m.fields]


def _upsert(managers: list[Manager], new: Manager) -> Manager:
    for existing in managers:
        if existing.same_identity(new):
            if existing.fields != new.fields:
                existing.time = new.time
            existing.fields = new.fields
            existing.api_version = new.api_version
            return existing
    managers.append(new)
    return new


def record_update(
    old: dict[str, Any] | None,
    new: dict[str, Any],
    node: TypeNode,
    manager: str,
    api_version: str,
    now: str,
    subresource: str = "",
    section: str | None = None,
) -> list[dict[str, Any]]:
    """managedFields after an Update operation (create/update/patch) by ``manager``.

    The manager takes the fields it added or changed; others lose changed fields; removed fields
    leave every set.
    """
    managers = parse_managed((old or {}).get("metadata", {}).get("managedFields"))
    old_set = field_set(old, node, section) if old else set()
    new_set = field_set(new, node, section)
    changed = set()
    for path in new_set:
        if path not in old_set or (
            path[-1][0] == "f" and value_at(old, path, node) != value_at(new, path, node)
        ):
            changed.add(path)
    removed = old_set - new_set
    for m in managers:
        m.fields -= changed | removed
    mine = Manager(manager, "Update", api_version, subresource, now, set())
    for m in managers:
        if m.same_identity(mine):
            mine = m
            break
    else:
        managers.append(mine)
    if changed:
        mine.fields = mine.fields | changed
        mine.time = now
    mine.api_version = api_version
    return render_managed(managers)


def server_side_apply(
    live: dict[str, Any] | None,
    applied: dict[str, Any],
    node: TypeNode,
    manager: str,
    api_version: str,
    now: str,
    force: bool = False,
    subresource: str = "",
    section: str | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Merge ``applied`` into ``live`` as ``manager``; returns (object, managedFields).

    409 Conflict when a changed field is owned by another manager (unless ``force``, which takes it
    over); fields the manager applied before and omits now are removed unless someone else owns them.
    """
    managers = parse_managed((live or {}).get("metadata", {}).get("managedFields"))
    applied_set = field_set(applied, node, section)
    mine = Manager(manager, "Apply", api_version, subresource, now, set())
    previous: set[Path] = set()
    for m in managers:
        if m.same_identity(mine):
            previous = set(m.fields)
    merged = merge_applied(live, applied, node) if live is not None else copy.deepcopy(applied)
    conflicts: list[tuple[Manager, Path]] = []
    if live is not None:
        for path in sorted(applied_set, key=path_string):
            if path[-1][0] != "f":
                continue  # keyed items and set members conflict only through their fields
            before = value_at(live, path, node)
            if before[0] and before == value_at(merged, path, node):
                continue
            for m in managers:
                if not m.same_identity(mine) and path in m.fields:
                    conflicts.append((m, path))
    if conflicts and not force:
        raise _conflict_error(conflicts)
    for m, path in conflicts:
        m.fields.discard(path)
    others: set[Path] = set()
    for m in managers:
        if not m.same_identity(mine):
            others |= m.fields
    for path in sorted(previous - applied_set, key=len):  # parents first: children go with them
        if path in others or any(o[: len(path)] == path for o in others):
            continue
        remove_path(merged, path, node)
    mine.fields = applied_set
    kept = _upsert(managers, mine)
    if kept is not mine and kept.fields == previous:
        pass  # unchanged ownership keeps its timestamp (no-op apply stays a no-op)
    return merged, render_managed(managers)


def _conflict_error(conflicts: list[tuple[Manager, Path]]) -> ApiError:
    causes = [
        {
            "reason": "FieldManagerConflict",
            "message": f"conflict with {m.display()}",
            "field": path_string(p),
        }
        for m, p in conflicts
    ]
    if len(conflicts) == 1:
        m, p = conflicts[0]
        message = f"Apply failed with 1 conflict: conflict with {m.display()}: {path_string(p)}"
    else:
        by_manager: dict[str, list[str]] = {}
        for m, p in conflicts:
            by_manager.setdefault(m.display(), []).append(path_string(p))
        lines = []
        for name in sorted(by_manager):
            lines.append(f"conflicts with {name}:")
            lines += [f"- {p}" for p in by_manager[name]]
        message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    return ApiError(409, "Conflict", message, {"causes": causes})
