"""GKE long-running operations: what every mutating call returns, RUNNING until its work is DONE.

An operation carries what google-cloud-container and gcloud read: ``status`` (RUNNING → DONE),
``detail`` (gcloud shows it while polling), ``progress.metrics`` (``NODES_TOTAL`` /
``NODES_DONE``, plus ``CONTROL_PLANE_READY`` for cluster creation), ``statusMessage`` (empty on
success; gcloud treats a non-empty one on a DONE operation as a failure) and ``error``.
Container v1 has no server-side wait: callers poll ``operations.get`` (gcloud every 5 s).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from rhaii_nb.twin.gke.errors import failed_precondition, not_found

API_BASE = "https://container.googleapis.com/v1"

# What gcloud says when a cluster is busy, by operation type.
_VERB = {
    "CREATE_CLUSTER": "creating cluster",
    "DELETE_CLUSTER": "deleting cluster",
    "CREATE_NODE_POOL": "creating node pool",
    "DELETE_NODE_POOL": "deleting node pool",
    "SET_NODE_POOL_SIZE": "resizing node pool",
}


def rfc3339(epoch: float) -> str:
    """Google's timestamp format (UTC, nanoseconds, ``Z``)."""
    moment = dt.datetime.fromtimestamp(epoch, tz=dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}000Z"


@dataclass
class Operation:
    """One GKE operation and its progress."""

    name: str
    project: str
    location: str
    operation_type: str
    cluster: str
    node_pool: str | None = None
    status: str = "RUNNING"
    detail: str = ""
    status_message: str = ""
    error: dict[str, Any] | None = None
    metrics: dict[str, int] = field(default_factory=dict)
    start_time: float = field(default_factory=time.time)
    end_time: float | None = None
    _done: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def target_link(self) -> str:
        """URL of the cluster or node pool the operation acts on."""
        link = f"{API_BASE}/projects/{self.project}/zones/{self.location}/clusters/{self.cluster}"
        return f"{link}/nodePools/{self.node_pool}" if self.node_pool else link

    @property
    def done(self) -> bool:
        """Whether the operation has finished (successfully or not)."""
        return self.status == "DONE"

    def progress(self, detail: str | None = None, **metrics: int) -> None:
        """Record progress: a human ``detail`` line and/or metric values."""
        if detail is not None:
            self.detail = detail
        self.metrics.update(metrics)

    def finish(self, warning: str = "", error: str | None = None, code: int = 9) -> None:
        """Mark DONE. ``warning`` becomes the statusMessage; ``error`` also fills ``error`` (code 9:
        FAILED_PRECONDITION)."""
        self.status = "DONE"
        self.end_time = time.time()
        self.status_message = error or warning
        if error:
            self.error = {"code": code, "message": error}
        self._done.set()

    async def wait(self, timeout: float) -> Operation:
        """Wait until DONE; TimeoutError naming the operation and its last detail otherwise."""
        try:
            await asyncio.wait_for(self._done.wait(), timeout)
        except TimeoutError:
            raise TimeoutError(
                f"GKE operation {self.name} ({self.operation_type} {self.cluster}) still RUNNING after "
                f"{timeout:.1f}s; last progress: {self.detail or 'none'}"
            ) from None
        return self

    def to_json(self) -> dict[str, Any]:
        """The operation as container v1 returns it (camelCase JSON)."""
        body: dict[str, Any] = {
            "name": self.name,
            "zone": self.location,
            "operationType": self.operation_type,
            "status": self.status,
            "selfLink": f"{API_BASE}/projects/{self.project}/zones/{self.location}/operations/{self.name}",
            "targetLink": self.target_link,
            "location": self.location,
            "startTime": rfc3339(self.start_time),
        }
        if self.detail:
            body["detail"] = self.detail
        if self.status_message:
            body["statusMessage"] = self.status_message
        if self.end_time is not None:
            body["endTime"] = rfc3339(self.end_time)
        if self.error:
            body["error"] = self.error
        if self.metrics:
            body["progress"] = {
                "status": self.status,
                "metrics": [{"name": k, "intValue": str(v)} for k, v in self.metrics.items()],
            }
        return body


class Operations:
    """Every operation of the twin's GKE API, newest last."""

    def __init__(self) -> None:
        self._ops: dict[str, Operation] = {}

    def start(
        self, project: str, location: str, operation_type: str, cluster: str, node_pool: str | None = None
    ) -> Operation:
        """Begin an operation; 400 FAILED_PRECONDITION if another one is still running on the cluster."""
        for op in self._ops.values():
            if op.cluster == cluster and not op.done:
                raise failed_precondition(
                    f"Cluster is running incompatible operation {op.name}: operation {op.name} is currently "
                    f"{_VERB.get(op.operation_type, op.operation_type.lower())} {cluster}. "
                    "Please wait and try again once it is done."
                )
        name = f"operation-{int(time.time() * 1000)}-{secrets.token_hex(4)}"
        op = Operation(name, project, location, operation_type, cluster, node_pool)
        self._ops[name] = op
        return op

    def get(self, project: str, location: str, name: str) -> Operation:
        """One operation; 404 as Google words it when unknown."""
        op = self._ops.get(name)
        if op is None or op.project != project or location not in ("-", op.location):
            raise not_found(f"Not found: projects/{project}/locations/{location}/operations/{name}.")
        return op

    def list(self, project: str, location: str) -> list[Operation]:
        """Operations of a project in a location (``-`` = every location)."""
        return [op for op in self._ops.values() if op.project == project and location in ("-", op.location)]
