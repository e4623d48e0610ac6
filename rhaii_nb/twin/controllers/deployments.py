"""Deployment → ReplicaSet → Pods, as kube-controller-manager's deployment and replicaset controllers do.

- Deployment: one ReplicaSet per pod template (``<deploy>-<pod-template-hash>``), rolling updates that
  honour ``maxSurge``/``maxUnavailable`` against pod readiness (or Recreate), scaling, the revision
  annotation, old ReplicaSets pruned to ``revisionHistoryLimit``, and a status that ``kubectl rollout
  status`` and ``kubectl wait`` read: replicas / updatedReplicas / readyReplicas / availableReplicas /
  unavailableReplicas / observedGeneration, conditions Available and Progressing (NewReplicaSetCreated,
  ReplicaSetUpdated, NewReplicaSetAvailable, ProgressDeadlineExceeded).
- ReplicaSet: creates ``<rs>-<5 chars>`` pods (which stay Pending until the scheduler and kubelet act),
  deletes surplus ones (unscheduled and not-ready first), replaces deleted pods, and reports status.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import math
import time
from datetime import UTC, datetime
from typing import Any

from rhaii_nb.twin.controllers import KeyQueue, controller_ref, feed, owner_uid
from rhaii_nb.twin.errors import ApiError
from rhaii_nb.twin.store import NAME_SUFFIX_ALPHABET, now_rfc3339

log = logging.getLogger(__name__)

MANAGER = "kube-controller-manager"
HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
# The progress deadline never fires sooner than this many wall seconds, however small the time scale.
MIN_DEADLINE_WALL_S = 10.0


def _fnv1a_32(data: bytes) -> int:
    value = 0x811C9DC5
    for byte in data:
        value ^= byte
        value = (value * 0x01000193) & 0xFFFFFFFF
    return value


def pod_template_hash(template: dict[str, Any], collision_count: int = 0) -> str:
    """The ``pod-template-hash`` of a template: FNV-32a, its decimal digits mapped to the safe alphabet."""
    data = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    if collision_count:
        data += str(collision_count).encode()
    digits = str(_fnv1a_32(data))
    return "".join(NAME_SUFFIX_ALPHABET[ord(c) % len(NAME_SUFFIX_ALPHABET)] for c in digits)


def _without_hash(template: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(template)
    labels = out.get("metadata", {}).get("labels")
    if labels:
        labels.pop(HASH_LABEL, None)
    return out


def resolve_fence(value: Any, replicas: int, round_up: bool) -> int:
    """An int-or-percent (``25%``) against ``replicas``; surge rounds up, unavailable rounds down."""
    if isinstance(value, int):
        return value
    text = str(value or "0").strip()
    if text.endswith("%"):
        raw = float(text[:-1]) * replicas / 100
        return math.ceil(raw) if round_up else math.floor(raw)
    return int(text)


def pod_ready(pod: dict[str, Any]) -> bool:
    """Whether the pod's Ready condition is True."""
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def _active(pod: dict[str, Any]) -> bool:
    return not pod["metadata"].get("deletionTimestamp") and (pod.get("status") or {}).get("phase") not in (
        "Succeeded",
        "Failed",
    )


def _set_condition(
    conditions: list[dict[str, Any]],
    cond_type: str,
    status: str,
    reason: str,
    message: str,
    now: str,
    touch: bool = False,
) -> list[dict[str, Any]]:
    """Set one condition: lastTransitionTime moves when status changes, lastUpdateTime when anything
    changes (or on ``touch``: progress without a new reason)."""
    out = []
    found = False
    for cond in conditions:
        if cond.get("type") != cond_type:
            out.append(cond)
            continue
        found = True
        if (cond.get("status"), cond.get("reason"), cond.get("message")) == (status, reason, message):
            out.append({**cond, "lastUpdateTime": now} if touch else cond)
            continue
        transition = cond.get("lastTransitionTime") if cond.get("status") == status else now
        out.append(
            {
                "type": cond_type,
                "status": status,
                "lastUpdateTime": now,
                "lastTransitionTime": transition or now,
                "reason": reason,
                "message": message,
            }
        )
    if not found:
        out.append(
            {
                "type": cond_type,
                "status": status,
                "lastUpdateTime": now,
                "lastTransitionTime": now,
                "reason": reason,
                "message": message,
            }
        )
    return out


def _condition(conditions: list[dict[str, Any]], cond_type: str) -> dict[str, Any] | None:
    return next((c for c in conditions if c.get("type") == cond_type), None)


def _parse_time(text: str | None) -> float:
    if not text:
        return time.time()
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


class WorkloadControllers:
    """The deployment and replicaset controllers over one store, fed by watches."""

    def __init__(self, ctx: Any):
        self.ctx = ctx
        self.store = ctx.store
        self.deploy_rt = self.store.resource("apps", "v1", "deployments")
        self.rs_rt = self.store.resource("apps", "v1", "replicasets")
        self.pod_rt = self.store.resource("", "v1", "pods")
        self.queue = KeyQueue()

    # ---------------------------------------------------------------- event handlers

    def on_deployment(self, _type: str, obj: dict[str, Any]) -> None:
        """Queue the deployment."""
        self.queue.add(("deploy", obj["metadata"]["namespace"], obj["metadata"]["name"]))

    def on_replicaset(self, _type: str, obj: dict[str, Any]) -> None:
        """Queue the replica set and its owning deployment."""
        meta = obj["metadata"]
        self.queue.add(("rs", meta["namespace"], meta["name"]))
        for ref in meta.get("ownerReferences") or []:
            if ref.get("controller") and ref.get("kind") == "Deployment":
                self.queue.add(("deploy", meta["namespace"], ref["name"]))

    def on_pod(self, _type: str, obj: dict[str, Any]) -> None:
        """Queue the pod's owning replica set."""
        meta = obj["metadata"]
        for ref in meta.get("ownerReferences") or []:
            if ref.get("controller") and ref.get("kind") == "ReplicaSet":
                self.queue.add(("rs", meta["namespace"], ref["name"]))

    async def run(self) -> None:
        """Feed the queue from watches and reconcile keys one at a time, forever."""
        feeders = [
            asyncio.create_task(feed(self.store, self.deploy_rt, self.on_deployment)),
            asyncio.create_task(feed(self.store, self.rs_rt, self.on_replicaset)),
            asyncio.create_task(feed(self.store, self.pod_rt, self.on_pod)),
        ]
        try:
            while True:
                key = await self.queue.get()
                try:
                    self.sync(key)
                except ApiError as exc:
                    if exc.code in (404, 409):
                        asyncio.get_running_loop().call_later(0.05, self.queue.add, key)
                    else:
                        log.warning("sync %s failed: %s", key, exc.message)
                except Exception:
                    log.exception("sync %s failed", key)
                await asyncio.sleep(0)
        finally:
            for task in feeders:
                task.cancel()

    def sync(self, key: tuple[str, str, str]) -> None:
        """Reconcile one key."""
        kind, namespace, name = key
        if kind == "deploy":
            self.sync_deployment(namespace, name)
        else:
            self.sync_replicaset(namespace, name)

    # ---------------------------------------------------------------- helpers

    def _get(self, rt: Any, name: str, namespace: str) -> dict[str, Any] | None:
        try:
            return self.store.get(rt, name, namespace)
        except ApiError as exc:
            if exc.code == 404:
                return None
            raise

    def _event(
        self, obj: dict[str, Any], reason: str, message: str, component: str, type_: str = "Normal"
    ) -> None:
        self.store.record_event(obj, reason, message, type_, source_component=component)

    def _scale_rs(self, deploy: dict[str, Any], rs: dict[str, Any], replicas: int) -> dict[str, Any]:
        before = rs["spec"].get("replicas", 0)
        if before == replicas:
            return rs
        body = copy.deepcopy(rs)
        body["spec"]["replicas"] = replicas
        annotations = body["metadata"].setdefault("annotations", {})
        annotations["deployment.kubernetes.io/desired-replicas"] = str(deploy["spec"].get("replicas", 1))
        updated = self.store.update(self.rs_rt, body, field_manager=MANAGER)
        direction = "up" if replicas > before else "down"
        self._event(
            deploy,
            "ScalingReplicaSet",
            f"Scaled {direction} replica set {rs['metadata']['name']} from {before} to {replicas}",
            "deployment-controller",
        )
        return updated

    # ---------------------------------------------------------------- deployments

    def sync_deployment(self, namespace: str, name: str) -> None:
        """Bring a deployment's replica sets to its template and replica count, then report status."""
        deploy = self._get(self.deploy_rt, name, namespace)
        if deploy is None or deploy["metadata"].get("deletionTimestamp"):
            return
        uid = deploy["metadata"]["uid"]
        owned = [rs for rs in self.store.list(self.rs_rt, namespace)[0] if owner_uid(rs) == uid]
        owned.sort(key=lambda rs: (rs["metadata"]["creationTimestamp"], rs["metadata"]["name"]))
        template = deploy["spec"]["template"]
        new_rs = next((rs for rs in owned if _without_hash(rs["spec"]["template"]) == template), None)
        olds = [rs for rs in owned if rs is not new_rs]
        spec = deploy["spec"]
        replicas = spec.get("replicas", 1)
        created = False
        if not spec.get("paused"):
            if new_rs is None:
                new_rs = self._create_new_rs(deploy, olds)
                created = new_rs is not None
            elif self._bump_revision(deploy, new_rs, olds):
                new_rs = self._get(self.rs_rt, new_rs["metadata"]["name"], namespace) or new_rs
            if new_rs is not None:
                if (spec.get("strategy") or {}).get("type") == "Recreate":
                    new_rs, olds = self._recreate(deploy, new_rs, olds, replicas)
                else:
                    new_rs, olds = self._rolling(deploy, new_rs, olds, replicas)
            self._prune_history(deploy, olds)
        self._update_deployment_status(deploy, new_rs, olds, created)

    def _revision_of(self, rs: dict[str, Any]) -> int:
        try:
            return int((rs["metadata"].get("annotations") or {}).get(REVISION, "0"))
        except ValueError:
            return 0

    def _bump_revision(
        self, deploy: dict[str, Any], new_rs: dict[str, Any], olds: list[dict[str, Any]]
    ) -> bool:
        highest_old = max((self._revision_of(rs) for rs in olds), default=0)
        if self._revision_of(new_rs) > highest_old:
            return False
        body = copy.deepcopy(new_rs)
        body["metadata"].setdefault("annotations", {})[REVISION] = str(highest_old + 1)
        self.store.update(self.rs_rt, body, field_manager=MANAGER)
        return True

    def _create_new_rs(self, deploy: dict[str, Any], olds: list[dict[str, Any]]) -> dict[str, Any] | None:
        meta, spec = deploy["metadata"], deploy["spec"]
        template = copy.deepcopy(spec["template"])
        collision = (deploy.get("status") or {}).get("collisionCount", 0)
        digest = pod_template_hash(template, collision)
        template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = digest
        selector = copy.deepcopy(spec["selector"])
        selector.setdefault("matchLabels", {})[HASH_LABEL] = digest
        replicas = spec.get("replicas", 1)
        strategy = spec.get("strategy") or {}
        if strategy.get("type") == "Recreate":
            initial = 0 if any(rs["spec"].get("replicas", 0) for rs in olds) else replicas
        else:
            rolling = strategy.get("rollingUpdate") or {}
            surge = resolve_fence(rolling.get("maxSurge", "25%"), replicas, True)
            current = sum(rs["spec"].get("replicas", 0) for rs in olds)
            initial = max(0, min(replicas, replicas + surge - current))
        revision = max((self._revision_of(rs) for rs in olds), default=0) + 1
        rs = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": f"{meta['name']}-{digest}",
                "namespace": meta["namespace"],
                "labels": dict(template["metadata"]["labels"]),
                "annotations": {
                    "deployment.kubernetes.io/desired-replicas": str(replicas),
                    "deployment.kubernetes.io/max-replicas": str(
                        replicas
                        + resolve_fence(
                            (strategy.get("rollingUpdate") or {}).get("maxSurge", "25%"), replicas, True
                        )
                    ),
                    REVISION: str(revision),
                },
                "ownerReferences": [controller_ref(deploy)],
            },
            "spec": {
                "replicas": initial,
                "minReadySeconds": spec.get("minReadySeconds", 0),
                "selector": selector,
                "template": template,
            },
        }
        try:
            created = self.store.create(self.rs_rt, rs, meta["namespace"], field_manager=MANAGER)
        except ApiError as exc:
            if exc.code == 409:  # hash collision with a foreign RS: bump collisionCount and retry later
                status = copy.deepcopy(deploy.get("status") or {})
                status["collisionCount"] = collision + 1
                body = copy.deepcopy(deploy)
                body["status"] = status
                self.store.update(self.deploy_rt, body, subresource="status", field_manager=MANAGER)
                return None
            raise
        self._event(
            deploy,
            "ScalingReplicaSet",
            f"Scaled up replica set {created['metadata']['name']} from 0 to {initial}",
            "deployment-controller",
        )
        annotations = meta.get("annotations") or {}
        if annotations.get(REVISION) != str(revision):
            body = copy.deepcopy(deploy)
            body["metadata"].setdefault("annotations", {})[REVISION] = str(revision)
            self.store.update(self.deploy_rt, body, field_manager=MANAGER)
        return created

    def _rolling(
        self, deploy: dict[str, Any], new_rs: dict[str, Any], olds: list[dict[str, Any]], replicas: int
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        rolling = (deploy["spec"].get("strategy") or {}).get("rollingUpdate") or {}
        surge = resolve_fence(rolling.get("maxSurge", "25%"), replicas, True)
        unavailable = resolve_fence(rolling.get("maxUnavailable", "25%"), replicas, False)
        if surge == 0 and unavailable == 0:
            unavailable = 1
        # Scale the new replica set up (within the surge) or down to the desired count.
        new_spec = new_rs["spec"].get("replicas", 0)
        if new_spec > replicas:
            new_rs = self._scale_rs(deploy, new_rs, replicas)
        elif new_spec < replicas:
            total = new_spec + sum(rs["spec"].get("replicas", 0) for rs in olds)
            room = replicas + surge - total
            if room > 0:
                new_rs = self._scale_rs(deploy, new_rs, new_spec + min(room, replicas - new_spec))
        # Scale old replica sets down as far as availability allows.
        olds = [rs for rs in olds if rs["spec"].get("replicas", 0) > 0] + [
            rs for rs in olds if rs["spec"].get("replicas", 0) == 0
        ]
        old_total = sum(rs["spec"].get("replicas", 0) for rs in olds)
        if old_total == 0:
            return new_rs, olds
        all_pods = new_rs["spec"].get("replicas", 0) + old_total
        min_available = replicas - unavailable
        new_unavailable = new_rs["spec"].get("replicas", 0) - (new_rs.get("status") or {}).get(
            "availableReplicas", 0
        )
        budget = all_pods - min_available - new_unavailable
        if budget <= 0:
            return new_rs, olds
        updated_olds = []
        # First the old replicas that are not available anyway.
        for rs in olds:
            spec_n = rs["spec"].get("replicas", 0)
            available = (rs.get("status") or {}).get("availableReplicas", 0)
            cut = min(budget, max(0, spec_n - available))
            if cut > 0:
                rs = self._scale_rs(deploy, rs, spec_n - cut)
                budget -= cut
            updated_olds.append(rs)
        # Then available ones, keeping the minimum availability.
        available_total = sum(
            (rs.get("status") or {}).get("availableReplicas", 0) for rs in [new_rs, *updated_olds]
        )
        allowed = min(budget, available_total - min_available)
        final_olds = []
        for rs in updated_olds:
            spec_n = rs["spec"].get("replicas", 0)
            cut = min(spec_n, max(0, allowed))
            if cut > 0:
                rs = self._scale_rs(deploy, rs, spec_n - cut)
                allowed -= cut
            final_olds.append(rs)
        return new_rs, final_olds

    def _recreate(
        self, deploy: dict[str, Any], new_rs: dict[str, Any], olds: list[dict[str, Any]], replicas: int
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        scaled = [self._scale_rs(deploy, rs, 0) for rs in olds]
        old_uids = {rs["metadata"]["uid"] for rs in olds}
        pods = self.store.list(self.pod_rt, deploy["metadata"]["namespace"])[0]
        if any(owner_uid(p) in old_uids for p in pods):
            return new_rs, scaled
        return self._scale_rs(deploy, new_rs, replicas), scaled

    def _prune_history(self, deploy: dict[str, Any], olds: list[dict[str, Any]]) -> None:
        limit = deploy["spec"].get("revisionHistoryLimit", 10)
        idle = [
            rs
            for rs in olds
            if rs["spec"].get("replicas", 0) == 0 and not (rs.get("status") or {}).get("replicas")
        ]
        idle.sort(key=self._revision_of)
        for rs in idle[: max(0, len(idle) - limit)]:
            try:
                self.store.delete(self.rs_rt, rs["metadata"]["name"], rs["metadata"]["namespace"])
            except ApiError as exc:
                if exc.code != 404:
                    raise

    def _update_deployment_status(
        self, deploy: dict[str, Any], new_rs: dict[str, Any] | None, olds: list[dict[str, Any]], created: bool
    ) -> None:
        namespace, name = deploy["metadata"]["namespace"], deploy["metadata"]["name"]
        current = self._get(self.deploy_rt, name, namespace)
        if current is None:
            return
        new_fresh = self._get(self.rs_rt, new_rs["metadata"]["name"], namespace) if new_rs else None
        old_fresh = [self._get(self.rs_rt, rs["metadata"]["name"], namespace) for rs in olds]
        all_rs = [rs for rs in [new_fresh, *old_fresh] if rs is not None]
        spec = current["spec"]
        replicas = spec.get("replicas", 1)

        def total(field: str, items: list[dict[str, Any]]) -> int:
            return sum((rs.get("status") or {}).get(field, 0) for rs in items)

        status_replicas = total("replicas", all_rs)
        updated = (new_fresh.get("status") or {}).get("replicas", 0) if new_fresh else 0
        ready = total("readyReplicas", all_rs)
        available = total("availableReplicas", all_rs)
        spec_total = sum(rs["spec"].get("replicas", 0) for rs in all_rs)
        old_status = current.get("status") or {}
        status: dict[str, Any] = {"observedGeneration": current["metadata"].get("generation", 1)}
        for key, value in (
            ("replicas", status_replicas),
            ("updatedReplicas", updated),
            ("readyReplicas", ready),
            ("availableReplicas", available),
            ("unavailableReplicas", max(0, spec_total - available)),
        ):
            if value:
                status[key] = value
        if old_status.get("collisionCount"):
            status["collisionCount"] = old_status["collisionCount"]
        now = now_rfc3339()
        conditions = copy.deepcopy(old_status.get("conditions") or [])
        rolling = (spec.get("strategy") or {}).get("rollingUpdate") or {}
        max_unavailable = 0
        if (spec.get("strategy") or {}).get("type", "RollingUpdate") == "RollingUpdate":
            max_unavailable = resolve_fence(rolling.get("maxUnavailable", "25%"), replicas, False)
        if available >= replicas - max_unavailable:
            conditions = _set_condition(
                conditions,
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
                now,
            )
        else:
            conditions = _set_condition(
                conditions,
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
                now,
            )
        rs_name = new_fresh["metadata"]["name"] if new_fresh else ""
        complete = (
            new_fresh is not None
            and updated == replicas
            and available == replicas
            and status_replicas == replicas
        )
        progressed = any(
            old_status.get(k, 0) != status.get(k, 0)
            for k in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas")
        )
        limit = max(self.ctx.clock.scaled(spec.get("progressDeadlineSeconds", 600)), MIN_DEADLINE_WALL_S)
        progressing = _condition(conditions, "Progressing")
        if complete:
            conditions = _set_condition(
                conditions,
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                f'ReplicaSet "{rs_name}" has successfully progressed.',
                now,
            )
        elif created:
            conditions = _set_condition(
                conditions,
                "Progressing",
                "True",
                "NewReplicaSetCreated",
                f'Created new replica set "{rs_name}"',
                now,
            )
        elif new_fresh is not None and (progressed or progressing is None):
            conditions = _set_condition(
                conditions,
                "Progressing",
                "True",
                "ReplicaSetUpdated",
                f'ReplicaSet "{rs_name}" is progressing.',
                now,
                touch=True,
            )
        elif (
            new_fresh is not None
            and not spec.get("paused")
            and progressing.get("status") == "True"
            and time.time() - _parse_time(progressing.get("lastUpdateTime")) >= limit
        ):
            conditions = _set_condition(
                conditions,
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                f'ReplicaSet "{rs_name}" has timed out progressing.',
                now,
            )
        progressing = _condition(conditions, "Progressing") or {}
        if (
            not complete
            and new_fresh is not None
            and not spec.get("paused")
            and progressing.get("status") == "True"
        ):
            wait = limit - (time.time() - _parse_time(progressing.get("lastUpdateTime")))
            asyncio.get_running_loop().call_later(
                max(0.0, wait) + 0.05, self.queue.add, ("deploy", namespace, name)
            )
        status["conditions"] = conditions
        if status == old_status:
            return
        body = copy.deepcopy(current)
        body["status"] = status
        self.store.update(self.deploy_rt, body, subresource="status", field_manager=MANAGER)

    # ---------------------------------------------------------------- replica sets

    def sync_replicaset(self, namespace: str, name: str) -> None:
        """Create or delete pods to match ``spec.replicas``, then report status."""
        rs = self._get(self.rs_rt, name, namespace)
        if rs is None:
            return
        uid = rs["metadata"]["uid"]
        pods = [p for p in self.store.list(self.pod_rt, namespace)[0] if owner_uid(p) == uid]
        active = [p for p in pods if _active(p)]
        wanted = rs["spec"].get("replicas", 1)
        failure: str | None = None
        if not rs["metadata"].get("deletionTimestamp"):
            if len(active) < wanted:
                for _ in range(wanted - len(active)):
                    try:
                        pod = self.store.create(
                            self.pod_rt, self._pod_for(rs), namespace, field_manager=MANAGER
                        )
                    except ApiError as exc:
                        failure = exc.message
                        self._event(
                            rs,
                            "FailedCreate",
                            f"Error creating: {exc.message}",
                            "replicaset-controller",
                            "Warning",
                        )
                        break
                    active.append(pod)
                    self._event(
                        rs,
                        "SuccessfulCreate",
                        f"Created pod: {pod['metadata']['name']}",
                        "replicaset-controller",
                    )
            elif len(active) > wanted:
                for pod in sorted(active, key=_deletion_rank)[: len(active) - wanted]:
                    try:
                        self.store.delete(self.pod_rt, pod["metadata"]["name"], namespace)
                    except ApiError as exc:
                        if exc.code != 404:
                            raise
                    active.remove(pod)
                    self._event(
                        rs,
                        "SuccessfulDelete",
                        f"Deleted pod: {pod['metadata']['name']}",
                        "replicaset-controller",
                    )
        self._update_rs_status(rs, namespace, name, failure)

    def _pod_for(self, rs: dict[str, Any]) -> dict[str, Any]:
        template = copy.deepcopy(rs["spec"]["template"])
        meta = template.get("metadata") or {}
        pod_meta: dict[str, Any] = {
            "generateName": f"{rs['metadata']['name']}-",
            "namespace": rs["metadata"]["namespace"],
            "labels": meta.get("labels") or {},
            "ownerReferences": [controller_ref(rs)],
        }
        if meta.get("annotations"):
            pod_meta["annotations"] = meta["annotations"]
        return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": template.get("spec") or {}}

    def _update_rs_status(self, rs: dict[str, Any], namespace: str, name: str, failure: str | None) -> None:
        current = self._get(self.rs_rt, name, namespace)
        if current is None:
            return
        uid = current["metadata"]["uid"]
        pods = [p for p in self.store.list(self.pod_rt, namespace)[0] if owner_uid(p) == uid and _active(p)]
        template_labels = (current["spec"]["template"].get("metadata") or {}).get("labels") or {}
        labelled = sum(
            1
            for p in pods
            if all(p["metadata"].get("labels", {}).get(k) == v for k, v in template_labels.items())
        )
        ready = sum(1 for p in pods if pod_ready(p))
        old_status = current.get("status") or {}
        status: dict[str, Any] = {"replicas": len(pods)}
        if labelled:
            status["fullyLabeledReplicas"] = labelled
        if ready:
            status["readyReplicas"] = ready
            status["availableReplicas"] = ready
        status["observedGeneration"] = current["metadata"].get("generation", 1)
        conditions = [c for c in old_status.get("conditions") or [] if c.get("type") != "ReplicaFailure"]
        if failure:
            previous = _condition(old_status.get("conditions") or [], "ReplicaFailure")
            conditions.append(
                {
                    "type": "ReplicaFailure",
                    "status": "True",
                    "lastTransitionTime": (previous or {}).get("lastTransitionTime") or now_rfc3339(),
                    "reason": "FailedCreate",
                    "message": failure,
                }
            )
        if conditions:
            status["conditions"] = conditions
        if status == old_status:
            return
        body = copy.deepcopy(current)
        body["status"] = status
        self.store.update(self.rs_rt, body, subresource="status", field_manager=MANAGER)


def _deletion_rank(pod: dict[str, Any]) -> tuple[int, int, int, str]:
    """Pods to delete first: unscheduled, then pending, then not ready, then the newest."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    phase_rank = {"Pending": 0, "Unknown": 1, "Running": 2}.get(status.get("phase", "Pending"), 0)
    created = pod["metadata"].get("creationTimestamp", "")
    newest_first = "".join(chr(0x10FFFF - ord(c)) for c in created)
    return (1 if spec.get("nodeName") else 0, phase_rank, 1 if pod_ready(pod) else 0, newest_first)


async def run(ctx: Any) -> None:
    """Run the deployment and replicaset controllers until cancelled."""
    await WorkloadControllers(ctx).run()
