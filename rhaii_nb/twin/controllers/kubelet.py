"""The twin's kubelets: run every bound pod's containers, report their status, write their logs.

One worker per pod walks what a kubelet does: create the sandbox (pod IP, ``PodReadyToStartContainers``),
pull images (once per node; a missing pull secret for ``registry.redhat.io`` ends in
``ImagePullBackOff``), check container config (a missing ``secretKeyRef`` is
``CreateContainerConfigError``), run init containers one by one (a failing one restarts with
kubelet's back-off: ``Init:Error`` → ``Init:CrashLoopBackOff``), start native sidecars and the
containers, and flip readiness by the readiness probe's ``initialDelaySeconds``/``periodSeconds``.
``kubectl get pods`` therefore prints ``Pending → Init:0/1 → PodInitializing → Running 0/1 →
Running 1/1``. Durations are real-world seconds scaled by ``ctx.clock``.

vLLM workload pods (label ``kserve.io/component=workload``) also start a ``ReplicaServer`` on
127.0.0.1 with a certificate for the workload Service's DNS names when their log says the API server
is starting, and register it in ``ctx.replicas`` (ready when the pod's readiness flips). Profile:
annotation ``twin.rhaii.io/profile`` if set, else ``tpu-v6e-qwen2.5-3b``.

Deleted pods (``deletionTimestamp``) have their containers stopped, replica removed, and are removed
from the store after their (scaled) shutdown. Pods bound to a node that no longer exists are deleted,
as the pod garbage collector does.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import itertools
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any

from rhaii_nb import names
from rhaii_nb.twin.context import ReplicaInfo
from rhaii_nb.twin.controllers._kube import Kube, now_rfc3339
from rhaii_nb.twin.jsoncopy import clone
from rhaii_nb.twin.vllm_logs import (
    SERVING,
    StartupScript,
    generic_startup_script,
    storage_initializer_script,
    vllm_startup_script,
)

log = logging.getLogger(__name__)

MANAGER = "kubelet"
PROFILE_ANNOTATION = "twin.rhaii.io/profile"
DEFAULT_PROFILE = "tpu-v6e-qwen2.5-3b"
HF_TOKEN_PLACEHOLDER = "YOUR_HF_TOKEN_HERE"
# Real-world seconds (before scaling).
SANDBOX_S = 1.5
BACKOFF_START_S, BACKOFF_MAX_S = 10.0, 300.0
SHUTDOWN_S = 2.0
# Draining a replica on deletion: at most this long (wall seconds), settling briefly before and after.
DRAIN_MAX_S = 30.0
DRAIN_SETTLE_S = 0.1
SLOW_COMPILE_FACTOR = 4.0
# Pull times with GKE image streaming; the vLLM image is large but streams.
_PULL_S = [("vllm", 9.0), ("storage-initializer", 4.0), ("istio-proxy", 3.0)]
_IMAGE_SIZES = [("vllm", 9_876_543_210), ("storage-initializer", 1_234_567_890)]


def _pull_seconds(image: str) -> float:
    return next((s for key, s in _PULL_S if key in image), 2.5)


def _image_size(image: str) -> int:
    return next((s for key, s in _IMAGE_SIZES if key in image), 187_654_321)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def image_id(image: str) -> str:
    """``repo@sha256:…`` as containerd reports the pulled image."""
    repo = image.split("@", 1)[0]
    if ":" in repo.rsplit("/", 1)[-1]:
        repo = repo.rsplit(":", 1)[0]
    return f"{repo}@sha256:{_digest(image)}"


def pull_policy(container: dict[str, Any]) -> str:
    """``imagePullPolicy`` as the API server defaults it (Always for ``:latest`` or no tag)."""
    if container.get("imagePullPolicy"):
        return container["imagePullPolicy"]
    image = container.get("image", "")
    last = image.split("@", 1)[0].rsplit("/", 1)[-1]
    if "@" in image:
        return "IfNotPresent"
    return "Always" if ":" not in last or last.endswith(":latest") else "IfNotPresent"


def is_workload(pod: dict[str, Any]) -> bool:
    """Whether the pod is a vLLM replica of an LLMInferenceService."""
    return ((pod.get("metadata") or {}).get("labels") or {}).get("kserve.io/component") == "workload"


@dataclass
class ContainerRun:
    """What the kubelet knows about one container of a pod."""

    name: str
    image: str
    init: bool = False
    sidecar: bool = False
    state: dict[str, Any] = field(default_factory=dict)
    last_state: dict[str, Any] = field(default_factory=dict)
    ready: bool = False
    started: bool = False
    restart_count: int = 0
    container_id: str = ""
    image_ref: str = ""

    def status(self) -> dict[str, Any]:
        """The container's entry in ``containerStatuses``/``initContainerStatuses``."""
        entry: dict[str, Any] = {
            "name": self.name,
            "image": self.image,
            "imageID": self.image_ref,
            "state": self.state,
            "lastState": self.last_state,
            "ready": self.ready,
            "restartCount": self.restart_count,
            "started": self.started,
        }
        if self.container_id:
            entry["containerID"] = self.container_id
        return entry


class _Stop(Exception):
    """The pod is being deleted: stop its lifecycle."""


class PodWorker:
    """Runs one pod on its node, from sandbox to readiness, and stops it on deletion."""

    def __init__(self, kubelet: Kubelet, pod: dict[str, Any]) -> None:
        self.kubelet = kubelet
        self.kube = kubelet.kube
        self.ctx = kubelet.ctx
        meta, spec = pod["metadata"], pod.get("spec") or {}
        self.pod = pod
        self.namespace, self.name, self.uid = meta["namespace"], meta["name"], meta["uid"]
        self.node = spec["nodeName"]
        self.spec = spec
        self.inits = [
            ContainerRun(c["name"], c.get("image", ""), init=True, sidecar=c.get("restartPolicy") == "Always")
            for c in spec.get("initContainers") or []
        ]
        self.containers = [ContainerRun(c["name"], c.get("image", "")) for c in spec.get("containers") or []]
        waiting = "PodInitializing" if self.inits else "ContainerCreating"
        for run in self.inits + self.containers:
            run.state = {"waiting": {"reason": waiting}}
        self.phase = "Pending"
        self.pod_ip = ""
        self.start_time = ""
        self.conditions: dict[str, dict[str, Any]] = {}
        self.replica: ReplicaInfo | None = None
        self.terminating = False
        self.tasks: list[asyncio.Task[Any]] = []
        self.main_task: asyncio.Task[Any] | None = None
        self.rng = random.Random(self.uid)

    # --- status ----------------------------------------------------------------------------------

    def _condition(self, kind: str, status: bool, reason: str = "", message: str = "") -> None:
        value = "True" if status else "False"
        previous = self.conditions.get(kind)
        entry: dict[str, Any] = {"type": kind, "status": value, "lastProbeTime": None}
        if reason:
            entry["reason"] = reason
        if message:
            entry["message"] = message
        same_status = previous is not None and previous["status"] == value
        entry["lastTransitionTime"] = previous["lastTransitionTime"] if same_status else now_rfc3339()
        self.conditions[kind] = entry

    def _refresh_conditions(self) -> None:
        inits_done = all(
            (r.sidecar and r.started)
            or (not r.sidecar and "terminated" in r.state and r.state["terminated"].get("exitCode") == 0)
            for r in self.inits
        )
        if self.inits:
            self._condition(
                "Initialized",
                inits_done,
                "" if inits_done else "ContainersNotInitialized",
                "" if inits_done else f"containers with incomplete status: {self._incomplete_inits()}",
            )
        else:
            self._condition("Initialized", True)
        not_ready = [r.name for r in self.containers + [r for r in self.inits if r.sidecar] if not r.ready]
        ready = not not_ready and self.phase == "Running"
        message = f"containers with unready status: [{' '.join(not_ready)}]" if not_ready else ""
        self._condition("ContainersReady", ready, "" if ready else "ContainersNotReady", message)
        self._condition("Ready", ready, "" if ready else "ContainersNotReady", message)

    def _incomplete_inits(self) -> str:
        pending = [r.name for r in self.inits if not r.sidecar and "terminated" not in r.state]
        failed = [
            r.name for r in self.inits if "terminated" in r.state and r.state["terminated"].get("exitCode")
        ]
        return "[" + " ".join(dict.fromkeys(failed + pending)) + "]"

    def write_status(self) -> None:
        """Publish the pod status through ``pods/status``."""
        if self.terminating and not self.kube.get("pods", self.name, self.namespace):
            return
        self._refresh_conditions()
        order = ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]
        conditions = [self.conditions[k] for k in order if k in self.conditions]
        status: dict[str, Any] = {
            "phase": self.phase,
            "conditions": conditions,
            "hostIP": self.kubelet.node_ip(self.node),
            "hostIPs": [{"ip": self.kubelet.node_ip(self.node)}],
            "qosClass": self.kubelet.qos_class(self.spec),
            "containerStatuses": [r.status() for r in self.containers],
        }
        if self.inits:
            status["initContainerStatuses"] = [r.status() for r in self.inits]
        if self.start_time:
            status["startTime"] = self.start_time
        if self.pod_ip:
            status["podIP"] = self.pod_ip
            status["podIPs"] = [{"ip": self.pod_ip}]
        self.kube.patch_status("pods", self.name, status, self.namespace, manager=MANAGER)

    def event(self, reason: str, message: str, type_: str = "Normal", field_path: str = "") -> None:
        """Record a kubelet event about the pod (``fieldPath`` names the container)."""
        self.kube.event(
            self.pod, reason, message, type_, MANAGER, field_path=field_path or None, host=self.node
        )

    # --- lifecycle -------------------------------------------------------------------------------

    async def sleep(self, real_seconds: float) -> None:
        """Sleep the scaled duration; raise ``_Stop`` when the pod started terminating."""
        if self.terminating:
            raise _Stop
        await self.ctx.clock.sleep(real_seconds)
        if self.terminating:
            raise _Stop

    async def lifecycle(self) -> None:
        """Sandbox → init containers → containers → readiness."""
        try:
            self.start_time = now_rfc3339()
            self.conditions["PodScheduled"] = {
                "type": "PodScheduled",
                "status": "True",
                "lastProbeTime": None,
                "lastTransitionTime": now_rfc3339(),
            }
            self._condition("PodReadyToStartContainers", False)
            self.write_status()
            await self.sleep(SANDBOX_S)
            self.pod_ip = self.kubelet.allocate_ip(self.node)
            self._condition("PodReadyToStartContainers", True)
            self.write_status()
            for run, container in zip(self.inits, self.spec.get("initContainers") or [], strict=True):
                if run.sidecar:
                    await self.start_container(run, container)
                    self.spawn(self.run_script, run, container)
                    await self.wait_ready(run, container)
                else:
                    await self.run_to_completion(run, container)
            self.write_status()
            for run, container in zip(self.containers, self.spec.get("containers") or [], strict=True):
                await self.start_container(run, container)
                self.phase = "Running"
                self.write_status()
                self.spawn(self.run_main, run, container)
        except _Stop:
            pass
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("pod %s/%s lifecycle failed", self.namespace, self.name)

    def spawn(self, function: Any, *args: Any) -> None:
        """Run ``function(*args)`` (a per-container coroutine) alongside the lifecycle."""
        task = asyncio.get_running_loop().create_task(self._guard(function, *args))
        self.tasks.append(task)

    async def _guard(self, function: Any, *args: Any) -> None:
        try:
            await function(*args)
        except (_Stop, asyncio.CancelledError):
            pass
        except Exception:
            log.exception("container of pod %s/%s failed", self.namespace, self.name)

    async def pull(self, run: ContainerRun, container: dict[str, Any]) -> None:
        """Pull the image (or find it on the node), with ``ImagePullBackOff`` when credentials are missing."""
        path = f"spec.{'initContainers' if run.init else 'containers'}{{{run.name}}}"
        image = run.image
        backoff = BACKOFF_START_S
        while True:
            present = image in self.kubelet.images.setdefault(self.node, set())
            if present and pull_policy(container) != "Always":
                self.event("Pulled", f'Container image "{image}" already present on machine', field_path=path)
                break
            missing = self.kubelet.missing_pull_secrets(self.namespace, self.spec, image)
            self.event("Pulling", f'Pulling image "{image}"', field_path=path)
            if missing:
                self.event(
                    "FailedToRetrieveImagePullSecret",
                    f"Unable to retrieve some image pull secrets ({', '.join(missing)}); attempting to pull "
                    "the image may not succeed.",
                    "Warning",
                )
                await self.sleep(1.5)
                failure = (
                    f'Failed to pull image "{image}": failed to pull and unpack image "{image}": failed to '
                    f'resolve reference "{image}": pull access denied, repository does not exist or may '
                    "require authorization: authorization failed: no basic auth credentials"
                )
                self.event("Failed", failure, "Warning", path)
                self.event("Failed", "Error: ErrImagePull", "Warning", path)
                run.state = {"waiting": {"reason": "ErrImagePull", "message": failure}}
                self.write_status()
                await self.sleep(2.0)
                self.event("BackOff", f'Back-off pulling image "{image}"', "Normal", path)
                self.event("Failed", "Error: ImagePullBackOff", "Warning", path)
                run.state = {
                    "waiting": {"reason": "ImagePullBackOff", "message": f'Back-off pulling image "{image}"'}
                }
                self.write_status()
                await self.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            seconds = _pull_seconds(image) * (0.15 if present else 1.0) * self.rng.uniform(0.85, 1.15)
            await self.sleep(seconds)
            self.kubelet.images[self.node].add(image)
            self.event(
                "Pulled",
                f'Successfully pulled image "{image}" in {seconds:.3f}s ({seconds:.3f}s including waiting). '
                f"Image size: {_image_size(image)} bytes.",
                field_path=path,
            )
            break
        run.image_ref = image_id(image)

    async def start_container(self, run: ContainerRun, container: dict[str, Any]) -> None:
        """Pull, check the config, create and start one container (running, not yet ready)."""
        path = f"spec.{'initContainers' if run.init else 'containers'}{{{run.name}}}"
        if not run.image_ref or run.restart_count == 0:
            await self.pull(run, container)
        else:
            self.event("Pulled", f'Container image "{run.image}" already present on machine', field_path=path)
        while True:
            problem = self.kubelet.config_error(self.namespace, container)
            if not problem:
                break
            run.state = {"waiting": {"reason": "CreateContainerConfigError", "message": problem}}
            self.event("Failed", f"Error: {problem}", "Warning", path)
            self.write_status()
            await self.sleep(BACKOFF_START_S)
        await self.sleep(0.3)
        run.container_id = f"containerd://{_digest(f'{self.uid}/{run.name}/{run.restart_count}')}"
        self.event("Created", f"Created container {run.name}", field_path=path)
        await self.sleep(0.2)
        run.state = {"running": {"startedAt": now_rfc3339()}}
        run.started = True
        if not run.init:
            self.phase = "Running"  # a pod runs once a regular container does
        self.event("Started", f"Started container {run.name}", field_path=path)
        if run.restart_count:
            self.ctx.logs.restart(self.namespace, self.name, run.name)
        self.write_status()

    def script_for(self, run: ContainerRun, container: dict[str, Any]) -> StartupScript:
        """What the container writes while it starts."""
        if run.name == "storage-initializer":
            args = container.get("args") or []
            uri = args[0] if args else ""
            dest = args[1] if len(args) > 1 else "/mnt/models"
            return storage_initializer_script(
                uri, dest, unauthorized=self.kubelet.hf_unauthorized(self.namespace, container)
            )
        if is_workload(self.pod) and run.name == "main":
            profile = self.kubelet.profile_for(self.pod)
            factor = SLOW_COMPILE_FACTOR if self.ctx.scenario("slow-compile") else 1.0
            return vllm_startup_script(
                profile.model,
                [*(container.get("command") or []), *(container.get("args") or [])],
                kv_cache_tokens=profile.kv_cache_tokens(),
                block_size=profile.block_size,
                compile_factor=factor,
                seed=int(_digest(self.uid)[:8], 16),
            )
        generic = generic_startup_script(run.name, run.image)
        if run.init and not run.sidecar:  # an init container runs to completion
            return StartupScript(generic.steps, exit_code=0)
        return generic

    async def run_script(self, run: ContainerRun, container: dict[str, Any]) -> None:
        """Write the container's start-up log with its timing, acting on markers."""
        script = self.script_for(run, container)
        for step in script.steps:
            await self.sleep(step.after_s)
            if step.marker == SERVING:
                await self.start_replica(container)
            self.ctx.logs.append(self.namespace, self.name, run.name, step.render())
        run_exit = script.exit_code
        if run_exit is not None and not run.sidecar:
            self.finish(run, run_exit)

    def finish(self, run: ContainerRun, exit_code: int) -> None:
        """The container exited."""
        run.state = {
            "terminated": {
                "exitCode": exit_code,
                "reason": "Completed" if exit_code == 0 else "Error",
                "startedAt": run.state.get("running", {}).get("startedAt", now_rfc3339()),
                "finishedAt": now_rfc3339(),
                "containerID": run.container_id,
            }
        }
        run.ready = False
        self.ctx.logs.terminate(self.namespace, self.name, run.name)
        self.write_status()

    async def run_to_completion(self, run: ContainerRun, container: dict[str, Any]) -> None:
        """An init container: run until it exits 0, restarting with back-off while it fails."""
        backoff = BACKOFF_START_S
        path = f"spec.initContainers{{{run.name}}}"
        while True:
            await self.start_container(run, container)
            await self.run_script(run, container)
            if run.state["terminated"]["exitCode"] == 0:
                return
            await self.sleep(1.0)
            pod_ref = f"{self.name}_{self.namespace}({self.uid})"
            run.last_state = run.state
            run.state = {
                "waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": f"back-off {int(backoff)}s restarting failed container={run.name} "
                    f"pod={pod_ref}",
                }
            }
            run.started = False
            self.event(
                "BackOff",
                f"Back-off restarting failed container {run.name} in pod {pod_ref}",
                "Warning",
                path,
            )
            self.write_status()
            await self.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_S)
            run.restart_count += 1

    async def wait_ready(self, run: ContainerRun, container: dict[str, Any]) -> None:
        """Readiness by the probe's initial delay and period (no probe: ready once started)."""
        probe = container.get("readinessProbe") or container.get("startupProbe")
        delay = float((probe or {}).get("initialDelaySeconds", 0))
        period = float((probe or {}).get("periodSeconds", 10)) if probe else 0.0
        await self.sleep(delay + (period * self.rng.uniform(0.05, 0.3) if probe else 0.0))
        run.ready = True
        self.write_status()

    async def run_main(self, run: ContainerRun, container: dict[str, Any]) -> None:
        """A regular container: write its start-up log, then become ready by its readiness probe."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        await self.run_script(run, container)
        if "terminated" in run.state:
            return
        probe = container.get("readinessProbe")
        if probe:
            delay = self.ctx.clock.scaled(float(probe.get("initialDelaySeconds", 0)))
            period = self.ctx.clock.scaled(float(probe.get("periodSeconds", 10)))
            elapsed = loop.time() - started
            wait = max(0.0, delay - elapsed)
            if elapsed > delay and period > 0:  # the next probe after the server came up
                wait = period - ((elapsed - delay) % period)
            await asyncio.sleep(wait)
            if self.terminating:
                raise _Stop
        run.ready = True
        if self.replica is not None:
            self.replica.ready = True
            self.ctx.replicas.put(self.replica)
        self.write_status()

    async def start_replica(self, container: dict[str, Any]) -> None:
        """Start the vLLM stand-in behind this pod (workload pods only)."""
        if not is_workload(self.pod) or self.replica is not None:
            return
        from rhaii_nb.twin.inference.server import ReplicaServer
        from rhaii_nb.twin.vllm_logs import _vllm_flags

        flags = _vllm_flags([*(container.get("command") or []), *(container.get("args") or [])])
        served = flags.get("served-model-name")
        service = ((self.pod.get("metadata") or {}).get("labels") or {}).get("app.kubernetes.io/name", "")
        dns = [*_service_dns(names.workload_service(service), self.namespace), "localhost"]
        server = ReplicaServer(
            self.kubelet.profile_for(self.pod),
            served_name=served if isinstance(served, str) else None,
            seed=int(_digest(self.uid)[:8], 16),
            replica_name=self.name,
        )
        context = self.ctx.pki.server_ssl_context(dns) if self.ctx.pki is not None else None
        port = await server.start("127.0.0.1", 0, ssl_context=context)
        labels = dict((self.pod.get("metadata") or {}).get("labels") or {})
        self.replica = ReplicaInfo(
            self.namespace, self.name, self.uid, labels, "127.0.0.1", port, False, server
        )
        self.ctx.replicas.put(self.replica)

    async def drain_replica(self, grace_seconds: float) -> None:
        """SIGTERM as vLLM's server takes it: no new requests (the pod leaves the endpoints at once),
        the ones in flight finish — within the grace period (wall-clock, as inference is never scaled)."""
        replica = self.replica
        if replica is None:
            return
        self.ctx.replicas.remove(self.namespace, self.name)
        engine = replica.server.engine
        deadline = time.monotonic() + min(grace_seconds, DRAIN_MAX_S)
        await asyncio.sleep(DRAIN_SETTLE_S)  # requests already on their way still arrive
        while engine.num_running + engine.num_waiting > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(DRAIN_SETTLE_S)  # the last responses finish streaming out

    async def stop_replica(self) -> None:
        """Stop the replica server (its cache is lost) and forget it."""
        replica, self.replica = self.replica, None
        if replica is None:
            return
        self.ctx.replicas.remove(self.namespace, self.name)
        with contextlib.suppress(Exception):
            await replica.server.stop()

    async def terminate(self, grace_seconds: float) -> None:
        """Graceful deletion: stop the containers, then remove the pod object."""
        self.terminating = True
        for task in [self.main_task, *self.tasks]:
            if task is not None and not task.done():
                task.cancel()
        await self.drain_replica(grace_seconds)
        await self.stop_replica()
        path_events = [r for r in self.containers + self.inits if "running" in r.state]
        for run in path_events:
            kind = "initContainers" if run.init else "containers"
            self.event("Killing", f"Stopping container {run.name}", field_path=f"spec.{kind}{{{run.name}}}")
        for run in self.containers + self.inits:
            run.ready = False
        self.write_status()
        await self.ctx.clock.sleep(min(grace_seconds, SHUTDOWN_S))
        for run in path_events:
            run.state = {
                "terminated": {
                    "exitCode": 0,
                    "reason": "Completed",
                    "startedAt": run.state["running"]["startedAt"],
                    "finishedAt": now_rfc3339(),
                    "containerID": run.container_id,
                }
            }
            self.ctx.logs.terminate(self.namespace, self.name, run.name)
        self.write_status()
        self.kube.delete("pods", self.name, self.namespace, grace_seconds=0)

    async def cancel(self) -> None:
        """The pod object is gone: stop everything at once."""
        self.terminating = True
        for task in [self.main_task, *self.tasks]:
            if task is not None and not task.done():
                task.cancel()
        await self.stop_replica()


def _service_dns(service: str, namespace: str) -> list[str]:
    return [
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.cluster.local",
    ]


class Kubelet:
    """The kubelets of every node: one ``PodWorker`` per bound pod."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        if ctx.logs is None:
            from rhaii_nb.twin.podlogs import PodLogs

            ctx.logs = PodLogs()
        self.kube = Kube(ctx.store)
        self.workers: dict[str, PodWorker] = {}
        self.images: dict[str, set[str]] = {}
        self._node_index: dict[str, int] = {}
        self._ip_counters: dict[str, itertools.count[int]] = {}
        self._terminations: dict[str, asyncio.Task[Any]] = {}
        self._wake = asyncio.Event()

    # --- node-level helpers ----------------------------------------------------------------------

    def _index(self, node: str) -> int:
        return self._node_index.setdefault(node, len(self._node_index) + 1)

    def node_ip(self, node: str) -> str:
        """The node's InternalIP (from its status, else a stable 10.164.0.x)."""
        obj = self.kube.get("nodes", node)
        for address in ((obj or {}).get("status") or {}).get("addresses") or []:
            if address.get("type") == "InternalIP":
                return address["address"]
        return f"10.164.0.{self._index(node) + 1}"

    def allocate_ip(self, node: str) -> str:
        """A pod IP from the node's /24 of 10.8.0.0/14."""
        counter = self._ip_counters.setdefault(node, itertools.count(2))
        return f"10.8.{self._index(node)}.{next(counter) % 254 + 1}"

    @staticmethod
    def qos_class(spec: dict[str, Any]) -> str:
        """Guaranteed / Burstable / BestEffort as the API server computes it."""
        containers = (spec.get("containers") or []) + (spec.get("initContainers") or [])
        resources = [c.get("resources") or {} for c in containers]
        if not any(r.get("requests") or r.get("limits") for r in resources):
            return "BestEffort"
        guaranteed = all(
            (r.get("limits") or {}).get(k) is not None
            and (r.get("requests") or {}).get(k, (r.get("limits") or {}).get(k))
            == (r.get("limits") or {}).get(k)
            for r in resources
            for k in ("cpu", "memory")
        )
        return "Guaranteed" if guaranteed else "Burstable"

    def _secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.kube.get("secrets", name, namespace)

    def missing_pull_secrets(self, namespace: str, spec: dict[str, Any], image: str) -> list[str]:
        """Pull secrets the pod names but that do not exist, for images that need them."""
        if not image.startswith("registry.redhat.io/"):
            return []
        wanted = [s.get("name") for s in spec.get("imagePullSecrets") or [] if s.get("name")]
        if not wanted:
            return []
        missing = [name for name in wanted if self._secret(namespace, name) is None]
        return missing if len(missing) == len(wanted) else []

    def config_error(self, namespace: str, container: dict[str, Any]) -> str:
        """Why the container cannot be created from its config (a missing secret), or ``""``."""
        for env in container.get("env") or []:
            ref = (env.get("valueFrom") or {}).get("secretKeyRef")
            if not ref or ref.get("optional"):
                continue
            secret = self._secret(namespace, ref.get("name", ""))
            if secret is None:
                return f'secret "{ref.get("name")}" not found'
            if ref.get("key") not in (secret.get("data") or {}) and ref.get("key") not in (
                secret.get("stringData") or {}
            ):
                return f"couldn't find key {ref.get('key')} in Secret {namespace}/{ref.get('name')}"
        return ""

    def hf_unauthorized(self, namespace: str, container: dict[str, Any]) -> bool:
        """Whether HuggingFace would answer 401: scenario ``bad-hf-token`` or a placeholder token."""
        if self.ctx.scenario("bad-hf-token"):
            return True
        for env in container.get("env") or []:
            ref = (env.get("valueFrom") or {}).get("secretKeyRef")
            if env.get("name") != "HF_TOKEN" or not ref:
                continue
            secret = self._secret(namespace, ref.get("name", "")) or {}
            raw = (secret.get("data") or {}).get(ref.get("key", ""))
            value = base64.b64decode(raw).decode(errors="replace").strip() if raw else ""
            value = value or str((secret.get("stringData") or {}).get(ref.get("key", ""), "")).strip()
            return value in ("", HF_TOKEN_PLACEHOLDER)
        return False

    def profile_for(self, pod: dict[str, Any]) -> Any:
        """The replica profile: annotation ``twin.rhaii.io/profile``, else the TPU v6e Qwen2.5-3B one."""
        from rhaii_nb.twin.inference.profiles import get_profile

        annotations = (pod.get("metadata") or {}).get("annotations") or {}
        return get_profile(annotations.get(PROFILE_ANNOTATION) or DEFAULT_PROFILE)

    # --- the sync loop ---------------------------------------------------------------------------

    def on_write(self, event: Any, rt: Any) -> None:
        """Store callback: pods and nodes changes wake the sync loop."""
        if rt.group == "" and rt.plural in ("pods", "nodes"):
            self._wake.set()

    def sync(self) -> None:
        """Start workers for newly bound pods, terminate deleted ones, collect orphans."""
        # Views, not copies: this runs on every pod/node change, and copying every pod each time made
        # it quadratic. A worker keeps its own copy of the pod it starts from.
        pods = self.kube.list("pods", read_only=True)
        node_names = {n["metadata"]["name"] for n in self.kube.list("nodes", read_only=True)}
        seen: set[str] = set()
        for pod in pods:
            meta, spec = pod["metadata"], pod.get("spec") or {}
            node = spec.get("nodeName")
            uid = meta["uid"]
            seen.add(uid)
            if not node:
                continue
            if node not in node_names:
                # Pod garbage collection: the node is gone, so is the pod.
                worker = self.workers.pop(uid, None)
                if worker is not None:
                    asyncio.get_running_loop().create_task(worker.cancel())
                self.kube.delete("pods", meta["name"], meta["namespace"], grace_seconds=0)
                continue
            worker = self.workers.get(uid)
            if worker is None and not meta.get("deletionTimestamp"):
                if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                    continue
                worker = PodWorker(self, clone(pod))
                self.workers[uid] = worker
                worker.main_task = asyncio.get_running_loop().create_task(worker.lifecycle())
            if meta.get("deletionTimestamp") and uid not in self._terminations:
                grace = float(
                    meta.get("deletionGracePeriodSeconds") or spec.get("terminationGracePeriodSeconds") or 30
                )
                if worker is None:
                    worker = PodWorker(self, clone(pod))
                    self.workers[uid] = worker
                self._terminations[uid] = asyncio.get_running_loop().create_task(worker.terminate(grace))
        for uid in list(self.workers):
            if uid not in seen:
                worker = self.workers.pop(uid)
                self._terminations.pop(uid, None)
                asyncio.get_running_loop().create_task(worker.cancel())
                if self.ctx.logs is not None:
                    self.ctx.logs.clear(worker.namespace, worker.name)

    async def run(self) -> None:
        """Sync whenever pods or nodes change."""
        self.kube.subscribe(self.on_write)
        while True:
            self._wake.clear()
            try:
                self.sync()
            except Exception:
                log.exception("kubelet sync failed")
            await self._wake.wait()

    async def shutdown(self) -> None:
        """Stop every replica server (twin shutdown)."""
        for worker in list(self.workers.values()):
            await worker.cancel()


async def run(ctx: Any) -> None:
    """Controller entry point (started by the twin daemon)."""
    kubelet = Kubelet(ctx)
    try:
        await kubelet.run()
    finally:
        await kubelet.shutdown()
