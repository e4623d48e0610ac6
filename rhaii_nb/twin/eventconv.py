"""Conversion between core/v1 Events (the stored form) and events.k8s.io/v1 Events."""

from __future__ import annotations

from typing import Any

# events.k8s.io/v1 field ← core/v1 field
_RENAMES = {
    "regarding": "involvedObject",
    "note": "message",
    "deprecatedSource": "source",
    "deprecatedFirstTimestamp": "firstTimestamp",
    "deprecatedLastTimestamp": "lastTimestamp",
    "deprecatedCount": "count",
    "reportingController": "reportingComponent",
}
_SHARED = ("metadata", "eventTime", "series", "reason", "type", "action", "related", "reportingInstance")


def core_to_events_v1(core: dict[str, Any]) -> dict[str, Any]:
    """A stored core/v1 Event as events.k8s.io/v1 shows it."""
    out: dict[str, Any] = {"kind": "Event", "apiVersion": "events.k8s.io/v1"}
    for key in _SHARED:
        if key in core:
            out[key] = core[key]
    for new, old in _RENAMES.items():
        if core.get(old) not in (None, "", {}):
            out[new] = core[old]
    return out


def events_v1_to_core(event: dict[str, Any]) -> dict[str, Any]:
    """An events.k8s.io/v1 Event in the stored core/v1 form."""
    out: dict[str, Any] = {"kind": "Event", "apiVersion": "v1"}
    for key in _SHARED:
        if key in event:
            out[key] = event[key]
    for new, old in _RENAMES.items():
        if new in event:
            out[old] = event[new]
    out.setdefault("involvedObject", {})
    return out
