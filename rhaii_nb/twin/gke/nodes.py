"""Node objects of GKE node pools: built with GKE's labels, taints and capacity, written to the store.

A TPU v6e node looks as GKE makes it: labels ``cloud.google.com/gke-tpu-accelerator=tpu-v6e-slice``,
``cloud.google.com/gke-tpu-topology``, ``cloud.google.com/gke-nodepool``, the machine type and
family, zone/region and hostname; the taint ``google.com/tpu=present:NoSchedule``; capacity and
allocatable ``google.com/tpu`` = chips per node. A node is registered NotReady (with the
``node.kubernetes.io/not-ready`` taint the node lifecycle controller adds) and turns Ready once its
kubelet is up. Allocatable CPU and memory follow GKE's documented node reservations.
"""

from __future__ import annotations

import logging
import secrets
import string
from typing import Any

from rhaii_nb.gcp_catalog import MachineType

log = logging.getLogger(__name__)

FIELD_MANAGER = "gke-node-controller"
KUBELET_VERSION = "v1.31.6-gke.1064001"
TPU_RESOURCE = "google.com/tpu"
TPU_TAINT = {"key": TPU_RESOURCE, "value": "present", "effect": "NoSchedule"}
NOT_READY_TAINT_KEY = "node.kubernetes.io/not-ready"
MAX_NAME = 63
_SUFFIX_ALPHABET = string.ascii_lowercase + string.digits


def node_name(cluster: str, pool: str, pool_hash: str) -> str:
    """``gke-<cluster>-<pool>-<8hex>-<4char>``, cluster and pool names shortened to fit 63 characters."""
    suffix = "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(4))
    room = MAX_NAME - len("gke---") - len(pool_hash) - 1 - len(suffix)
    pool_part = pool[: max(room // 2, room - len(cluster))]
    cluster_part = cluster[: room - len(pool_part)]
    return f"gke-{cluster_part.rstrip('-')}-{pool_part.rstrip('-')}-{pool_hash}-{suffix}"


def _reserved_cpu_millis(vcpus: int) -> int:
    """GKE CPU reservation: 6% of the first core, 1% of the next, 0.5% of the next 2, 0.25% above 4."""
    cores = [(1, 60), (1, 10), (2, 5), (max(vcpus - 4, 0), 2.5)]
    reserved, left = 0.0, vcpus
    for count, millis_per_core in cores:
        take = min(left, count)
        reserved += take * millis_per_core
        left -= take
    return round(reserved)


def _reserved_memory_mib(memory_gib: float) -> int:
    """GKE memory reservation: 25% of the first 4 GiB, 20% of the next 4, 10% of the next 8, 6% of the
    next 112, 2% above 128 GiB, plus 100 MiB for eviction."""
    bands = [(4, 0.25), (4, 0.20), (8, 0.10), (112, 0.06), (float("inf"), 0.02)]
    reserved, left = 0.0, memory_gib
    for size, share in bands:
        take = min(left, size)
        reserved += take * share
        left -= take
    return round(reserved * 1024) + 100


def capacity(machine: MachineType) -> tuple[dict[str, str], dict[str, str]]:
    """(capacity, allocatable) of a node of ``machine``."""
    memory_ki = round(machine.memory_gib * 1024 * 1024)
    cap = {
        "cpu": str(machine.vcpus),
        "memory": f"{memory_ki}Ki",
        "ephemeral-storage": "98831908Ki",
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
        "pods": "110",
    }
    alloc = {
        "cpu": f"{machine.vcpus * 1000 - _reserved_cpu_millis(machine.vcpus)}m",
        "memory": f"{memory_ki - _reserved_memory_mib(machine.memory_gib) * 1024}Ki",
        "ephemeral-storage": "47060071478",
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
        "pods": "110",
    }
    if machine.chips:
        cap[TPU_RESOURCE] = alloc[TPU_RESOURCE] = str(machine.chips)
    return cap, alloc


def node_labels(
    *,
    name: str,
    pool: str,
    zone: str,
    machine: MachineType,
    topology: str | None,
    spot: bool,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """The labels GKE puts on a node of ``pool`` (plus the pool's own ``config.labels``)."""
    region = zone.rsplit("-", 1)[0]
    labels = {
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/instance-type": machine.name,
        "beta.kubernetes.io/os": "linux",
        "cloud.google.com/gke-boot-disk": "pd-balanced",
        "cloud.google.com/gke-container-runtime": "containerd",
        "cloud.google.com/gke-nodepool": pool,
        "cloud.google.com/gke-os-distribution": "cos",
        "cloud.google.com/gke-provisioning": "spot" if spot else "standard",
        "cloud.google.com/machine-family": machine.family,
        "cloud.google.com/private-node": "false",
        "failure-domain.beta.kubernetes.io/region": region,
        "failure-domain.beta.kubernetes.io/zone": zone,
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "node.kubernetes.io/instance-type": machine.name,
        "topology.gke.io/zone": zone,
        "topology.kubernetes.io/region": region,
        "topology.kubernetes.io/zone": zone,
    }
    if spot:
        labels["cloud.google.com/gke-spot"] = "true"
    if machine.is_tpu:
        labels["cloud.google.com/gke-tpu-accelerator"] = machine.accelerator or ""
        labels["cloud.google.com/gke-tpu-topology"] = topology or machine.topologies[0]
    labels.update(extra or {})
    return labels


def _conditions(ready: bool, now: str) -> list[dict[str, Any]]:
    def condition(kind: str, status: str, reason: str, message: str) -> dict[str, Any]:
        return {
            "type": kind,
            "status": status,
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
            "reason": reason,
            "message": message,
        }

    ready_condition = (
        condition("Ready", "True", "KubeletReady", "kubelet is posting ready status")
        if ready
        else condition(
            "Ready",
            "False",
            "KubeletNotReady",
            "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady "
            "message:Network plugin returns error: cni plugin not initialized",
        )
    )
    return [
        condition("NetworkUnavailable", "False", "RouteCreated", "NodeController create implicit route"),
        condition(
            "MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"
        ),
        condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        ready_condition,
    ]


def build_node(
    *,
    name: str,
    project: str,
    pool: str,
    zone: str,
    machine: MachineType,
    topology: str | None,
    spot: bool,
    internal_ip: str,
    pod_cidr: str,
    now: str,
    labels: dict[str, str] | None = None,
    taints: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """A core/v1 Node as GKE registers it: NotReady, tainted not-ready until its kubelet is up."""
    all_taints = [dict(t) for t in taints or []]
    if machine.is_tpu and not any(t.get("key") == TPU_RESOURCE for t in all_taints):
        all_taints.append(dict(TPU_TAINT))
    all_taints.append({"key": NOT_READY_TAINT_KEY, "effect": "NoSchedule", "timeAdded": now})
    cap, alloc = capacity(machine)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": node_labels(
                name=name, pool=pool, zone=zone, machine=machine, topology=topology, spot=spot, extra=labels
            ),
            "annotations": {
                "container.googleapis.com/instance_id": str(int(secrets.token_hex(8), 16) % 10**19),
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
        },
        "spec": {
            "podCIDR": pod_cidr,
            "podCIDRs": [pod_cidr],
            "providerID": f"gce://{project}/{zone}/{name}",
            "taints": all_taints,
        },
        "status": {
            "capacity": cap,
            "allocatable": alloc,
            "conditions": _conditions(False, now),
            "addresses": [
                {"type": "InternalIP", "address": internal_ip},
                {"type": "Hostname", "address": name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "architecture": "amd64",
                "bootID": secrets.token_hex(16),
                "containerRuntimeVersion": "containerd://1.7.24",
                "kernelVersion": "6.6.72+",
                "kubeProxyVersion": KUBELET_VERSION,
                "kubeletVersion": KUBELET_VERSION,
                "machineID": secrets.token_hex(16),
                "operatingSystem": "linux",
                "osImage": "Container-Optimized OS from Google",
                "systemUUID": secrets.token_hex(16),
            },
        },
    }


def ready_patch(node: dict[str, Any], now: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(spec patch, status patch) turning a registered node Ready: not-ready taint gone, Ready=True."""
    taints = [t for t in node.get("spec", {}).get("taints", []) if t.get("key") != NOT_READY_TAINT_KEY]
    return {"spec": {"taints": taints}}, {"status": {"conditions": _conditions(True, now)}}
