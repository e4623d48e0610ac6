"""The generic controllers (deployments/replicasets, garbage collector, namespaces) on a running loop."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from typing import Any

import pytest

from rhaii_nb.twin.context import Clock, TwinContext
from rhaii_nb.twin.controllers import deployments, garbage, namespaces
from rhaii_nb.twin.store import Store

pytestmark = pytest.mark.timeout(90)


async def wait_for(what: str, predicate: Callable[[], Any], timeout: float = 15.0) -> Any:
    """Poll ``predicate`` until truthy; fail naming ``what`` was missing."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


class Cluster:
    """A store with the three generic controllers running."""

    def __init__(self, tmp_path):
        self.store = Store()
        self.ctx = TwinContext(store=self.store, home=tmp_path, clock=Clock(time_scale=0.001))
        self.tasks: list[asyncio.Task] = []
        s = self.store
        self.ns = s.resource("", "v1", "namespaces")
        self.pods = s.resource("", "v1", "pods")
        self.cms = s.resource("", "v1", "configmaps")
        self.deploys = s.resource("apps", "v1", "deployments")
        self.rss = s.resource("apps", "v1", "replicasets")

    async def __aenter__(self) -> Cluster:
        for module in (deployments, garbage, namespaces):
            self.tasks.append(asyncio.create_task(module.run(self.ctx)))
        self.store.create(self.ns, {"metadata": {"name": "demo"}})
        return self

    async def __aexit__(self, *exc) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    def pods_of(self, selector: str = "app=web", namespace: str = "demo") -> list[dict]:
        return self.store.list(self.pods, namespace, label_selector=selector)[0]

    def active_pods(self, selector: str = "app=web") -> list[dict]:
        return [p for p in self.pods_of(selector) if not p["metadata"].get("deletionTimestamp")]

    def replica_sets(self, namespace: str = "demo") -> list[dict]:
        return self.store.list(self.rss, namespace)[0]

    def make_ready(self, pod: dict) -> None:
        """What the kubelet does when a pod's containers are up and its probe passes."""
        body = self.store.get(self.pods, pod["metadata"]["name"], pod["metadata"]["namespace"])
        body["status"] = {
            "phase": "Running",
            "conditions": [
                {"type": "Ready", "status": "True"},
                {"type": "ContainersReady", "status": "True"},
            ],
        }
        self.store.update(self.pods, body, subresource="status", field_manager="kubelet")

    def deployment(self, name: str = "web") -> dict:
        return self.store.get(self.deploys, name, "demo")


def web(replicas: int = 2, image: str = "nginx:1.27", surge: Any = 1, unavailable: Any = 0) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "demo"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable},
            },
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "main", "image": image}]},
            },
        },
    }


def conditions(obj: dict) -> dict[str, tuple[str, str]]:
    return {
        c["type"]: (c["status"], c.get("reason", "")) for c in (obj.get("status") or {}).get("conditions", [])
    }


def test_deployment_creates_replicaset_and_pending_pods_then_reports_ready(tmp_path):
    async def scenario():
        async with Cluster(tmp_path) as c:
            c.store.create(c.deploys, web(replicas=2))
            pods = await wait_for("2 pods", lambda: len(c.pods_of()) == 2 and c.pods_of())
            [rs] = c.replica_sets()
            digest = rs["metadata"]["labels"]["pod-template-hash"]
            assert rs["metadata"]["name"] == f"web-{digest}"
            assert 1 <= len(digest) <= 10 and set(digest) <= set("bcdfghjklmnpqrstvwxz2456789")
            assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", "pod-template-hash": digest}
            ref = rs["metadata"]["ownerReferences"][0]
            assert (ref["kind"], ref["name"], ref["controller"], ref["blockOwnerDeletion"]) == (
                "Deployment",
                "web",
                True,
                True,
            )
            for pod in pods:
                assert pod["metadata"]["name"].startswith(f"web-{digest}-")
                assert len(pod["metadata"]["name"]) == len(f"web-{digest}-") + 5
                assert pod["metadata"]["labels"] == {"app": "web", "pod-template-hash": digest}
                assert pod["metadata"]["ownerReferences"][0]["uid"] == rs["metadata"]["uid"]
                assert pod["status"]["phase"] == "Pending"
            status = await wait_for(
                "deployment status", lambda: c.deployment().get("status", {}).get("replicas")
            )
            assert status == 2
            d = c.deployment()
            assert "readyReplicas" not in d["status"] and d["status"]["unavailableReplicas"] == 2
            assert conditions(d)["Available"] == ("False", "MinimumReplicasUnavailable")
            assert conditions(d)["Progressing"][0] == "True"
            events = c.store.list(
                c.store.resource("", "v1", "events"), "demo", field_selector="reason=SuccessfulCreate"
            )
            assert len(events[0]) == 2

            for pod in pods:
                c.make_ready(pod)
            d = await wait_for(
                "readyReplicas=2",
                lambda: c.deployment()["status"].get("availableReplicas") == 2 and c.deployment(),
            )
            assert d["status"]["readyReplicas"] == 2 and d["status"]["updatedReplicas"] == 2
            assert d["status"]["observedGeneration"] == d["metadata"]["generation"]
            assert "unavailableReplicas" not in d["status"]
            assert conditions(d)["Available"] == ("True", "MinimumReplicasAvailable")
            assert conditions(d)["Progressing"] == ("True", "NewReplicaSetAvailable")
            assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"

    asyncio.run(scenario())


def test_rolling_update_honours_surge_unavailable_and_readiness(tmp_path):
    async def scenario():
        async with Cluster(tmp_path) as c:
            c.store.create(c.deploys, web(replicas=2, surge=1, unavailable=0))
            for pod in await wait_for("2 pods", lambda: len(c.pods_of()) == 2 and c.pods_of()):
                c.make_ready(pod)
            await wait_for("rollout 1 done", lambda: c.deployment()["status"].get("availableReplicas") == 2)
            seen = {"max_active": 0, "min_ready": 2}

            def watch_invariants(_event, rtype) -> None:
                if rtype.plural != "pods":
                    return
                active = c.active_pods()
                seen["max_active"] = max(seen["max_active"], len(active))
                running = [p for p in active if p.get("status", {}).get("phase") == "Running"]
                seen["min_ready"] = min(seen["min_ready"], len(running))

            c.store.subscribe(watch_invariants)
            c.store.patch(
                c.deploys,
                "web",
                {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "nginx:1.28"}]}}}},
                "strategic",
                "demo",
            )
            await wait_for("a second replica set", lambda: len(c.replica_sets()) == 2)

            def sizes() -> dict[str, int]:
                by_image = {}
                for rs in c.replica_sets():
                    image = rs["spec"]["template"]["spec"]["containers"][0]["image"]
                    by_image[image] = rs["spec"]["replicas"]
                return by_image

            await wait_for("surge pod", lambda: sizes() == {"nginx:1.27": 2, "nginx:1.28": 1})
            await asyncio.sleep(0.2)  # nothing more may happen while the new pod is not ready
            assert sizes() == {"nginx:1.27": 2, "nginx:1.28": 1}
            assert len(c.active_pods()) == 3
            for _ in range(2):
                new_pods = [p for p in c.active_pods() if p["spec"]["containers"][0]["image"] == "nginx:1.28"]
                for pod in new_pods:
                    if pod.get("status", {}).get("phase") != "Running":
                        c.make_ready(pod)
                await asyncio.sleep(0.05)
                before = len(new_pods)
                await wait_for(
                    "rolling step",
                    lambda n=before: (
                        sum(1 for p in c.active_pods() if p["spec"]["containers"][0]["image"] == "nginx:1.28")
                        > n
                        or sizes()["nginx:1.27"] == 0
                    ),
                )
                assert len(c.active_pods()) <= 3
                ready = [p for p in c.active_pods() if p.get("status", {}).get("phase") == "Running"]
                assert len(ready) >= 2  # maxUnavailable 0
            for pod in c.active_pods():
                if pod.get("status", {}).get("phase") != "Running":
                    c.make_ready(pod)
            d = await wait_for(
                "rollout 2 complete",
                lambda: (
                    conditions(c.deployment())["Progressing"] == ("True", "NewReplicaSetAvailable")
                    and c.deployment()
                ),
            )
            assert sizes() == {"nginx:1.27": 0, "nginx:1.28": 2}
            assert d["status"]["updatedReplicas"] == 2 and d["status"]["replicas"] == 2
            assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
            await wait_for("old pods gone", lambda: len(c.pods_of()) == 2)
            assert seen["max_active"] == 3  # replicas + maxSurge, never more
            assert seen["min_ready"] == 2  # maxUnavailable 0: never fewer ready than replicas

    asyncio.run(scenario())


def test_replicaset_replaces_deleted_pods_and_follows_scale(tmp_path):
    async def scenario():
        async with Cluster(tmp_path) as c:
            c.store.create(c.deploys, web(replicas=2))
            first = await wait_for("2 pods", lambda: len(c.pods_of()) == 2 and c.pods_of())
            victim = first[0]["metadata"]["name"]
            c.store.delete(c.pods, victim, "demo")
            await wait_for(
                "replacement pod",
                lambda: len(c.pods_of()) == 2 and victim not in {p["metadata"]["name"] for p in c.pods_of()},
            )
            c.store.patch(c.deploys, "web", {"spec": {"replicas": 4}}, "merge", "demo", subresource="scale")
            await wait_for("4 pods", lambda: len(c.pods_of()) == 4)
            c.store.patch(c.deploys, "web", {"spec": {"replicas": 1}}, "merge", "demo")
            await wait_for("1 pod", lambda: len(c.pods_of()) == 1)
            [rs] = c.replica_sets()
            await wait_for(
                "rs status",
                lambda: c.store.get(c.rss, rs["metadata"]["name"], "demo")["status"].get("replicas") == 1,
            )

    asyncio.run(scenario())


def test_progress_deadline_exceeded_when_pods_never_become_ready(tmp_path, monkeypatch):
    monkeypatch.setattr(deployments, "MIN_DEADLINE_WALL_S", 0.3)

    async def scenario():
        async with Cluster(tmp_path) as c:
            body = web(replicas=1)
            body["spec"]["progressDeadlineSeconds"] = 1
            c.store.create(c.deploys, body)
            d = await wait_for(
                "ProgressDeadlineExceeded",
                lambda: (
                    conditions(c.deployment()).get("Progressing") == ("False", "ProgressDeadlineExceeded")
                    and c.deployment()
                ),
            )
            progressing = next(x for x in d["status"]["conditions"] if x["type"] == "Progressing")
            assert progressing["message"].endswith("has timed out progressing.")

    asyncio.run(scenario())


def test_garbage_collection_background_foreground_orphan(tmp_path):
    async def scenario():
        async with Cluster(tmp_path) as c:
            # Background: owner goes at once, dependents follow.
            c.store.create(c.deploys, web(replicas=2))
            await wait_for("2 pods", lambda: len(c.pods_of()) == 2)
            c.store.delete(c.deploys, "web", "demo", propagation="Background")
            assert not c.store.exists(c.deploys, "web", "demo")
            await wait_for("cascade", lambda: not c.replica_sets() and not c.pods_of())

            # Foreground: the owner stays (finalizer foregroundDeletion) until its dependents are gone.
            c.store.create(c.deploys, web(replicas=2))
            await wait_for("2 pods", lambda: len(c.pods_of()) == 2)
            held = c.store.delete(c.deploys, "web", "demo", propagation="Foreground")
            assert "foregroundDeletion" in held["metadata"]["finalizers"]
            assert held["metadata"]["deletionTimestamp"]
            await wait_for("foreground cascade", lambda: not c.store.exists(c.deploys, "web", "demo"))
            assert not c.replica_sets() and not c.pods_of()

            # Orphan: dependents stay, without the owner reference.
            c.store.create(c.deploys, web(replicas=1))
            await wait_for("1 pod", lambda: len(c.pods_of()) == 1)
            c.store.delete(c.deploys, "web", "demo", propagation="Orphan")
            await wait_for("owner gone", lambda: not c.store.exists(c.deploys, "web", "demo"))
            [rs] = await wait_for(
                "orphaned rs",
                lambda: [r for r in c.replica_sets() if not r["metadata"].get("ownerReferences")],
            )
            await asyncio.sleep(0.1)
            assert c.store.exists(c.rss, rs["metadata"]["name"], "demo") and len(c.pods_of()) == 1

            # A dependent created for an owner that no longer exists is collected.
            orphan = {
                "metadata": {
                    "name": "dangling",
                    "namespace": "demo",
                    "ownerReferences": [
                        {
                            "apiVersion": "v1",
                            "kind": "ConfigMap",
                            "name": "gone",
                            "uid": "0000",
                            "controller": True,
                        }
                    ],
                }
            }
            c.store.create(c.cms, orphan)
            await wait_for(
                "dangling dependent collected", lambda: not c.store.exists(c.cms, "dangling", "demo")
            )

    asyncio.run(scenario())


def test_namespace_populated_then_emptied_and_removed(tmp_path):
    async def scenario():
        async with Cluster(tmp_path) as c:
            sas = c.store.resource("", "v1", "serviceaccounts")
            c.store.create(c.ns, {"metadata": {"name": "scratch"}})
            await wait_for("default service account", lambda: c.store.exists(sas, "default", "scratch"))
            c.store.create(c.cms, {"metadata": {"name": "cfg", "namespace": "scratch"}})
            body = copy.deepcopy(web(replicas=2))
            body["metadata"]["namespace"] = "scratch"
            c.store.create(c.deploys, body)
            await wait_for("pods in scratch", lambda: len(c.pods_of(namespace="scratch")) == 2)
            ns = c.store.delete(c.ns, "scratch")
            assert ns["status"]["phase"] == "Terminating"
            await wait_for("namespace removed", lambda: not c.store.exists(c.ns, "scratch"))
            for rtype in (c.cms, c.deploys, c.rss, c.pods, sas):
                assert c.store.list(rtype, "scratch")[0] == []
            assert c.store.exists(c.ns, "demo")

    asyncio.run(scenario())
