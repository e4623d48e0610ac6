"""GKE node pools: the request a pool is created from, its validation, its nodes and its JSON.

A pool has a target size (``initialNodeCount``, then whatever ``setSize`` asked for) and the nodes
that actually exist. They differ while the pool provisions, when quota stops it short, and when a
node is lost (scenario ``node-loss``); ``status``/``statusMessage``/``conditions`` say so.
``initialNodeCount`` stays what the pool was created with, as on GKE.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from rhaii_nb.gcp_catalog import MachineType, load_catalog
from rhaii_nb.twin.gke.errors import invalid_argument
from rhaii_nb.twin.gke.operations import API_BASE

NODE_VERSION = "1.31.6-gke.1064001"
DEFAULT_MACHINE_TYPE = "e2-medium"
_NAME = re.compile(r"^[a-z](?:[-a-z0-9]{0,38}[a-z0-9])?$")


def check_name(kind: str, name: str) -> None:
    """400 unless ``name`` is a valid GKE resource name (RFC 1035, at most 40 characters)."""
    if not name:
        raise invalid_argument(f"{kind}.name must be specified.")
    if not _NAME.match(name):
        raise invalid_argument(
            f'Invalid value for field "{kind.lower()}.name": "{name}". Must be a match of regex '
            "'(?:[a-z](?:[-a-z0-9]{0,38}[a-z0-9])?)' (only alphanumerics and '-' allowed, must start with "
            "a letter and end with an alphanumeric, and must be no longer than 40 characters)."
        )


def resolve_machine(machine_type: str, zone: str) -> MachineType:
    """The machine type, if ``zone`` offers it; 400 with the reason and the fix otherwise."""
    catalog = load_catalog()
    machine = catalog.machine_type(machine_type)
    if machine is None:
        raise invalid_argument(
            f'Machine type "{machine_type}" does not exist in zone "{zone}". TPU v6e machine types: '
            f"{', '.join(sorted(catalog.machine_types))}."
        )
    if not catalog.offers(zone, machine_type):
        where = (
            ", ".join(sorted(catalog.zones_with_tpu_v6e)) if machine.is_tpu else "the zones of a known region"
        )
        raise invalid_argument(
            f"Machine type {machine_type} is not available in zone {zone}. It is offered in: {where}."
        )
    return machine


@dataclass
class NodePool:
    """One node pool of the twin's cluster."""

    name: str
    machine: MachineType
    zone: str
    initial_node_count: int
    config: dict[str, Any]
    placement_policy: dict[str, Any] | None = None
    autoscaling: dict[str, Any] | None = None
    target: int = 0
    nodes: list[str] = field(default_factory=list)
    ready: set[str] = field(default_factory=set)
    status: str = "PROVISIONING"
    status_message: str = ""
    conditions: list[dict[str, Any]] = field(default_factory=list)
    pool_hash: str = field(default_factory=lambda: secrets.token_hex(4))
    created: float = field(default_factory=time.time)

    @classmethod
    def from_request(cls, body: dict[str, Any], zone: str) -> NodePool:
        """Build (and validate) a pool from a container v1 ``NodePool`` JSON (normalized camelCase)."""
        name = body.get("name", "")
        check_name("NodePool", name)
        count = int(body.get("initialNodeCount", 0))
        if count < 0:
            raise invalid_argument(
                f"Invalid value for field 'nodePool.initialNodeCount': {count}. Must be >= 0."
            )
        config = dict(body.get("config") or {})
        config.setdefault("machineType", DEFAULT_MACHINE_TYPE)
        machine = resolve_machine(config["machineType"], zone)
        placement = body.get("placementPolicy") or None
        topology = (placement or {}).get("tpuTopology")
        if topology and machine.is_tpu and topology not in machine.topologies:
            raise invalid_argument(
                f'Invalid TPU topology "{topology}" for machine type {machine.name}: a single-host '
                f"{machine.name} slice has topology {' or '.join(machine.topologies)}."
            )
        if topology and not machine.is_tpu:
            raise invalid_argument(
                f"placementPolicy.tpuTopology needs a TPU machine type, not {machine.name}."
            )
        config.setdefault("diskSizeGb", 100)
        config.setdefault("diskType", "pd-balanced")
        config.setdefault("imageType", "COS_CONTAINERD")
        config.setdefault("serviceAccount", "default")
        config.setdefault("oauthScopes", ["https://www.googleapis.com/auth/cloud-platform"])
        config.setdefault("metadata", {"disable-legacy-endpoints": "true"})
        return cls(
            name=name,
            machine=machine,
            zone=zone,
            initial_node_count=count,
            config=config,
            placement_policy=placement,
            autoscaling=body.get("autoscaling") or None,
            target=count,
        )

    @property
    def topology(self) -> str | None:
        """The TPU topology nodes are labelled with (None for CPU pools)."""
        if not self.machine.is_tpu:
            return None
        return (self.placement_policy or {}).get("tpuTopology") or self.machine.topologies[0]

    @property
    def spot(self) -> bool:
        """Whether the pool's nodes are Spot VMs."""
        return bool(self.config.get("spot") or self.config.get("preemptible"))

    @property
    def chips(self) -> int:
        """TPU chips the pool's existing nodes hold."""
        return len(self.nodes) * self.machine.chips

    def record_shortfall(
        self, reason: str = "", code: str = "UNKNOWN", canonical: str = "UNAVAILABLE"
    ) -> None:
        """Set status/message/conditions from target vs existing nodes: RUNNING when they match, else
        RUNNING_WITH_ERROR naming how many nodes are missing and why."""
        if len(self.nodes) >= self.target:
            self.status, self.status_message, self.conditions = "RUNNING", "", []
            return
        message = f"{len(self.nodes)} of {self.target} nodes available in node pool {self.name}: {reason}"
        self.status, self.status_message = "RUNNING_WITH_ERROR", message
        self.conditions = [{"code": code, "message": message, "canonicalCode": canonical}]

    def to_json(self, project: str, location: str, cluster: str) -> dict[str, Any]:
        """The pool as container v1 returns it."""
        link = f"{API_BASE}/projects/{project}/zones/{location}/clusters/{cluster}/nodePools/{self.name}"
        group = f"gke-{cluster[:14]}-{self.name[:14]}-{self.pool_hash}-grp"
        body: dict[str, Any] = {
            "name": self.name,
            "config": self.config,
            "initialNodeCount": self.initial_node_count,
            "locations": [self.zone],
            "selfLink": link,
            "version": NODE_VERSION,
            "instanceGroupUrls": [
                f"https://www.googleapis.com/compute/v1/projects/{project}/zones/{self.zone}/instanceGroupManagers/{group}"
            ],
            "status": self.status,
            "management": {"autoUpgrade": True, "autoRepair": True},
            "podIpv4CidrSize": 24,
            "upgradeSettings": {"maxSurge": 1, "strategy": "SURGE"},
            "etag": f"{self.pool_hash}-{len(self.nodes)}",
        }
        if self.autoscaling:
            body["autoscaling"] = self.autoscaling
        if self.placement_policy:
            body["placementPolicy"] = self.placement_policy
        if self.status_message:
            body["statusMessage"] = self.status_message
        if self.conditions:
            body["conditions"] = self.conditions
        return body
