"""KServe's LLMInferenceService controller in the twin.

For every ``serving.kserve.io/v1alpha1`` LLMInferenceService it server-side applies the children
``rhaii_nb.twin.llmisvc.children`` renders (field manager ``llmisvc-controller``, so a re-reconcile
changes nothing), issues the self-signed TLS secret once from the twin CA, and writes the status:
conditions, ``observedGeneration``, ``url`` and ``addresses``. It does nothing until the CRD is
registered (``operators.install``), exactly like a cluster without KServe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from rhaii_nb import names
from rhaii_nb.twin.controllers._kube import Kube
from rhaii_nb.twin.errors import ApiError
from rhaii_nb.twin.llmisvc import children, status

log = logging.getLogger(__name__)

MANAGER = "llmisvc-controller"
GROUP, VERSION, PLURAL = "serving.kserve.io", "v1alpha1", "llminferenceservices"
RESYNC_S = 10.0  # wall seconds between full resyncs (drift repair)
_WATCHED = {
    ("apps", "deployments"),
    ("", "services"),
    ("", "secrets"),
    ("gateway.networking.k8s.io", "httproutes"),
    ("inference.networking.x-k8s.io", "inferencepools"),
    ("inference.networking.k8s.io", "inferencepools"),
}


class LLMISvcController:
    """Reconciles LLMInferenceServices into their children and status."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.kube = Kube(ctx.store)
        self._dirty: set[tuple[str, str]] = set()
        self._all = True
        self._wake = asyncio.Event()
        # (namespace, name) → (uid, generation) of the last spec whose children were applied.
        self._applied: dict[tuple[str, str], tuple[str, int]] = {}

    def on_write(self, event: Any, rt: Any) -> None:
        """Store callback: queue the services a write concerns."""
        obj = event.object or {}
        meta = obj.get("metadata") or {}
        if rt.group == GROUP and rt.plural == PLURAL:
            self._dirty.add((meta.get("namespace", ""), meta.get("name", "")))
        elif (rt.group, rt.plural) in _WATCHED:
            for owner in meta.get("ownerReferences") or []:
                if owner.get("kind") == children.KIND and owner.get("apiVersion", "").startswith(GROUP):
                    self._dirty.add((meta.get("namespace", ""), owner.get("name", "")))
        elif rt.plural in ("gateways", "customresourcedefinitions"):
            self._all = True
        else:
            return
        self._wake.set()

    def capabilities(self) -> children.Capabilities:
        """Which optional kinds the cluster serves now."""
        return children.Capabilities(
            pool_x_k8s=self.kube.rt("inferencepools", "inference.networking.x-k8s.io", "v1alpha2")
            is not None,
            pool_v1=self.kube.rt("inferencepools", "inference.networking.k8s.io", "v1") is not None,
            inference_model=self.kube.rt("inferencemodels", "inference.networking.x-k8s.io", "v1alpha2")
            is not None,
            httproute=self.kube.rt("httproutes", "gateway.networking.k8s.io", "v1") is not None,
        )

    def reconcile(self, namespace: str, name: str, *, force_apply: bool = False) -> None:
        """Bring one service's children and status up to date."""
        svc = self.kube.get(PLURAL, name, namespace, group=GROUP, version=VERSION)
        key = (namespace, name)
        if svc is None or (svc.get("metadata") or {}).get("deletionTimestamp"):
            self._applied.pop(key, None)
            return
        meta = svc["metadata"]
        caps = self.capabilities()
        applied = (meta["uid"], meta.get("generation", 1))
        if force_apply or self._applied.get(key) != applied:
            for child in children.render(svc, caps):
                self.kube.apply(child, MANAGER)
            self._applied[key] = applied
        self.ensure_tls_secret(svc)
        self.write_status(svc, caps)

    def ensure_tls_secret(self, svc: dict[str, Any]) -> None:
        """Issue ``<name>-kserve-self-signed-certs`` once (a real certificate from the twin CA)."""
        meta = svc["metadata"]
        if self.kube.get("secrets", names.tls_secret(meta["name"]), meta["namespace"]) is not None:
            return
        if self.ctx.pki is None:
            return
        cert, key = self.ctx.pki.issue(children.tls_dns_names(meta["name"], meta["namespace"]))
        self.kube.create(children.tls_secret(svc, cert, key), MANAGER)

    def observe(self, svc: dict[str, Any]) -> status.Observed:
        """Read back the children that feed the conditions."""
        meta, spec = svc["metadata"], svc.get("spec") or {}
        name, namespace = meta["name"], meta["namespace"]
        router = spec.get("router") or {}
        scheduler = router.get("scheduler")
        route = router.get("route")
        gateway_ns, gateway_name = children.gateway_ref(spec)
        gw_group = "gateway.networking.k8s.io"
        pool_name = names.inference_pool(name)
        pool = self.kube.get(
            "inferencepools", pool_name, namespace, group="inference.networking.x-k8s.io", version="v1alpha2"
        ) or self.kube.get("inferencepools", pool_name, namespace, group="inference.networking.k8s.io")
        return status.Observed(
            workload=self.kube.get("deployments", names.workload_deployment(name), namespace, group="apps"),
            scheduler=self.kube.get("deployments", names.scheduler_deployment(name), namespace, group="apps"),
            pool=pool,
            route=self.kube.get("httproutes", names.http_route(name), namespace, group=gw_group),
            gateway=self.kube.get("gateways", gateway_name, gateway_ns, group=gw_group),
            gateway_key=f"{gateway_ns}/{gateway_name}",
            managed_scheduler=isinstance(scheduler, dict) and not (scheduler.get("pool") or {}).get("ref"),
            managed_route=isinstance(route, dict),
        )

    def write_status(self, svc: dict[str, Any], caps: children.Capabilities) -> None:
        """Patch the status subresource when anything changed."""
        meta = svc["metadata"]
        observed = self.observe(svc)
        old = svc.get("status") or {}
        new_conditions = status.conditions(observed)
        url = (
            status.gateway_url(observed.gateway, meta["namespace"], meta["name"])
            if observed.managed_route
            else None
        )
        if url is None and not observed.managed_route:
            url = f"https://{names.workload_service_fqdn(meta['name'], meta['namespace'])}"
        wanted: dict[str, Any] = {"observedGeneration": meta.get("generation", 1)}
        if url:
            wanted["url"] = url
            wanted["addresses"] = [{"url": url}]
            wanted["address"] = {"url": url}
        unchanged = status.same_conditions(new_conditions, old.get("conditions") or []) and all(
            old.get(k) == v for k, v in wanted.items()
        )
        if unchanged:
            return
        wanted["conditions"] = status.with_transition_times(new_conditions, old.get("conditions") or [])
        self.kube.patch_status(
            PLURAL, meta["name"], wanted, meta["namespace"], group=GROUP, version=VERSION, manager=MANAGER
        )

    def pending_keys(self) -> set[tuple[str, str]]:
        """The services to reconcile now."""
        if self.kube.rt(PLURAL, GROUP, VERSION) is not None:
            # KServe's webhook comes with its CRD (also after a twin restart from a snapshot).
            from rhaii_nb.twin.operators import ensure_admission

            ensure_admission(self.ctx)
        if self._all:
            self._all = False
            self._dirty.clear()
            return {
                (s["metadata"]["namespace"], s["metadata"]["name"])
                for s in self.kube.list(PLURAL, group=GROUP, version=VERSION)
            }
        keys, self._dirty = self._dirty, set()
        return keys

    async def run(self) -> None:
        """Reconcile on every relevant write, and resync everything periodically."""
        self.kube.subscribe(self.on_write)
        loop = asyncio.get_running_loop()
        next_resync = loop.time() + RESYNC_S
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.05, next_resync - loop.time())):
                    await self._wake.wait()
            self._wake.clear()
            resync = loop.time() >= next_resync
            if resync:
                self._all = True
                next_resync = loop.time() + RESYNC_S
            for namespace, name in sorted(self.pending_keys()):
                try:
                    self.reconcile(namespace, name, force_apply=resync)
                except ApiError as exc:
                    log.warning("reconcile %s/%s: %s", namespace, name, exc.message)
                    self._dirty.add((namespace, name))
                    loop.call_later(0.5, self._wake.set)
                except Exception:
                    log.exception("reconcile %s/%s failed", namespace, name)
            await asyncio.sleep(0)


async def run(ctx: Any) -> None:
    """Controller entry point (started by the twin daemon)."""
    await LLMISvcController(ctx).run()
