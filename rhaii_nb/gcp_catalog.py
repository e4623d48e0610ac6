"""Google Cloud facts shared by params validation and the twin: TPU v6e zones, machine types, regions.

The data lives in ``rhaii_nb/data/gcp_catalog.yaml`` (with its sources); this module only loads it
into small typed records::

    catalog = load_catalog()
    catalog.zones_with_tpu_v6e                 # frozenset of zone names
    catalog.machine_types["ct6e-standard-4t"]  # MachineType(chips=4, topologies=("2x2",), ...)
    catalog.region_of("europe-west4-a")        # "europe-west4"
    catalog.offers("us-west1-a", "ct6e-standard-4t")  # False
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

_ZONE = re.compile(r"^(?P<region>[a-z]+-[a-z]+\d+)-(?P<letter>[a-z])$")


@dataclass(frozen=True)
class MachineType:
    """One Compute Engine machine type: its vCPUs, memory and (for TPU hosts) chips and topologies."""

    name: str
    family: str
    vcpus: int
    memory_gib: float
    chips: int = 0
    topologies: tuple[str, ...] = ()
    accelerator: str | None = None  # GKE node label value, e.g. tpu-v6e-slice

    @property
    def is_tpu(self) -> bool:
        """Whether nodes of this type carry TPU chips."""
        return self.chips > 0


@dataclass(frozen=True)
class Catalog:
    """Zones, regions and machine types, as read from ``gcp_catalog.yaml``."""

    machine_types: dict[str, MachineType]  # TPU v6e machine types only (what a TPU node pool may use)
    cpu_machine_types: dict[str, MachineType]
    regions: dict[str, tuple[str, ...]]  # region → its zones
    zones_with_tpu_v6e: frozenset[str]
    tpu_accelerator: str
    tpu_quota_metric: str
    tpu_quota_id: str
    tpu_quota_family: str

    @property
    def zones(self) -> frozenset[str]:
        """Every known zone."""
        return frozenset(zone for zones in self.regions.values() for zone in zones)

    def region_of(self, zone: str) -> str:
        """Region of a zone (``europe-west4-a`` → ``europe-west4``); ValueError naming the fix otherwise."""
        match = _ZONE.match(zone or "")
        if not match or match["region"] not in self.regions:
            raise ValueError(
                f"{zone!r} is not a Google Cloud zone; use a zone such as europe-west4-a "
                f"(TPU v6e zones: {', '.join(sorted(self.zones_with_tpu_v6e))})"
            )
        return match["region"]

    def machine_type(self, name: str) -> MachineType | None:
        """The machine type called ``name`` (TPU or CPU), or None."""
        return self.machine_types.get(name) or self.cpu_machine_types.get(name)

    def offers(self, zone: str, machine_type: str) -> bool:
        """Whether ``zone`` offers ``machine_type`` (TPU v6e types only in the TPU v6e zones)."""
        if zone not in self.zones:
            return False
        if machine_type in self.machine_types:
            return zone in self.zones_with_tpu_v6e
        return machine_type in self.cpu_machine_types


def _machine(name: str, raw: dict[str, Any], accelerator: str | None) -> MachineType:
    chips = int(raw.get("chips", 0))
    return MachineType(
        name=name,
        family=str(raw["family"]),
        vcpus=int(raw["vcpus"]),
        memory_gib=float(raw["memory_gib"]),
        chips=chips,
        topologies=tuple(raw.get("topologies", ())),
        accelerator=accelerator if chips else None,
    )


@lru_cache(maxsize=1)
def load_catalog() -> Catalog:
    """Load (once) the catalog shipped in ``rhaii_nb/data/gcp_catalog.yaml``."""
    text = resources.files("rhaii_nb").joinpath("data/gcp_catalog.yaml").read_text(encoding="utf-8")
    raw = yaml.safe_load(text)
    tpu = raw["tpu_v6e"]
    regions = {
        region: tuple(f"{region}-{letter}" for letter in letters)
        for region, letters in raw["regions"].items()
    }
    tpu_zones = frozenset(tpu["zones"])
    for zone in tpu_zones:  # a TPU zone is a zone: keep the two lists consistent
        region = zone.rsplit("-", 1)[0]
        if zone not in regions.get(region, ()):
            regions[region] = (*regions.get(region, ()), zone)
    return Catalog(
        machine_types={n: _machine(n, m, tpu["accelerator"]) for n, m in raw["machine_types"].items()},
        cpu_machine_types={n: _machine(n, m, None) for n, m in raw["cpu_machine_types"].items()},
        regions=regions,
        zones_with_tpu_v6e=tpu_zones,
        tpu_accelerator=tpu["accelerator"],
        tpu_quota_metric=tpu["quota_metric"],
        tpu_quota_id=tpu["quota_id"],
        tpu_quota_family=tpu["quota_family"],
    )
