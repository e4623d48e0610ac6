"""Patches: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and Kubernetes strategic merge patch."""

from __future__ import annotations

import copy
from typing import Any

from rhaii_nb.twin.errors import ApiError
from rhaii_nb.twin.typeinfo import TypeNode

_DIRECTIVES = ("$patch", "$retainKeys")


def merge_patch(original: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: maps merge recursively, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(original) if isinstance(original, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(original: dict[str, Any], patch: Any) -> dict[str, Any]:
    """RFC 6902 JSON patch via the ``jsonpatch`` library; 400 for a malformed patch, 422 when it fails."""
    import jsonpatch
    import jsonpointer

    if not isinstance(patch, list):
        raise ApiError(
            400, "BadRequest", "json: cannot unmarshal object into Go value of type jsonpatch.Patch"
        )
    try:
        return jsonpatch.JsonPatch(patch).apply(original)
    except jsonpatch.InvalidJsonPatch as exc:
        raise ApiError(
            400, "BadRequest", f"the server rejected our request due to an error in our request: {exc}"
        ) from None
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
        raise ApiError(
            422, "Invalid", f"the server rejected our request due to an error in our request: {exc}"
        ) from None


def strategic_merge_patch(original: dict[str, Any], patch: Any, node: TypeNode) -> dict[str, Any]:
    """Kubernetes strategic merge patch of a builtin object.

    Lists with a merge key merge item by item (``$patch: delete`` removes one, ``$patch: replace``
    replaces the list), primitive merge lists (finalizers) take the union (and
    ``$deleteFromPrimitiveList/<field>``), ``$retainKeys`` drops unlisted keys, ``$setElementOrder/<field>``
    orders the merged list, and every other list is replaced.
    """
    if not isinstance(patch, dict):
        raise ApiError(400, "BadRequest", "the body of the request was not a JSON object")
    merged = _merge_map(original, patch, node)
    return merged if merged is not None else {}


def _merge_map(original: Any, patch: dict[str, Any], node: TypeNode) -> dict[str, Any] | None:
    directive = patch.get("$patch")
    if directive == "delete":
        return None
    if directive == "replace":
        return {k: _strip(v) for k, v in patch.items() if k not in _DIRECTIVES}
    if directive not in (None, "merge"):
        raise ApiError(400, "BadRequest", f"Unknown patch type: {directive}")
    result = dict(original) if isinstance(original, dict) else {}
    orders: dict[str, list[Any]] = {}
    for key, value in patch.items():
        if key in _DIRECTIVES:
            continue
        if key.startswith("$setElementOrder/"):
            orders[key.split("/", 1)[1]] = value
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            name = key.split("/", 1)[1]
            if isinstance(result.get(name), list):
                result[name] = [v for v in result[name] if v not in (value or [])]
            continue
        if value is None:
            result.pop(key, None)
            continue
        child = node.field(key)
        if isinstance(value, dict):
            merged = _merge_map(result.get(key), value, child)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            result[key] = _merge_list(result.get(key), value, child)
        else:
            result[key] = value
    retain = patch.get("$retainKeys")
    if retain is not None:
        result = {k: v for k, v in result.items() if k in retain}
    for name, order in orders.items():
        if isinstance(result.get(name), list):
            result[name] = _apply_order(result[name], order, node.field(name))
    return result


def _merge_list(original: Any, patch: list[Any], node: TypeNode) -> list[Any]:
    original = list(original) if isinstance(original, list) else []
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [_strip(i) for i in patch if not (isinstance(i, dict) and i.get("$patch") == "replace")]
    if node.smp_key:
        key = node.smp_key
        result = list(original)
        for item in patch:
            if not isinstance(item, dict):
                raise ApiError(
                    400, "BadRequest", f"unable to find api field in struct for list item {item!r}"
                )
            if key not in item:
                raise ApiError(400, "BadRequest", f"map: {item} does not contain declared merge key: {key}")
            index = next(
                (i for i, o in enumerate(result) if isinstance(o, dict) and o.get(key) == item[key]), None
            )
            if item.get("$patch") == "delete":
                if index is not None:
                    result.pop(index)
                continue
            if index is None:
                result.append(_strip(item))
            else:
                merged = _merge_map(result[index], item, node.item())
                result[index] = merged if merged is not None else result[index]
        return result
    if node.smp_merge_primitives:
        return original + [v for v in patch if v not in original]
    return [_strip(i) for i in patch]


def _apply_order(items: list[Any], order: list[Any], node: TypeNode) -> list[Any]:
    if node.smp_key:
        key = node.smp_key
        rank = {repr(o.get(key)): i for i, o in enumerate(order) if isinstance(o, dict)}
        ident = lambda item: repr(item.get(key)) if isinstance(item, dict) else None  # noqa: E731
    else:
        rank = {repr(o): i for i, o in enumerate(order)}
        ident = repr
    ordered = sorted((i for i in items if ident(i) in rank), key=lambda i: rank[ident(i)])
    rest = [i for i in items if ident(i) not in rank]
    return ordered + rest


def _strip(value: Any) -> Any:
    """Remove patch directives from a value that is inserted as-is."""
    if isinstance(value, dict):
        return {
            k: _strip(v)
            for k, v in value.items()
            if k not in _DIRECTIVES and not k.startswith(("$setElementOrder/", "$deleteFromPrimitiveList/"))
        }
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value
