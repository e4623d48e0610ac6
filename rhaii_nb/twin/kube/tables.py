"""``meta.k8s.io/v1 Table`` responses (what ``kubectl get`` asks for with ``Accept: ...;as=Table``)."""

from __future__ import annotations

from typing import Any

from rhaii_nb.twin.errors import ApiError
from rhaii_nb.twin.kube.printers import printer_for
from rhaii_nb.twin.resources import ResourceType

INCLUDE_OBJECT_POLICIES = ("None", "Object", "PartialObjectMetadata")


def wants_table(accept: str | None) -> bool:
    """Whether the Accept header asks for a Table (kubectl's server-side printing)."""
    if not accept:
        return False
    for media in accept.split(","):
        params = {p.strip() for p in media.split(";")[1:]}
        if "as=Table" in params and "g=meta.k8s.io" in params:
            return True
    return False


def include_object_policy(value: str | None) -> str:
    """Validate ``?includeObject=``; the default is PartialObjectMetadata."""
    policy = value or "PartialObjectMetadata"
    if policy not in INCLUDE_OBJECT_POLICIES:
        raise ApiError(
            400,
            "BadRequest",
            f'includeObject: Unsupported value: "{policy}": supported values: "None", "Object", '
            '"PartialObjectMetadata"',
        )
    return policy


def _row_object(obj: dict[str, Any], policy: str) -> dict[str, Any] | None:
    if policy == "None":
        return None
    if policy == "Object":
        return obj
    metadata = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": metadata}


def to_table(
    rt: ResourceType, objects: list[dict[str, Any]], list_metadata: dict[str, Any], policy: str
) -> dict[str, Any]:
    """Render objects as a Table with the type's columns; each row carries its object per ``policy``."""
    columns, printer = printer_for(rt)
    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": printer(obj)[: len(columns)]}
        included = _row_object(obj, policy)
        if included is not None:
            row["object"] = included
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_metadata,
        "columnDefinitions": columns,
        "rows": rows,
    }
