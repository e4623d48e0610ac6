"""The cost line: TPU node-hours the run consumed, priced at the params' rate.

Where the numbers come from (the same on GKE and on the twin):

- every TPU node the Kubernetes API lists: alive from its ``creationTimestamp`` until its
  ``deletionTimestamp`` (or now);
- nodes that are gone: the node controller's ``RegisteredNode`` / ``RemovingNode`` events (namespace
  ``default``) give their start and end;
- a small ledger in the session's state directory remembers every node ever seen, because
  Kubernetes keeps events only about an hour and a deleted cluster keeps nothing.

On GKE the result is real node-hours (billing starts a little earlier, at VM creation). On the twin
every duration is simulated: the twin runs ``time_scale`` times faster than GKE, so node-hours are
wall-clock hours ÷ ``time_scale`` — illustrative, and ``basis`` says so.

:func:`record_cost` records one ``cost`` record per notebook for the run report
(``rhaii_nb.report.cost_summary`` adds them up), each covering only the time since the run's
earlier cost records, so nothing is counted twice.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from rhaii_nb.record import RECORD_ENV, read_records, record

TPU_LABEL = "cloud.google.com/gke-tpu-accelerator"
POOL_LABEL = "cloud.google.com/gke-nodepool"
TPU_RESOURCE = "google.com/tpu"
NODE_EVENTS_NAMESPACE = "default"
LEDGER_FILE = "tpu_nodes.json"
RUN_DIR_ENV = "RHAII_NB_RUN_DIR"


@dataclass
class NodeLife:
    """One TPU node's lifetime (epoch seconds; ``deleted`` None while it exists)."""

    name: str
    pool: str
    chips: int
    created: float
    deleted: float | None = None
    source: str = "api"  # api | events | ledger


@dataclass
class CostLine:
    """TPU usage over a window and its price."""

    node_hours: float
    chip_hours: float
    estimate: float | None
    currency: str
    rate: float | None
    basis: str
    since: float | None
    until: float
    nodes: list[NodeLife]

    def as_record(self) -> dict[str, Any]:
        """The fields ``report.cost_summary`` reads, plus the window."""
        return {
            "node_hours": round(self.node_hours, 6),
            "chip_hours": round(self.chip_hours, 6),
            "estimate": round(self.estimate, 4) if self.estimate is not None else 0.0,
            "currency": self.currency,
            "rate": self.rate,
            "basis": self.basis,
            "since": self.since,
            "until": self.until,
            "nodes": len(self.nodes),
        }

    def text(self) -> str:
        """One line for people: node-hours, chip-hours, estimate, basis."""
        price = (
            f" ≈ {self.estimate:.2f} {self.currency}"
            if self.estimate is not None
            else " (no cost_per_chip_hour in params: no estimate)"
        )
        usage = f"{self.node_hours:.3f} node-hours, {self.chip_hours:.2f} chip-hours"
        return f"TPU usage: {usage}{price} — {self.basis}"

    def table(self) -> pd.DataFrame:
        """The nodes counted: name, pool, chips, created, deleted (UTC), source."""
        rows = [
            {
                **asdict(n),
                "created": _utc(n.created),
                "deleted": _utc(n.deleted) if n.deleted is not None else "",
            }
            for n in self.nodes
        ]
        return pd.DataFrame(rows, columns=["name", "pool", "chips", "created", "deleted", "source"])


def parse_time(stamp: str | None) -> float | None:
    """RFC 3339 (``2026-12-06T18:31:41Z`` or with fractions/offset) → epoch seconds."""
    if not stamp:
        return None
    return dt.datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()


def _utc(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="seconds")


def time_scale(session: Any, params: Any) -> float:
    """1 on GKE; on the twin the factor its clock runs at (from the running twin, else params)."""
    if params.target != "local":
        return 1.0
    twin = getattr(session, "twin", None)
    endpoints = getattr(twin, "endpoints", None) or {}
    return float(endpoints.get("time_scale") or params.time_scale)


# --- observing nodes ------------------------------------------------------------------------------


def _ledger_path(session: Any) -> Path:
    return Path(session.state_dir) / LEDGER_FILE


def _load_ledger(session: Any) -> dict[str, dict[str, Any]]:
    path = _ledger_path(session)
    return json.loads(path.read_text()) if path.exists() else {}


def _save_ledger(session: Any, ledger: dict[str, dict[str, Any]]) -> None:
    path = _ledger_path(session)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(ledger, indent=1, sort_keys=True))


def _api_nodes(session: Any) -> list[dict[str, Any]] | None:
    """TPU nodes as plain dicts, or None when the Kubernetes API cannot be reached (no cluster)."""
    try:
        answer = session.core.list_node(label_selector=TPU_LABEL)
    except Exception:
        return None
    return session.api_client.sanitize_for_serialization(answer).get("items", [])


def _node_events(session: Any) -> list[dict[str, Any]]:
    """The node controller's events (RegisteredNode, RemovingNode); empty when unreachable."""
    try:
        answer = session.core.list_namespaced_event(NODE_EVENTS_NAMESPACE)
    except Exception:
        return []
    items = session.api_client.sanitize_for_serialization(answer).get("items", [])
    return [e for e in items if (e.get("involvedObject") or {}).get("kind") == "Node"]


def _event_time(event: dict[str, Any], first: bool) -> float | None:
    keys = ("firstTimestamp", "eventTime", "lastTimestamp") if first else ("lastTimestamp", "eventTime")
    for key in keys:
        value = parse_time(event.get(key))
        if value is not None:
            return value
    return parse_time((event.get("metadata") or {}).get("creationTimestamp"))


def observe_nodes(session: Any, params: Any, now: float | None = None) -> list[NodeLife]:
    """Every TPU node known from the API, the node events and the ledger (which this call updates)."""
    now = time.time() if now is None else now
    ledger = _load_ledger(session)
    api_nodes = _api_nodes(session)
    seen_now: set[str] = set()
    for node in api_nodes or []:
        meta = node.get("metadata") or {}
        name = meta["name"]
        seen_now.add(name)
        chips = int(((node.get("status") or {}).get("capacity") or {}).get(TPU_RESOURCE, 0) or 0)
        entry = ledger.setdefault(name, {})
        entry.update(
            pool=(meta.get("labels") or {}).get(POOL_LABEL, ""),
            chips=chips or entry.get("chips") or params.chips_per_node,
            created=parse_time(meta.get("creationTimestamp")) or entry.get("created") or now,
            source="api",
        )
        entry["deleted"] = parse_time(meta.get("deletionTimestamp"))
    registered: dict[str, float] = {}
    removed: dict[str, float] = {}
    for event in _node_events(session):
        name = (event.get("involvedObject") or {}).get("name", "")
        if event.get("reason") == "RegisteredNode":
            stamp = _event_time(event, first=True)
            if stamp is not None:
                registered[name] = min(stamp, registered.get(name, stamp))
        elif event.get("reason") == "RemovingNode":
            stamp = _event_time(event, first=False)
            if stamp is not None:
                removed[name] = max(stamp, removed.get(name, stamp))
    pool_marker = f"-{params.node_pool}-"
    for name, started in registered.items():
        if name in ledger or name in seen_now or pool_marker not in name:
            continue  # known already, or not a node of the TPU pool
        ledger[name] = {
            "pool": params.node_pool,
            "chips": params.chips_per_node,
            "created": started,
            "deleted": None,
            "source": "events",
        }
    if api_nodes is not None:  # only when we could look: a node we knew and no longer see is gone
        for name, entry in ledger.items():
            if name not in seen_now and entry.get("deleted") is None:
                entry["deleted"] = removed.get(name, now)
    _save_ledger(session, ledger)
    return [
        NodeLife(
            name,
            e.get("pool", ""),
            int(e.get("chips") or 0),
            float(e["created"]),
            e.get("deleted"),
            e.get("source", "ledger"),
        )
        for name, e in sorted(ledger.items())
    ]


# --- pricing ----------------------------------------------------------------------------------------


def usage_hours(
    nodes: list[NodeLife], since: float | None, until: float, scale: float
) -> tuple[float, float]:
    """(node-hours, chip-hours) of ``nodes`` inside ``[since, until]``; wall seconds ÷ ``scale``."""
    node_seconds = chip_seconds = 0.0
    for node in nodes:
        start = node.created if since is None else max(node.created, since)
        end = min(node.deleted if node.deleted is not None else until, until)
        if end > start:
            node_seconds += end - start
            chip_seconds += (end - start) * node.chips
    return node_seconds / scale / 3600, chip_seconds / scale / 3600


def basis_text(params: Any, scale: float) -> str:
    """How the numbers were made (shown next to them)."""
    rate = params.cost_per_chip_hour
    priced = f"at {rate:g} {params.currency} per chip-hour" if rate is not None else "no rate given"
    if params.target == "local":
        return (
            f"illustrative on the twin: node lifetimes in simulated time (wall time ÷ time_scale {scale:g}), "
            f"{priced}"
        )
    return f"GKE nodes' creation/deletion times, {priced} (list price; discounts not applied)"


def cost_line(
    session: Any, params: Any, *, since: float | None = None, until: float | None = None
) -> CostLine:
    """TPU node-hours and chip-hours in ``[since, until]`` (default: all known, until now), priced."""
    until = time.time() if until is None else until
    nodes = observe_nodes(session, params, now=until)
    scale = time_scale(session, params)
    node_hours, chip_hours = usage_hours(nodes, since, until, scale)
    rate = params.cost_per_chip_hour
    estimate = chip_hours * rate if rate is not None else None
    return CostLine(
        node_hours,
        chip_hours,
        estimate,
        params.currency,
        rate,
        basis_text(params, scale),
        since,
        until,
        nodes,
    )


def _earlier_windows_end(run_dir: Path, own_file: Path | None) -> float | None:
    """End of the last window other notebooks of this run already recorded (None when none did)."""
    ends = []
    for path in sorted((run_dir / "records").glob("*.jsonl")):
        if own_file is not None and path.resolve() == own_file.resolve():
            continue
        ends += [
            float(r["data"]["until"])
            for r in read_records(path)
            if r.get("kind") == "cost" and (r.get("data") or {}).get("until") is not None
        ]
    return max(ends) if ends else None


def _run_started(run_dir: Path) -> float | None:
    summary = run_dir / "summary.json"
    if not summary.exists():
        return None
    return parse_time(json.loads(summary.read_text()).get("started_at"))


def record_cost(session: Any, params: Any, name: str = "TPU node-hours") -> CostLine:
    """Compute the cost since the run's earlier cost records (or the run's start) and record it.

    Run by the runner: the window starts where the previous notebooks' cost records ended, so the
    report's sum counts every node-hour once. Interactively: the whole life of the nodes known.
    """
    since = None
    run_dir = os.environ.get(RUN_DIR_ENV)
    if run_dir:
        own = os.environ.get(RECORD_ENV)
        since = _earlier_windows_end(Path(run_dir), Path(own) if own else None) or _run_started(Path(run_dir))
    line = cost_line(session, params, since=since)
    record("cost", name, line.as_record())
    return line
