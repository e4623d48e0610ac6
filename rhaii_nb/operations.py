"""The guide's operational procedures, done carefully: scale, rolling update, scale to zero and back.

- :func:`scale` changes the replicas and the TPU node pool together (one replica per node): it
  checks the chips against the TPU quota first, grows the pool before adding replicas and removes
  replicas before shrinking the pool, then waits for the service to be Ready.
- :func:`rolling_update` changes the vLLM image (the guide's "edit the manifest and apply") and
  watches the replicas being replaced one at a time while a :class:`BackgroundProbe` sends requests
  through the gateway the whole time and records every answer. KServe's vLLM Deployment keeps the
  Kubernetes default strategy (``maxSurge`` 25% → 1, ``maxUnavailable`` 25% → 0): the new replica
  starts *before* an old one stops, so it needs a free TPU node. With one node per replica there is
  none, and the update would wait forever — so the pool gets one surge node for the update (quota
  checked) and gives it back afterwards (GKE chooses which node goes: when it holds a new replica,
  that replica restarts on the node an old one freed; the probe keeps running until it is Ready).
  :func:`update_image` picks the image to update to: the guide's next release, or back to the params'
  image when the service already runs it, so running the procedure again always replaces replicas.
- :func:`scale_to_zero` resizes the TPU pool to 0 (the vLLM pods wait as Pending, nothing is
  deleted) and says what that saves per hour; :func:`scale_back` restores it and measures the
  time until the service is Ready again.

On the twin all cluster durations are simulated: ``gke_seconds`` gives them in GKE time
(wall time ÷ ``time_scale``).
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from rhaii_nb import cluster, names, service
from rhaii_nb.cost import time_scale
from rhaii_nb.pods import Condition, PodTracker, is_ready, pods_table

# The guide's rolling-update example: the next vLLM TPU release.
GUIDE_UPDATE_IMAGE = "registry.redhat.io/rhaiis/vllm-tpu-rhel9:3.3.0"


class QuotaShort(RuntimeError):
    """The TPU quota does not hold the nodes an operation needs."""


# --- quota ------------------------------------------------------------------------------------------


@dataclass
class QuotaCheck:
    """Chips ``nodes`` TPU nodes need against the region's TPU v6e quota."""

    nodes: int
    chips_needed: int
    quota_chips: int | None  # None: no limit reported
    region: str

    @property
    def ok(self) -> bool:
        """Whether the quota holds the chips."""
        return self.quota_chips is None or self.chips_needed <= self.quota_chips

    def text(self) -> str:
        """One line for people."""
        quota = "no limit" if self.quota_chips is None else f"{self.quota_chips} chips"
        mark = "✅" if self.ok else "❌"
        return (
            f"{mark} {self.nodes} TPU nodes need {self.chips_needed} chips; quota in {self.region}: {quota}"
        )


def check_quota(session: Any, params: Any, nodes: int) -> QuotaCheck:
    """Whether ``nodes`` nodes of the params' machine type fit the region's TPU v6e quota."""
    from rhaii_nb.preflight import tpu_quota_chips

    return QuotaCheck(nodes, nodes * params.chips_per_node, tpu_quota_chips(session, params), params.region)


def require_quota(session: Any, params: Any, nodes: int) -> QuotaCheck:
    """:func:`check_quota`, raising :class:`QuotaShort` (with the fix) when it does not fit."""
    check = check_quota(session, params, nodes)
    if not check.ok:
        fits = (check.quota_chips or 0) // params.chips_per_node
        raise QuotaShort(
            f"{check.text()}. Fix: request more TPU v6e quota in {params.region} "
            f"(IAM & Admin > Quotas), or use at most {fits} nodes."
        )
    return check


# --- steps ---------------------------------------------------------------------------------------------


@dataclass
class OpStep:
    """One step of an operation: what, how long (wall and GKE-equivalent), details."""

    step: str
    seconds: float
    gke_seconds: float
    detail: str = ""


def _timed(steps: list[OpStep], scale: float, step: str, work: Any) -> Any:
    """Run ``work()``, record how long it took; a string result is the step's detail."""
    started = time.monotonic()
    result = work()
    took = time.monotonic() - started
    detail = result if isinstance(result, str) else ""
    steps.append(OpStep(step, round(took, 2), round(took / scale, 1), detail))
    return result


def steps_table(steps: list[OpStep]) -> pd.DataFrame:
    """Steps as a table: step, seconds (wall), gke_seconds (GKE time), detail."""
    return pd.DataFrame([asdict(s) for s in steps], columns=["step", "seconds", "gke_seconds", "detail"])


def apply_service(session: Any, params: Any) -> str:
    """Server-side apply the LLMInferenceService manifest with these params (the guide's edit + apply)."""
    from rhaii_nb.apply import apply_objects
    from rhaii_nb.manifests import manifests_for

    result = apply_objects(session, manifests_for(params, "inference-service").objects, show=False)
    return ", ".join(f"{obj.kind}/{obj.name} {obj.outcome}" for obj in result.objects)


def deployed_image(session: Any, params: Any) -> str | None:
    """The vLLM image the LLMInferenceService runs now (None when it does not exist or names none)."""
    svc = service.get_service(session, params) or {}
    containers = ((svc.get("spec") or {}).get("template") or {}).get("containers") or []
    return next((c.get("image") for c in containers if c.get("name") == "main" and c.get("image")), None)


def update_image(session: Any, params: Any) -> str:
    """The image a rolling update moves to: the guide's next release, or back to ``params.vllm_image``
    when the service already runs that release (so a second run of the procedure still replaces pods)."""
    if deployed_image(session, params) == GUIDE_UPDATE_IMAGE:
        return params.vllm_image
    return GUIDE_UPDATE_IMAGE


def _wait_pods(session: Any, params: Any, condition: Condition, timeout: float) -> PodTracker:
    tracker = PodTracker(session, params.namespace, names.workload_selector(params.service_name), show=False)
    tracker.wait_for(condition, timeout)
    return tracker


def exactly_ready(count: int, image: str | None = None) -> Condition:
    """Exactly ``count`` workload pods, all Ready, none terminating (and all on ``image`` if given)."""

    def current(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [p for p in pods if not p["metadata"].get("deletionTimestamp")]

    def on_image(pod: dict[str, Any]) -> bool:
        main = next((c for c in pod["spec"].get("containers") or [] if c.get("name") == "main"), {})
        return image is None or main.get("image") == image

    def test(pods: list[dict[str, Any]]) -> bool:
        return (
            len(pods) == count
            and len(current(pods)) == count
            and all(is_ready(p) and on_image(p) for p in pods)
        )

    def missing(pods: list[dict[str, Any]]) -> str:
        ready = sum(1 for p in current(pods) if is_ready(p) and on_image(p))
        old = sum(1 for p in pods if not on_image(p))
        extra = f", {old} on the old image" if image is not None and old else ""
        return f"{ready}/{count} pods ready{extra}, {len(pods)} pods in all"

    what = f"exactly {count} pods ready" + (f" on {image}" if image else "")
    return Condition(what, test, missing)


# --- scaling ------------------------------------------------------------------------------------------


@dataclass
class ScaleResult:
    """What :func:`scale` (or :func:`scale_back`) did and how long the service took to be Ready."""

    replicas_before: int
    replicas_after: int
    quota: QuotaCheck | None
    steps: list[OpStep]
    time_to_ready_s: float
    time_to_ready_gke_s: float
    ready: int = 0  # replicas Ready at the end
    pods: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def table(self) -> pd.DataFrame:
        """The steps as a table."""
        return steps_table(self.steps)


def current_replicas(session: Any, params: Any) -> int:
    """``spec.replicas`` of the LLMInferenceService (0 when it does not exist)."""
    svc = service.get_service(session, params)
    return int(((svc or {}).get("spec") or {}).get("replicas") or 0)


def scale(
    session: Any, params: Any, replicas: int, *, timeout: float | None = None, show: bool = True
) -> ScaleResult:
    """Scale replicas and the TPU pool together (N replicas = N nodes), quota first; wait for Ready.

    Only the replicas change: the image the service runs now is kept (also after a rolling update
    to an image other than ``params.vllm_image``). Returns what was done; ``params`` are not changed
    (scale back with ``scale(session, params, params.replicas)``).
    """
    if replicas < 1:
        raise ValueError(f"replicas must be ≥ 1 (use scale_to_zero for 0), not {replicas}")
    timeout = timeout if timeout is not None else params.wait_s("ready_timeout_s")
    scale_factor = time_scale(session, params)
    before = current_replicas(session, params)
    image = deployed_image(session, params) or params.vllm_image
    target = params.model_copy(update={"replicas": replicas, "num_nodes": replicas, "vllm_image": image})
    quota = require_quota(session, params, replicas)
    steps: list[OpStep] = []
    started = time.monotonic()
    if replicas >= before:
        _timed(steps, scale_factor, f"resize node pool to {replicas}", lambda: _resize(session, target, show))
        _timed(steps, scale_factor, f"apply replicas: {replicas}", lambda: apply_service(session, target))
    else:
        _timed(steps, scale_factor, f"apply replicas: {replicas}", lambda: apply_service(session, target))
        _timed(
            steps,
            scale_factor,
            f"wait for {replicas} replicas",
            lambda: f"{len(_wait_pods(session, target, exactly_ready(replicas), timeout).pods)} pods",
        )
        _timed(steps, scale_factor, f"resize node pool to {replicas}", lambda: _resize(session, target, show))
    pods = _timed(
        steps, scale_factor, "wait for Ready", lambda: service.wait_ready(session, target, timeout, show=show)
    )
    took = time.monotonic() - started
    ready = service.replicas_ready(session, target)
    return ScaleResult(
        before, replicas, quota, steps, round(took, 2), round(took / scale_factor, 1), ready, pods
    )


def _resize(session: Any, params: Any, show: bool) -> str:
    step = cluster.resize(session, params, params.num_nodes, show=show)
    nodes = cluster.current_node_count(session, params)
    return f"{params.node_pool}: {nodes} nodes" + (f" ({'; '.join(step.notes)})" if step.notes else "")


# --- scale to zero and back ---------------------------------------------------------------------------


@dataclass
class ZeroResult:
    """The TPU pool at 0 nodes: what it took and what it saves."""

    steps: list[OpStep]
    nodes_before: int
    nodes_after: int
    chips_freed: int
    saved_per_hour: float | None
    currency: str
    pods: pd.DataFrame

    @property
    def table(self) -> pd.DataFrame:
        """The steps as a table."""
        return steps_table(self.steps)

    def text(self) -> str:
        """What scaling to zero saves, in words."""
        if self.saved_per_hour is None:
            return f"{self.chips_freed} TPU chips freed (set cost_per_chip_hour in params for a price)."
        return (
            f"{self.nodes_before} TPU nodes ({self.chips_freed} chips) released: saves "
            f"{self.saved_per_hour:.2f} {self.currency} per hour, {self.saved_per_hour * 24:.2f} per day. "
            "Kept: the cluster, its CPU pool, the operators and every object — the vLLM pods wait as "
            "Pending until nodes return."
        )


def hourly_cost(params: Any, nodes: int) -> float | None:
    """Price of ``nodes`` TPU nodes for one hour at the params' rate (None when no rate is set)."""
    if params.cost_per_chip_hour is None:
        return None
    return nodes * params.chips_per_node * params.cost_per_chip_hour


def scale_to_zero(session: Any, params: Any, *, show: bool = True) -> ZeroResult:
    """Resize the TPU pool to 0 nodes (the guide's scale to zero); the service's objects stay."""
    scale_factor = time_scale(session, params)
    nodes = cluster.current_node_count(session, params) or 0
    steps: list[OpStep] = []
    zero = params.model_copy(update={"num_nodes": 0})
    _timed(steps, scale_factor, "resize node pool to 0", lambda: _resize(session, zero, show))
    pods = pods_table(service.workload_pods(session, params))
    after = cluster.current_node_count(session, params) or 0
    saved = hourly_cost(params, nodes)
    return ZeroResult(steps, nodes, after, nodes * params.chips_per_node, saved, params.currency, pods)


def scale_back(session: Any, params: Any, *, timeout: float | None = None, show: bool = True) -> ScaleResult:
    """Restore the pool to ``num_nodes`` (quota first) and measure the time until the service is Ready."""
    timeout = (
        timeout
        if timeout is not None
        else params.wait_s("cluster_timeout_s") + params.wait_s("ready_timeout_s")
    )
    scale_factor = time_scale(session, params)
    quota = require_quota(session, params, params.num_nodes)
    steps: list[OpStep] = []
    started = time.monotonic()
    _timed(
        steps, scale_factor, f"resize node pool to {params.num_nodes}", lambda: _resize(session, params, show)
    )
    pods = _timed(
        steps, scale_factor, "wait for Ready", lambda: service.wait_ready(session, params, timeout, show=show)
    )
    took = time.monotonic() - started
    ready = service.replicas_ready(session, params)
    return ScaleResult(
        0, params.replicas, quota, steps, round(took, 2), round(took / scale_factor, 1), ready, pods
    )


# --- the background probe ------------------------------------------------------------------------------


class BackgroundProbe:
    """Sends completions through the gateway from a background thread until stopped; records each.

    No retries: a request that fails is a failure the user would have seen. Use as a context
    manager or ``start()`` / ``stop()``; ``df`` has one row per request (``measure.RECORD_COLUMNS``
    plus ``at``, the wall-clock start).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        concurrency: int = 2,
        interval_s: float = 0.05,
        max_tokens: int = 5,
        timeout_s: float = 60.0,
    ) -> None:
        from rhaii_nb.measure import Endpoint

        self.endpoint = Endpoint(base_url, model, timeout_s=timeout_s)
        self.concurrency = concurrency
        self.interval_s = interval_s
        self.max_tokens = max_tokens
        self.records: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def start(self) -> BackgroundProbe:
        """Start sending."""
        self._thread = threading.Thread(target=self._run, name="rhaii-background-probe", daemon=True)
        self._thread.start()
        return self

    def wait_for_answers(self, count: int, timeout: float) -> None:
        """Block until ``count`` more requests have been answered (or failed) than when called."""
        target = len(self.records) + count
        deadline = time.monotonic() + timeout
        while len(self.records) < target:
            if self._error is not None:
                raise RuntimeError(f"the background probe crashed: {self._error}") from self._error
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"the background probe got {count - (target - len(self.records))} of {count} answers "
                    f"within {timeout:.0f} s: is the gateway at {self.endpoint.base_url} answering?"
                )
            time.sleep(0.02)

    def stop(self, timeout: float | None = None) -> pd.DataFrame:
        """Stop (in-flight requests finish) and return the records."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout if timeout is not None else self.endpoint.timeout_s + 10)
            if self._thread.is_alive():
                raise TimeoutError("the background probe did not stop: a request is still in flight")
        if self._error is not None:
            raise RuntimeError(f"the background probe crashed: {self._error}") from self._error
        return self.df

    def __enter__(self) -> BackgroundProbe:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def df(self) -> pd.DataFrame:
        """One row per request so far."""
        from rhaii_nb.measure import RECORD_COLUMNS

        return pd.DataFrame(list(self.records), columns=[*RECORD_COLUMNS, "at"])

    @property
    def failed(self) -> int:
        """Requests that failed so far."""
        return sum(1 for r in self.records if r.get("error") is not None)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported by stop()
            self._error = exc

    async def _main(self) -> None:
        from rhaii_nb.measure import request_once

        t0 = time.perf_counter()
        wall0 = time.time()
        counter = iter(range(10**9))

        async def worker(client: Any) -> None:
            while not self._stop.is_set():
                i = next(counter)
                record = await request_once(
                    client,
                    self.endpoint,
                    f"Background probe {i}: say OK.",
                    max_tokens=self.max_tokens,
                    t0=t0,
                    index=i,
                )
                record["at"] = wall0 + record["t_start"]
                self.records.append(record)
                await asyncio.sleep(self.interval_s)

        async with self.endpoint.client(self.concurrency) as client:
            await asyncio.gather(*(worker(client) for _ in range(self.concurrency)))


# --- rolling update -----------------------------------------------------------------------------------


@dataclass
class RolloutResult:
    """A rolling update observed: the pods replaced, every request sent meanwhile, the surge node."""

    old_image: str
    new_image: str
    requests: pd.DataFrame
    timeline: pd.DataFrame
    steps: list[OpStep]
    surge_nodes: int
    seconds: float
    gke_seconds: float
    ready_on_new_image: int = 0  # workload pods Ready on the new image at the end

    @property
    def failed(self) -> int:
        """Requests that failed during the update (the criterion: zero)."""
        return int(self.requests["error"].notna().sum()) if len(self.requests) else 0

    @property
    def table(self) -> pd.DataFrame:
        """The steps as a table."""
        return steps_table(self.steps)

    def replacements(self) -> pd.DataFrame:
        """Replica by replica: when each new pod became Ready and each old pod went away."""
        tl = self.timeline
        if tl.empty:
            return pd.DataFrame(columns=["pod", "first_seen", "ready_at", "gone_at"])
        rows = []
        for pod, items in tl.groupby("pod", sort=False):
            ready = items[items["stage"].str.startswith("Running") & items["stage"].str.endswith("1/1")]
            ends = items["end"].dropna()
            rows.append(
                {
                    "pod": pod,
                    "first_seen": items["start"].min(),
                    "ready_at": ready["start"].min() if len(ready) else pd.NaT,
                    "gone_at": ends.max() if items["end"].notna().all() and len(ends) else pd.NaT,
                }
            )
        return pd.DataFrame(rows).sort_values("first_seen").reset_index(drop=True)

    def summary(self) -> dict[str, Any]:
        """Numbers a criteria cell checks."""
        answered = self.requests["replica"].dropna().value_counts().to_dict() if len(self.requests) else {}
        return {
            "old_image": self.old_image,
            "new_image": self.new_image,
            "requests": len(self.requests),
            "failed": self.failed,
            "errors": self.requests["error"].dropna().value_counts().to_dict() if len(self.requests) else {},
            "replicas_that_answered": len(answered),
            "surge_nodes": self.surge_nodes,
            "ready_on_new_image": self.ready_on_new_image,
            "seconds": self.seconds,
            "gke_seconds": self.gke_seconds,
        }


def _deployment_fences(session: Any, params: Any, replicas: int) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) of the vLLM Deployment, resolved as Kubernetes does."""
    deploy = session.apps.read_namespaced_deployment(
        names.workload_deployment(params.service_name), params.namespace
    )
    rolling = deploy.spec.strategy.rolling_update if deploy.spec.strategy else None
    surge = getattr(rolling, "max_surge", None)
    unavailable = getattr(rolling, "max_unavailable", None)
    surge = "25%" if surge is None else surge  # the API server's defaults
    unavailable = "25%" if unavailable is None else unavailable
    return _fence(surge, replicas, True), _fence(unavailable, replicas, False)


def _fence(value: Any, replicas: int, round_up: bool) -> int:
    """An int-or-percent against ``replicas`` (surge rounds up, unavailable down)."""
    text = str(value).strip()
    if text.endswith("%"):
        raw = float(text[:-1]) * replicas / 100
        return math.ceil(raw) if round_up else math.floor(raw)
    return int(text)


def surge_nodes_needed(session: Any, params: Any) -> int:
    """Extra TPU nodes a rolling update needs to make progress (0 or 1 with one replica per node)."""
    surge, unavailable = _deployment_fences(session, params, params.replicas)
    nodes = cluster.current_node_count(session, params) or 0
    if unavailable >= 1 or surge == 0:
        return 0  # an old replica stops first and frees its node
    return max(0, params.replicas + 1 - nodes)


def rolling_update(
    session: Any,
    params: Any,
    image: str,
    *,
    timeout: float | None = None,
    probe_concurrency: int = 2,
    show: bool = True,
) -> RolloutResult:
    """Update the vLLM image and watch the replicas replaced one by one while a probe runs.

    Returns a :class:`RolloutResult`; its ``failed`` must be 0. The service is left on ``image``;
    roll back with ``rolling_update(session, params, params.vllm_image)``.
    """
    timeout = (
        timeout
        if timeout is not None
        else params.wait_s("rollout_timeout_s") + params.wait_s("ready_timeout_s")
    )
    scale_factor = time_scale(session, params)
    old_image = deployed_image(session, params) or ""
    steps: list[OpStep] = []
    extra = surge_nodes_needed(session, params)
    with_surge = params.model_copy(update={"num_nodes": params.num_nodes + extra})
    if extra:
        require_quota(session, params, with_surge.num_nodes)
        _timed(steps, scale_factor, f"add {extra} surge node", lambda: _resize(session, with_surge, show))
    updated = params.model_copy(update={"vllm_image": image})
    tracker = PodTracker(session, params.namespace, names.workload_selector(params.service_name), show=show)
    tracker._list()  # the pods before the update belong in the timeline
    probe = BackgroundProbe(
        session.service_base_url(),
        _served_model(session, params),
        concurrency=probe_concurrency,
        timeout_s=params.request_timeout_s,
    )
    all_new = exactly_ready(params.replicas, image)
    started = time.monotonic()
    with probe:
        probe.wait_for_answers(probe_concurrency, params.request_timeout_s)  # a baseline before the update
        _timed(steps, scale_factor, f"apply image {image}", lambda: apply_service(session, updated))
        _timed(
            steps,
            scale_factor,
            "replace replicas one by one",
            lambda: f"{len(tracker.wait_for(all_new, timeout))} pods on the new image",
        )
        if extra:
            # GKE picks the node a resize removes; if it holds a new replica, that replica moves to
            # the node an old one freed (and starts again there), so keep probing until it is Ready.
            _timed(steps, scale_factor, "remove the surge node", lambda: _resize(session, params, show))
            _timed(
                steps,
                scale_factor,
                "wait for Ready",
                lambda: f"{len(tracker.wait_for(all_new, timeout))} pods Ready",
            )
        probe.wait_for_answers(probe_concurrency, params.request_timeout_s)  # and after it
        on_new_image = len(tracker.wait_for(all_new, timeout))
    took = time.monotonic() - started
    return RolloutResult(
        old_image,
        image,
        probe.df,
        tracker.timeline(),
        steps,
        extra,
        round(took, 2),
        round(took / scale_factor, 1),
        on_new_image,
    )


def _served_model(session: Any, params: Any) -> str:
    from rhaii_nb.probes import detect_model

    try:
        return detect_model(session, params, via="external")
    except Exception:
        return params.served_model_name
