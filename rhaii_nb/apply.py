"""Server-side apply of manifests with one field manager, reporting what changed.

Every object — namespaced or not, core kinds and custom resources alike — goes through the
``kubernetes`` DynamicClient's server-side apply (``PATCH`` with ``application/apply-patch+yaml``)
under the field manager ``rhaii-nb``; ``kubectl apply --server-side --field-manager=rhaii-nb`` on
the same files is equivalent. Each object's outcome is ``created``, ``configured`` or ``unchanged``
(the resourceVersion before and after), or ``failed`` with the API's reason. Conflicts with another
field manager are reported, not forced, unless ``force=True``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from rhaii_nb.display import show_table
from rhaii_nb.redact import redact

FIELD_MANAGER = "rhaii-nb"
# API groups whose kinds the operators phase installs (their CRDs), and where to find that phase.
OPERATOR_GROUPS = {
    "serving.kserve.io": "KServe",
    "networking.istio.io": "Istio (Red Hat OpenShift Service Mesh)",
    "gateway.networking.k8s.io": "the Gateway API (installed with Istio)",
    "inference.networking.k8s.io": "the Gateway API Inference Extension (installed with Istio)",
    "inference.networking.x-k8s.io": "the Gateway API Inference Extension (installed with Istio)",
    "leaderworkerset.x-k8s.io": "LeaderWorkerSet",
    "cert-manager.io": "cert-manager",
}
OPERATORS_PHASE = "03_operators"


@dataclass
class AppliedObject:
    """What happened to one object."""

    kind: str
    namespace: str
    name: str
    outcome: str  # created | configured | unchanged | failed
    resource_version: str = ""
    message: str = ""


@dataclass
class ApplyResult:
    """Per-object outcomes of one apply, in order."""

    objects: list[AppliedObject] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every object applied."""
        return all(o.outcome != "failed" for o in self.objects)

    @property
    def failed(self) -> list[AppliedObject]:
        """The objects that did not apply."""
        return [o for o in self.objects if o.outcome == "failed"]

    def outcomes(self) -> dict[str, str]:
        """``Kind/namespace/name`` (or ``Kind/name``) → outcome."""
        return {_ref(o.kind, o.namespace, o.name): o.outcome for o in self.objects}

    def counts(self) -> dict[str, int]:
        """How many objects had each outcome."""
        counts: dict[str, int] = {}
        for o in self.objects:
            counts[o.outcome] = counts.get(o.outcome, 0) + 1
        return counts

    @property
    def df(self) -> pd.DataFrame:
        """A table for display: kind, namespace, name, outcome, message."""
        rows = [
            {
                "kind": o.kind,
                "namespace": o.namespace,
                "name": o.name,
                "outcome": o.outcome,
                "message": o.message,
            }
            for o in self.objects
        ]
        return pd.DataFrame(rows, columns=["kind", "namespace", "name", "outcome", "message"])

    def _repr_html_(self) -> str:
        return self.df.to_html(index=False)


class ApplyFailed(RuntimeError):
    """Some objects did not apply; ``result`` has every object's outcome."""

    def __init__(self, result: ApplyResult) -> None:
        self.result = result
        lines = "\n".join(f"- {_ref(o.kind, o.namespace, o.name)}: {o.message}" for o in result.failed)
        super().__init__(f"{len(result.failed)} of {len(result.objects)} objects failed to apply:\n{lines}")


def dynamic_client(client: Any) -> Any:
    """A DynamicClient from a Session (``.dynamic``), a DynamicClient, or a kubernetes ApiClient."""
    dynamic = getattr(client, "dynamic", None)
    if dynamic is not None and not callable(dynamic):
        return dynamic
    if hasattr(client, "resources") and hasattr(client, "server_side_apply"):
        return client
    from kubernetes.dynamic import DynamicClient

    return DynamicClient(client)


def apply_objects(
    client: Any,
    objects: Iterable[Mapping[str, Any]],
    *,
    field_manager: str = FIELD_MANAGER,
    force: bool = False,
    dry_run: bool = False,
    show: bool = True,
    raise_on_failure: bool = True,
) -> ApplyResult:
    """Server-side apply each object in order, show the outcome table; ``ApplyFailed`` if any failed."""
    dyn = dynamic_client(client)
    result = ApplyResult([_apply_one(dyn, obj, field_manager, force, dry_run) for obj in objects])
    if show:
        counts = ", ".join(f"{n} {outcome}" for outcome, n in result.counts().items())
        show_table(result.df, f"Applied with field manager {field_manager}: {counts}")
    if raise_on_failure and not result.ok:
        raise ApplyFailed(result)
    return result


def _apply_one(
    dyn: Any, obj: Mapping[str, Any], field_manager: str, force: bool, dry_run: bool
) -> AppliedObject:
    from kubernetes.client.exceptions import ApiException
    from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError

    api_version, kind = str(obj.get("apiVersion")), str(obj.get("kind"))
    meta = obj.get("metadata") or {}
    name, namespace = str(meta.get("name") or ""), str(meta.get("namespace") or "")
    try:
        resource = dyn.resources.get(api_version=api_version, kind=kind)
    except ResourceNotFoundError:
        return AppliedObject(kind, namespace, name, "failed", message=missing_kind_message(api_version, kind))
    if resource.namespaced and not namespace:
        return AppliedObject(kind, "", name, "failed", message="namespaced kind without metadata.namespace")
    if not resource.namespaced:
        namespace = ""
    body = dict(obj)
    if not resource.namespaced and "namespace" in meta:
        body["metadata"] = {k: v for k, v in meta.items() if k != "namespace"}
    ns_arg = namespace or None
    try:
        before = dyn.get(resource, name=name, namespace=ns_arg).metadata.resourceVersion
    except NotFoundError:
        before = None
    except ApiException as exc:
        return AppliedObject(kind, namespace, name, "failed", message=_api_message(exc))
    try:
        applied = dyn.server_side_apply(
            resource,
            body=body,
            name=name,
            namespace=ns_arg,
            field_manager=field_manager,
            force_conflicts=True if force else None,
            dry_run="All" if dry_run else None,
        )
    except ApiException as exc:
        return AppliedObject(kind, namespace, name, "failed", message=_api_message(exc))
    after = str(applied.metadata.resourceVersion or "")
    if before is None:
        outcome = "created"
    elif str(before) == after:
        outcome = "unchanged"
    else:
        outcome = "configured"
    if dry_run:
        outcome += " (dry run)"
    return AppliedObject(kind, namespace, name, outcome, resource_version=after)


def missing_kind_message(api_version: str, kind: str) -> str:
    """Why a kind is unknown to the cluster and what to do."""
    group = api_version.split("/", 1)[0] if "/" in api_version else ""
    if group in OPERATOR_GROUPS:
        return (
            f"the cluster has no {kind} ({api_version}) API yet: its CRD comes with "
            f"{OPERATOR_GROUPS[group]}, installed by the operators phase ({OPERATORS_PHASE}); run that first"
        )
    return f"the cluster has no {kind} ({api_version}) API; check apiVersion and kind"


def _api_message(exc: Any) -> str:
    import json

    reason, message = str(getattr(exc, "reason", "") or ""), ""
    body = getattr(exc, "body", None)
    if body:
        try:
            status = json.loads(body)
            message = str(status.get("message") or "")
            reason = str(status.get("reason") or reason)
        except (ValueError, AttributeError):
            message = str(body)[:500]
    code = getattr(exc, "status", "")
    if code == 409:
        message += " (another field manager owns these fields; fix the conflict or apply with force=True)"
    return redact(f"{code} {reason}: {message}".strip())


def _ref(kind: str, namespace: str, name: str) -> str:
    return "/".join(p for p in (kind, namespace, name) if p)
