"""TPU v6e quota of the twin's project, served as the Cloud Quotas API serves it.

GKE TPU node pools consume Compute Engine quota counted in TPU chips per region; the Cloud Quotas
API (``cloudquotas.googleapis.com`` v1) lists it among ``compute.googleapis.com``'s ``quotaInfos``
with dimensions ``region`` and ``tpu_family`` (``CT6E`` for v6e). It gives limits, not usage.

The twin grants 64 chips per region, 8 with the ``quota-short`` scenario, and lets an admin call
set a region's limit (``PUT /twin/v1/tpu-quota``). Node pools never exceed it: nodes that would
go over are not created.
"""

from __future__ import annotations

from typing import Any

from rhaii_nb.gcp_catalog import load_catalog
from rhaii_nb.twin.gke.errors import not_found

DEFAULT_TPU_CHIPS_PER_REGION = 64
QUOTA_SHORT_CHIPS = 8
QUOTA_SHORT_SCENARIO = "quota-short"
COMPUTE_SERVICE = "compute.googleapis.com"
CPUS_QUOTA_ID = "CPUS-per-project-region"
DEFAULT_CPUS_PER_REGION = 2400


class TpuQuota:
    """TPU v6e chip limits per region (limits only: usage is the twin's node pools)."""

    def __init__(self, ctx: Any) -> None:
        self._ctx = ctx
        self.overrides: dict[str, int] = {}

    def limit(self, region: str) -> int:
        """Chips granted in ``region``: an explicit override, else 8 under ``quota-short``, else 64."""
        if region in self.overrides:
            return self.overrides[region]
        if self._ctx.scenario(QUOTA_SHORT_SCENARIO):
            return QUOTA_SHORT_CHIPS
        return DEFAULT_TPU_CHIPS_PER_REGION

    def set_limit(self, region: str, chips: int) -> None:
        """Override a region's limit (ValueError for an unknown region or a negative value)."""
        catalog = load_catalog()
        if region not in catalog.regions:
            raise ValueError(f"unknown region {region!r}; known: {', '.join(sorted(catalog.regions))}")
        if chips < 0:
            raise ValueError(f"a quota cannot be negative (got {chips})")
        self.overrides[region] = chips

    def tpu_regions(self) -> list[str]:
        """Regions with at least one TPU v6e zone."""
        return sorted({zone.rsplit("-", 1)[0] for zone in load_catalog().zones_with_tpu_v6e})

    def quota_infos(self, project: str) -> list[dict[str, Any]]:
        """``compute.googleapis.com`` quotaInfos: the TPU v6e chips quota and the regional CPU quota."""
        return [self._tpu_info(project), self._cpus_info(project)]

    def quota_info(self, project: str, service: str, quota_id: str) -> dict[str, Any]:
        """One quotaInfo by id; 404 as Cloud Quotas words it otherwise."""
        if service == COMPUTE_SERVICE:
            for info in self.quota_infos(project):
                if info["quotaId"] == quota_id:
                    return info
        name = f"projects/{project}/locations/global/services/{service}/quotaInfos/{quota_id}"
        raise not_found(f"QuotaInfo {name} not found.")

    def _name(self, project: str, quota_id: str) -> str:
        return f"projects/{project}/locations/global/services/{COMPUTE_SERVICE}/quotaInfos/{quota_id}"

    def _tpu_info(self, project: str) -> dict[str, Any]:
        catalog = load_catalog()
        family = catalog.tpu_quota_family
        return {
            "name": self._name(project, catalog.tpu_quota_id),
            "quotaId": catalog.tpu_quota_id,
            "metric": catalog.tpu_quota_metric,
            "service": COMPUTE_SERVICE,
            "isPrecise": True,
            "containerType": "PROJECT",
            "dimensions": ["region", "tpu_family"],
            "metricDisplayName": "TPUs per TPU family",
            "quotaDisplayName": "TPUs per TPU family per project per region",
            "metricUnit": "1",
            "quotaIncreaseEligibility": {"isEligible": True},
            "isConcurrent": False,
            "dimensionsInfos": [
                {
                    "dimensions": {"region": region, "tpu_family": family},
                    "details": {"value": str(self.limit(region))},
                    "applicableLocations": [region],
                }
                for region in self.tpu_regions()
            ],
        }

    def _cpus_info(self, project: str) -> dict[str, Any]:
        regions = sorted(load_catalog().regions)
        return {
            "name": self._name(project, CPUS_QUOTA_ID),
            "quotaId": CPUS_QUOTA_ID,
            "metric": "compute.googleapis.com/cpus",
            "service": COMPUTE_SERVICE,
            "isPrecise": True,
            "containerType": "PROJECT",
            "dimensions": ["region"],
            "metricDisplayName": "CPUs",
            "quotaDisplayName": "CPUs per project per region",
            "metricUnit": "1",
            "quotaIncreaseEligibility": {"isEligible": True},
            "isConcurrent": False,
            "dimensionsInfos": [
                {
                    "dimensions": {"region": region},
                    "details": {"value": str(DEFAULT_CPUS_PER_REGION)},
                    "applicableLocations": [region],
                }
                for region in regions
            ],
        }
