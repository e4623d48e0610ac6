"""Istio's Gateway API controller in the twin (``istio.io/gateway-controller``).

- GatewayClasses handled by Istio get ``Accepted``.
- Each Gateway of such a class gets its deployed proxy, as Istio's automated deployment makes it:
  Deployment and LoadBalancer Service ``<gateway>-istio`` (pods labelled
  ``gateway.networking.k8s.io/gateway-name=<gateway>``), then a status with ``Accepted``,
  ``Programmed`` (once the proxy is ready and an address is assigned), listener status and
  ``addresses``.
- HTTPRoutes attached to such a Gateway get ``status.parents`` with ``Accepted`` and ``ResolvedRefs``
  (False with ``BackendNotFound`` when a backend Service or InferencePool does not exist), and the
  InferencePools they route to get their parent status.

The address: the twin's gateway listens on 127.0.0.1 with a port, while Gateway API addresses carry
no port and the guide does ``curl http://$GATEWAY_IP/<ns>/<svc>/...`` with ``GATEWAY_IP`` read from
``.status.addresses[0].value``. So the address is ``{"type": "twin.rhaii.io/HostPort", "value":
"127.0.0.1:<port>"}``: a domain-prefixed, implementation-specific address type (allowed by the
Gateway API schema), whose value makes the guide's command work unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any
from urllib.parse import urlsplit

from rhaii_nb.twin.controllers._kube import Kube, now_rfc3339
from rhaii_nb.twin.errors import ApiError

log = logging.getLogger(__name__)

MANAGER = "istio.io/gateway-controller"
CONTROLLER_NAME = "istio.io/gateway-controller"
GW_GROUP = "gateway.networking.k8s.io"
ADDRESS_TYPE = "twin.rhaii.io/HostPort"
PROXY_IMAGE = "registry.redhat.io/openshift-service-mesh/istio-proxyv2-rhel9:1.27.3"
RESYNC_S = 10.0
_POOL_GROUPS = {"inference.networking.x-k8s.io": "v1alpha2", "inference.networking.k8s.io": "v1"}


def gateway_address(ctx: Any) -> str | None:
    """``host:port`` of the twin's gateway server, when it runs."""
    url = (ctx.endpoints or {}).get("gateway")
    if not url:
        return None
    parts = urlsplit(url)
    return parts.netloc or None


def _condition(kind: str, ok: bool, reason: str, message: str, generation: int) -> dict[str, Any]:
    return {
        "type": kind,
        "status": "True" if ok else "False",
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": now_rfc3339(),
    }


def _keep_times(new: list[dict[str, Any]], old: list[dict[str, Any]]) -> list[dict[str, Any]]:
    previous = {c.get("type"): c for c in old or []}
    out = []
    for condition in new:
        before = previous.get(condition["type"])
        if before is not None and before.get("status") == condition["status"]:
            condition = {**condition, "lastTransitionTime": before.get("lastTransitionTime")}
        out.append(condition)
    return out


def _strip_times(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_times(v) for k, v in value.items() if k != "lastTransitionTime"}
    if isinstance(value, list):
        return [_strip_times(v) for v in value]
    return value


class GatewayController:
    """Reconciles Istio GatewayClasses, Gateways, their HTTPRoutes and InferencePools."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.kube = Kube(ctx.store)
        self._wake = asyncio.Event()

    def on_write(self, event: Any, rt: Any) -> None:
        """Store callback: anything gateway-related wakes the loop."""
        if rt.group in (GW_GROUP, *_POOL_GROUPS) or rt.plural in ("customresourcedefinitions", "services"):
            self._wake.set()
        elif rt.group == "apps" and rt.plural == "deployments":
            labels = ((event.object or {}).get("metadata") or {}).get("labels") or {}
            if "gateway.networking.k8s.io/gateway-name" in labels:
                self._wake.set()

    # --- classes and gateways --------------------------------------------------------------------

    def istio_classes(self) -> set[str]:
        """Names of the GatewayClasses Istio handles (their status set to Accepted)."""
        names = set()
        for gc in self.kube.list("gatewayclasses", group=GW_GROUP):
            if gc.get("spec", {}).get("controllerName") != CONTROLLER_NAME:
                continue
            name = gc["metadata"]["name"]
            names.add(name)
            generation = gc["metadata"].get("generation", 1)
            wanted = [_condition("Accepted", True, "Accepted", "Handled by Istio controller", generation)]
            old = (gc.get("status") or {}).get("conditions") or []
            if _strip_times(wanted) != _strip_times(old):
                self.kube.patch_status(
                    "gatewayclasses",
                    name,
                    {"conditions": _keep_times(wanted, old)},
                    group=GW_GROUP,
                    manager=MANAGER,
                )
        return names

    def ensure_proxy(self, gateway: dict[str, Any]) -> dict[str, Any] | None:
        """The gateway's Deployment and Service ``<name>-istio``; returns the Deployment."""
        meta = gateway["metadata"]
        name, namespace = meta["name"], meta["namespace"]
        proxy = f"{name}-istio"
        infra = ((gateway.get("spec") or {}).get("infrastructure") or {}).get("labels") or {}
        labels = {
            **infra,
            "gateway.istio.io/managed": "istio.io-gateway-controller",
            "gateway.networking.k8s.io/gateway-name": name,
            "istio.io/gateway-name": name,
        }
        owner = {
            "apiVersion": f"{GW_GROUP}/v1",
            "kind": "Gateway",
            "name": name,
            "uid": meta["uid"],
            "controller": True,
        }
        ports = [{"name": "status-port", "port": 15021, "protocol": "TCP", "targetPort": 15021}]
        for listener in (gateway.get("spec") or {}).get("listeners") or []:
            ports.append(
                {
                    "name": f"{listener.get('protocol', 'http').lower()}",
                    "port": listener["port"],
                    "protocol": "TCP",
                }
            )
        service = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": proxy, "namespace": namespace, "labels": labels, "ownerReferences": [owner]},
            "spec": {
                "type": "LoadBalancer",
                "selector": {"gateway.networking.k8s.io/gateway-name": name},
                "ports": ports,
            },
        }
        deployment = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": proxy, "namespace": namespace, "labels": labels, "ownerReferences": [owner]},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"gateway.networking.k8s.io/gateway-name": name}},
                "template": {
                    "metadata": {
                        "labels": {
                            **labels,
                            "sidecar.istio.io/inject": "false",
                            "service.istio.io/canonical-name": proxy,
                        },
                        "annotations": {"inject.istio.io/templates": "gateway"},
                    },
                    "spec": {
                        "serviceAccountName": proxy,
                        "containers": [
                            {
                                "name": "istio-proxy",
                                "image": PROXY_IMAGE,
                                "args": ["proxy", "router", "--domain", f"{namespace}.svc.cluster.local"],
                                "ports": [{"containerPort": 15021, "name": "status-port", "protocol": "TCP"}],
                                "readinessProbe": {
                                    "httpGet": {"path": "/healthz/ready", "port": 15021},
                                    "periodSeconds": 15,
                                    "initialDelaySeconds": 1,
                                },
                                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                            }
                        ],
                    },
                },
            },
        }
        account = {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": proxy, "namespace": namespace, "labels": labels, "ownerReferences": [owner]},
        }
        self.kube.apply(account, MANAGER)
        self.kube.apply(service, MANAGER)
        applied = self.kube.apply(deployment, MANAGER)
        address = gateway_address(self.ctx)
        current = self.kube.get("services", proxy, namespace) or {}
        if address and not ((current.get("status") or {}).get("loadBalancer") or {}).get("ingress"):
            host = address.rsplit(":", 1)[0]
            self.kube.patch_status(
                "services",
                proxy,
                {"loadBalancer": {"ingress": [{"ip": host, "ipMode": "VIP"}]}},
                namespace,
                manager=MANAGER,
            )
        return applied

    def routes_for(self, gateway: dict[str, Any]) -> list[dict[str, Any]]:
        """HTTPRoutes with a parentRef to the gateway."""
        meta = gateway["metadata"]
        attached = []
        for route in self.kube.list("httproutes", group=GW_GROUP):
            for ref in (route.get("spec") or {}).get("parentRefs") or []:
                ns = ref.get("namespace") or route["metadata"]["namespace"]
                if (
                    ref.get("name") == meta["name"]
                    and ns == meta["namespace"]
                    and ref.get("kind", "Gateway") == "Gateway"
                ):
                    attached.append(route)
                    break
        return attached

    def gateway_status(self, gateway: dict[str, Any], deployment: dict[str, Any] | None, routes: int) -> None:
        """Accepted, Programmed, listeners and addresses."""
        meta = gateway["metadata"]
        generation = meta.get("generation", 1)
        address = gateway_address(self.ctx)
        ready = ((deployment or {}).get("status") or {}).get("readyReplicas", 0) >= 1
        service = f"{meta['name']}-istio.{meta['namespace']}.svc.cluster.local"
        if ready and address:
            programmed = _condition(
                "Programmed",
                True,
                "Programmed",
                f"Resource programmed, assigned to service(s) {service}:80",
                generation,
            )
        elif not ready:
            programmed = _condition(
                "Programmed",
                False,
                "Invalid",
                f"Deployment {meta['name']}-istio is not ready yet",
                generation,
            )
        else:
            programmed = _condition(
                "Programmed",
                False,
                "AddressNotAssigned",
                f"Assigned to service(s) {service}:80, but failed to "
                "assign to all requested addresses: address pending for hostname",
                generation,
            )
        conditions = [_condition("Accepted", True, "Accepted", "Resource accepted", generation), programmed]
        listeners = []
        for listener in (gateway.get("spec") or {}).get("listeners") or []:
            listeners.append(
                {
                    "name": listener["name"],
                    "attachedRoutes": routes,
                    "supportedKinds": [
                        {"group": GW_GROUP, "kind": "HTTPRoute"},
                        {"group": GW_GROUP, "kind": "GRPCRoute"},
                    ],
                    "conditions": [
                        _condition("Accepted", True, "Accepted", "No errors found", generation),
                        _condition("NoConflicts", False, "NoConflicts", "No errors found", generation),
                        _condition("Programmed", True, "Programmed", "No errors found", generation),
                        _condition("ResolvedRefs", True, "ResolvedRefs", "No errors found", generation),
                    ],
                }
            )
        old = gateway.get("status") or {}
        wanted: dict[str, Any] = {"conditions": conditions, "listeners": listeners}
        wanted["addresses"] = [{"type": ADDRESS_TYPE, "value": address}] if address and ready else []
        if _strip_times(wanted) == _strip_times({k: old.get(k) for k in wanted}):
            return
        wanted["conditions"] = _keep_times(conditions, old.get("conditions") or [])
        for entry in listeners:
            before = next((x for x in old.get("listeners") or [] if x.get("name") == entry["name"]), {})
            entry["conditions"] = _keep_times(entry["conditions"], before.get("conditions") or [])
        self.kube.patch_status(
            "gateways", meta["name"], wanted, meta["namespace"], group=GW_GROUP, manager=MANAGER
        )

    # --- routes and pools ------------------------------------------------------------------------

    def _backend_exists(self, ref: dict[str, Any], namespace: str) -> bool:
        group, kind = ref.get("group") or "", ref.get("kind") or "Service"
        ns = ref.get("namespace") or namespace
        if kind == "Service" and group == "":
            return self.kube.get("services", ref["name"], ns) is not None
        if kind == "InferencePool" and group in _POOL_GROUPS:
            return (
                self.kube.get("inferencepools", ref["name"], ns, group=group, version=_POOL_GROUPS[group])
                is not None
            )
        return False

    def route_status(self, route: dict[str, Any], gateway: dict[str, Any]) -> None:
        """The route's parent status for this gateway."""
        meta = route["metadata"]
        generation = meta.get("generation", 1)
        missing = []
        for rule in (route.get("spec") or {}).get("rules") or []:
            for ref in rule.get("backendRefs") or []:
                if not self._backend_exists(ref, meta["namespace"]):
                    where = ref.get("namespace") or meta["namespace"]
                    missing.append(f"{ref.get('kind', 'Service')}/{where}/{ref['name']}")
        resolved = (
            _condition("ResolvedRefs", True, "ResolvedRefs", "All references resolved", generation)
            if not missing
            else _condition(
                "ResolvedRefs",
                False,
                "BackendNotFound",
                f"backend({', '.join(missing)}) not found",
                generation,
            )
        )
        parent_ref = {
            "group": GW_GROUP,
            "kind": "Gateway",
            "name": gateway["metadata"]["name"],
            "namespace": gateway["metadata"]["namespace"],
        }
        accepted = _condition("Accepted", True, "Accepted", "Route was valid", generation)
        old_parents = (route.get("status") or {}).get("parents") or []
        others = [
            p
            for p in old_parents
            if p.get("parentRef") != parent_ref or p.get("controllerName") != CONTROLLER_NAME
        ]
        before = next((p for p in old_parents if p not in others), {})
        entry = {
            "parentRef": parent_ref,
            "controllerName": CONTROLLER_NAME,
            "conditions": _keep_times([accepted, resolved], before.get("conditions") or []),
        }
        if _strip_times(before) == _strip_times(entry):
            return
        self.kube.patch_status(
            "httproutes",
            meta["name"],
            {"parents": [*others, entry]},
            meta["namespace"],
            group=GW_GROUP,
            manager=MANAGER,
        )
        for rule in (route.get("spec") or {}).get("rules") or []:
            for ref in rule.get("backendRefs") or []:
                if ref.get("kind") == "InferencePool" and ref.get("group") in _POOL_GROUPS:
                    self.pool_status(ref, meta["namespace"], parent_ref)

    def pool_status(self, ref: dict[str, Any], namespace: str, parent_ref: dict[str, Any]) -> None:
        """An InferencePool routed to by the gateway: parent Accepted and ResolvedRefs."""
        group = ref["group"]
        version = _POOL_GROUPS[group]
        pool = self.kube.get("inferencepools", ref["name"], namespace, group=group, version=version)
        if pool is None:
            return
        generation = pool["metadata"].get("generation", 1)
        conditions = [
            _condition(
                "Accepted",
                True,
                "Accepted",
                "Referenced by an HTTPRoute accepted by the parentRef Gateway",
                generation,
            ),
            _condition(
                "ResolvedRefs",
                True,
                "ResolvedRefs",
                "Referenced ExtensionRef resolved successfully",
                generation,
            ),
        ]
        key = "parent" if version == "v1alpha2" else "parents"
        old = (pool.get("status") or {}).get(key) or []
        before = next((p for p in old if p.get("parentRef", {}).get("name") == parent_ref["name"]), {})
        entry = {
            "parentRef": parent_ref,
            "conditions": _keep_times(conditions, before.get("conditions") or []),
        }
        if version == "v1":
            entry["controllerName"] = CONTROLLER_NAME
        if _strip_times(before) == _strip_times(entry):
            return
        others = [p for p in old if p is not before]
        self.kube.patch_status(
            "inferencepools",
            ref["name"],
            {key: [*others, entry]},
            namespace,
            group=group,
            version=version,
            manager=MANAGER,
        )

    # --- loop ------------------------------------------------------------------------------------

    def reconcile(self) -> None:
        """One pass over every Istio gateway."""
        if self.kube.rt("gateways", GW_GROUP) is None:
            return
        classes = self.istio_classes()
        for gateway in self.kube.list("gateways", group=GW_GROUP):
            if (gateway.get("spec") or {}).get("gatewayClassName") not in classes:
                continue
            if gateway["metadata"].get("deletionTimestamp"):
                continue
            deployment = self.ensure_proxy(gateway)
            routes = self.routes_for(gateway)
            self.gateway_status(gateway, deployment, len(routes))
            for route in routes:
                self.route_status(route, gateway)

    async def run(self) -> None:
        """Reconcile on every relevant write and every ``RESYNC_S`` seconds."""
        self.kube.subscribe(self.on_write)
        while True:
            self._wake.clear()
            try:
                self.reconcile()
            except ApiError as exc:
                log.warning("gateway reconcile: %s", exc.message)
                asyncio.get_running_loop().call_later(0.5, self._wake.set)
            except Exception:
                log.exception("gateway reconcile failed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(RESYNC_S):
                    await self._wake.wait()
            await asyncio.sleep(0)


async def run(ctx: Any) -> None:
    """Controller entry point (started by the twin daemon)."""
    await GatewayController(ctx).run()
