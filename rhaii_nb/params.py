"""Typed run parameters: one model loaded from a params YAML plus overrides, validated up front.

A notebook's ``parameters`` cell holds two values, which papermill may override::

    params_file = "../params/local.yaml"  # params YAML, relative to the notebook
    overrides = {}  # field values that win over the file

and the next cell calls ``params = load_params(params_file, overrides)``.

Validation happens before anything is created and lists every problem at once (``ParamsError``),
each naming the field, the bad value and the fix. Relative paths in a params file are relative to
that file's directory; relative paths in ``overrides`` are relative to the current directory.
Secret files are only ever handled as paths here: their values are never loaded into the model.
"""

from __future__ import annotations

import contextlib
import difflib
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rhaii_nb import names
from rhaii_nb.scenarios import SCENARIOS

PLACEHOLDER_PROJECTS = frozenset({"YOUR_PROJECT_ID", "YOUR_PROJECT", "your-project-id", "[your-project-id]"})
PATH_FIELDS = ("hf_token_file", "pull_secret_file", "twin_home")
SECRET_FIELDS = ("hf_token_file", "pull_secret_file")
DEFAULT_PARAMS_RELATIVE = Path("params") / "local.yaml"
# JSON object of field values applied between the file and the explicit overrides: lets a test session
# (nbval runs notebooks as stored) point every notebook at its own twin without editing them.
OVERRIDES_ENV = "RHAII_NB_OVERRIDES"
# On the twin, waits shrink with time_scale but never below this: process start-up does not scale.
TWIN_MIN_WAIT_S = 30.0

_RFC1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_GCP_PROJECT_ID = re.compile(r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$")
_TOPOLOGY = re.compile(r"^[1-9][0-9]*(x[1-9][0-9]*){1,2}$")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the parameters, told the way a trainee can act on it."""

    field: str
    value: Any
    message: str
    fix: str

    def __str__(self) -> str:
        return f"- {self.field} = {self.value!r}: {self.message}\n    fix: {self.fix}"


class ParamsError(ValueError):
    """Every problem found in one set of parameters, raised before anything is created."""

    def __init__(self, problems: list[Problem], source: str = "parameters") -> None:
        self.problems = problems
        self.source = source
        count = len(problems)
        header = f"{source}: {count} problem{'s' if count != 1 else ''} to fix before anything is created"
        super().__init__(header + "\n" + "\n".join(str(p) for p in problems))


class RunParams(BaseModel):
    """Everything one run of the runbook needs; derived values are properties, not fields."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)

    # Where to run.
    target: Literal["local", "gke"] = Field("local", description="'local' (the twin) or 'gke' (real GKE)")
    project: str | None = Field(None, description="Google Cloud project id (required for gke)")
    zone: str = Field("europe-west4-a", description="zone offering TPU v6e")
    cluster_name: str = Field("rhaii-tpu-scaleout-cluster", description="GKE cluster name")
    node_pool: str = Field("tpu-pool", description="TPU node pool name")
    num_nodes: int = Field(3, description="TPU nodes in the pool (one replica per node)")
    machine_type: str = Field("ct6e-standard-4t", description="TPU v6e machine type")
    tpu_topology: str = Field("2x2", description="TPU slice topology of one node")
    max_tpu_chips: int | None = Field(
        None, description="your TPU v6e quota in chips, if you want it checked before anything starts"
    )
    gke_api_endpoint: str | None = Field(
        None, description="override the GKE API base URL (testing the gke path against the twin)"
    )

    # What to deploy.
    namespace: str = Field("rhaii-inference", description="namespace of the workload")
    service_name: str = Field("qwen-3b-tpu-svc", description="LLMInferenceService name")
    model_uri: str = Field("hf://Qwen/Qwen2.5-3B-Instruct", description="model location (hf://...)")
    model_name: str | None = Field(None, description="served model name; default: from model_uri")
    vllm_image: str = Field("registry.redhat.io/rhaiis/vllm-tpu-rhel9:3.2.5", description="vLLM TPU image")
    replicas: int = Field(3, description="vLLM replicas")
    apply_network_policies: bool = Field(False, description="apply the four NetworkPolicies (optional step)")

    # Secrets travel as file paths only.
    hf_token_file: Path | None = Field(None, description="HuggingFace token (or filled-in secret template)")
    pull_secret_file: Path | None = Field(
        None, description="registry.redhat.io dockerconfigjson (or filled-in secret template)"
    )

    # Waits, in seconds of real GKE time (the twin scales them, see ``wait_s``).
    cluster_timeout_s: float = Field(1800.0, description="cluster + node pool creation")
    operators_timeout_s: float = Field(900.0, description="operators ready")
    ready_timeout_s: float = Field(1200.0, description="LLMInferenceService Ready")
    rollout_timeout_s: float = Field(600.0, description="a rollout or restart")
    delete_timeout_s: float = Field(1800.0, description="teardown")
    request_timeout_s: float = Field(60.0, description="one HTTP request to the service")

    # The twin.
    time_scale: float = Field(
        1.0, description="twin only: multiplies simulated durations (0.01 = 100x faster)"
    )
    scenario: list[str] = Field(default_factory=list, description="twin only: failure scenarios to stage")
    twin_home: Path | None = Field(
        None,
        validate_default=True,
        description="twin only: state directory (default $RHAII_TWIN_HOME or ~/.cache/rhaii-nb/twin)",
    )

    # Performance phases.
    cache_test_requests: int = Field(10, description="requests in the cache-routing test")
    cache_test_prefix_tokens: int = Field(512, description="shared prefix length (tokens) of the cache test")
    cache_test_max_tokens: int = Field(10, description="max_tokens of each cache-test request")
    load_requests: int = Field(100, description="requests in the throughput test")
    load_concurrency: int = Field(10, description="concurrent requests in the throughput test")
    load_prefix_tokens: int = Field(256, description="shared prefix length (tokens) of the throughput test")
    load_max_tokens: int = Field(10, description="max_tokens of each throughput-test request")
    load_max_duration_s: float = Field(120.0, description="the throughput test stops by itself after this")

    # Presentation and safety.
    cost_per_chip_hour: float | None = Field(
        None, description="price of one TPU v6e chip-hour, for the cost line"
    )
    currency: str = Field("USD", description="currency of cost_per_chip_hour")
    verbose: bool = Field(False, description="show more detail in progress output")
    confirm_delete: bool = Field(False, description="teardown deletes the cluster only when true")
    tls_verify: bool = Field(True, description="verify TLS against the cluster CA (false is loud and unsafe)")

    @field_validator("scenario", mode="before")
    @classmethod
    def _one_scenario_is_a_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [value] if value else []
        return [] if value is None else value

    @field_validator("twin_home", mode="after")
    @classmethod
    def _default_twin_home(cls, value: Path | None) -> Path:
        if value is not None:
            return value
        env = os.environ.get("RHAII_TWIN_HOME")
        return Path(env) if env else Path.home() / ".cache" / "rhaii-nb" / "twin"

    # ----- derived values -----------------------------------------------------------------------

    @property
    def chips_per_node(self) -> int:
        """TPU chips on one node of ``machine_type`` (from the GCP catalog)."""
        return _catalog().machine_types[self.machine_type].chips

    @property
    def chips_needed(self) -> int:
        """Chips the replicas use: replicas × chips per node."""
        return self.replicas * self.chips_per_node

    @property
    def pool_chips(self) -> int:
        """Chips the node pool holds (what counts against quota): num_nodes × chips per node."""
        return self.num_nodes * self.chips_per_node

    @property
    def region(self) -> str:
        """Region of ``zone``, e.g. europe-west4."""
        return _catalog().region_of(self.zone)

    @property
    def served_model_name(self) -> str:
        """``model_name`` or the model path of ``model_uri`` (hf://Org/Model → Org/Model)."""
        if self.model_name:
            return self.model_name
        return self.model_uri.split("://", 1)[-1]

    @property
    def gateway_path_prefix(self) -> str:
        """Path under the inference gateway where the service answers, ``/<namespace>/<service>``."""
        return f"/{self.namespace}/{self.service_name}"

    @property
    def resource_names(self) -> dict[str, str]:
        """Names of the objects KServe creates for the service (from ``rhaii_nb.names``)."""
        svc, ns = self.service_name, self.namespace
        return {
            "workload_deployment": names.workload_deployment(svc),
            "workload_service": names.workload_service(svc),
            "scheduler_deployment": names.scheduler_deployment(svc),
            "epp_service": names.epp_service(svc),
            "epp_service_fqdn": names.epp_service_fqdn(svc, ns),
            "inference_pool": names.inference_pool(svc),
            "http_route": names.http_route(svc),
            "tls_secret": names.tls_secret(svc),
            "service_account": names.service_account(svc),
        }

    @property
    def gke_location_path(self) -> str:
        """``projects/<project>/locations/<zone>``: parent of the cluster in the GKE API."""
        return f"projects/{self.project}/locations/{self.zone}"

    @property
    def gke_cluster_path(self) -> str:
        """Full GKE API name of the cluster."""
        return f"{self.gke_location_path}/clusters/{self.cluster_name}"

    def wait_s(self, timeout_field: str) -> float:
        """The wait for ``timeout_field`` in wall-clock seconds: as given on GKE, scaled on the twin."""
        seconds = float(getattr(self, timeout_field))
        if self.target == "gke":
            return seconds
        return min(seconds, max(seconds * self.time_scale, TWIN_MIN_WAIT_S))

    def secret_status(self) -> dict[str, str]:
        """For each secret file: ``present``, ``absent`` or ``not set`` — never its content."""
        status = {}
        for name in SECRET_FIELDS:
            path = getattr(self, name)
            status[name] = "not set" if path is None else ("present" if Path(path).is_file() else "absent")
        return status

    def resolved(self) -> dict[str, Any]:
        """Every field plus the derived values, JSON-friendly, secrets as present/absent only."""
        data = self.model_dump(mode="json")
        for name in SECRET_FIELDS:
            data[name] = f"{data[name]} ({self.secret_status()[name]})" if data[name] else "not set"
        derived: dict[str, Any] = {
            "served_model_name": self.served_model_name,
            "gateway_path_prefix": self.gateway_path_prefix,
            **self.resource_names,
        }
        # An unknown zone / machine type has no derived values; validation reports it.
        with contextlib.suppress(KeyError, ValueError):
            derived.update(
                chips_per_node=self.chips_per_node,
                chips_needed=self.chips_needed,
                pool_chips=self.pool_chips,
                region=self.region,
            )
        data["derived"] = derived
        return data

    def summary_dict(self) -> dict[str, Any]:
        """``resolved()`` flattened to one level (derived values prefixed ``derived.``), for run summaries."""
        data = self.resolved()
        derived = data.pop("derived")
        data.update({f"derived.{key}": value for key, value in derived.items()})
        return data


# ----- loading -------------------------------------------------------------------------------------


def load_params(
    path: str | os.PathLike[str] | None = None, overrides: dict[str, Any] | None = None
) -> RunParams:
    """Load, merge and validate parameters; raise ``ParamsError`` listing every problem.

    ``path`` None means ``params/local.yaml`` in the current directory or the nearest parent that
    has one (notebooks run from ``notebooks/``). Env ``RHAII_NB_OVERRIDES`` (a JSON object) is applied
    after the file and before ``overrides``.
    """
    params_path = _find_default_params() if path is None else Path(path)
    source = str(params_path)
    if not params_path.is_file():
        raise ParamsError(
            [
                Problem(
                    "params file",
                    str(params_path),
                    "this file does not exist",
                    "give the path of a params YAML such as params/local.yaml",
                )
            ],
            source,
        )
    try:
        data = yaml.safe_load(params_path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ParamsError(
            [Problem("params file", source, f"not valid YAML ({exc})", "fix the YAML syntax at that line")],
            source,
        ) from None
    if not isinstance(data, dict):
        raise ParamsError(
            [
                Problem(
                    "params file",
                    source,
                    "the top level must be a mapping of field: value",
                    "see params/local.yaml",
                )
            ],
            source,
        )
    base_dir = params_path.resolve().parent
    data = _resolve_paths(data, base_dir)
    data.update(_resolve_paths(env_overrides(), Path.cwd()))
    data.update(_resolve_paths(dict(overrides or {}), Path.cwd()))
    return validate_params(data, source)


def env_overrides() -> dict[str, Any]:
    """Field values from env ``RHAII_NB_OVERRIDES`` (a JSON object); ``{}`` when unset."""
    import json

    raw = os.environ.get(OVERRIDES_ENV, "").strip()
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ParamsError(
            [
                Problem(
                    OVERRIDES_ENV,
                    raw[:80],
                    f"not valid JSON ({exc})",
                    'set it to a JSON object: {"replicas": 2}',
                )
            ],
            OVERRIDES_ENV,
        ) from None
    if not isinstance(value, dict):
        raise ParamsError(
            [
                Problem(
                    OVERRIDES_ENV, raw[:80], "not a JSON object", 'set it to a JSON object: {"replicas": 2}'
                )
            ],
            OVERRIDES_ENV,
        )
    return value


def validate_params(data: dict[str, Any], source: str = "parameters") -> RunParams:
    """Build ``RunParams`` from a mapping and run every check; ``ParamsError`` lists all problems."""
    problems = _unknown_field_problems(data)
    known = {key: value for key, value in data.items() if key in RunParams.model_fields}
    bad_fields: set[str] = set()
    try:
        params = RunParams(**known)
    except ValidationError as exc:
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "parameters"
            bad_fields.add(field)
            problems.append(_type_problem(field, known.get(field), error["msg"]))
        params = RunParams(**{k: v for k, v in known.items() if k not in bad_fields})
    problems.extend(_semantic_problems(params, bad_fields))
    if problems:
        raise ParamsError(problems, source)
    return params


def _find_default_params() -> Path:
    here = Path.cwd().resolve()
    for directory in (here, *here.parents):
        candidate = directory / DEFAULT_PARAMS_RELATIVE
        if candidate.is_file():
            return candidate
    return here / DEFAULT_PARAMS_RELATIVE


def _resolve_paths(data: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    for key in PATH_FIELDS:
        value = data.get(key)
        if isinstance(value, str | os.PathLike) and str(value):
            path = Path(os.path.expanduser(str(value)))
            data[key] = Path(os.path.normpath(path if path.is_absolute() else base_dir / path))
    return data


def _catalog():
    from rhaii_nb.gcp_catalog import load_catalog

    return load_catalog()


# ----- checks ---------------------------------------------------------------------------------------


def _unknown_field_problems(data: dict[str, Any]) -> list[Problem]:
    problems = []
    fields = list(RunParams.model_fields)
    for key, value in data.items():
        if key in RunParams.model_fields:
            continue
        close = difflib.get_close_matches(str(key), fields, n=1, cutoff=0.6)
        fix = (
            f"did you mean '{close[0]}'?"
            if close
            else "remove it; known fields are listed by `rhaii-nb params show`"
        )
        problems.append(Problem(str(key), value, "unknown field", fix))
    return problems


def _type_problem(field: str, value: Any, pydantic_message: str) -> Problem:
    info = RunParams.model_fields.get(field)
    if info is None:
        return Problem(field, value, pydantic_message, "correct the value")
    example = info.default if info.default is not None else None
    hint = f" ({info.description})" if info.description else ""
    fix = f"use a value like {example!r}{hint}" if example not in (None, []) else f"correct the value{hint}"
    if field == "target":
        fix = "use 'local' for the twin on this machine or 'gke' for real Google Cloud"
    return Problem(field, value, pydantic_message.rstrip("."), fix)


def _semantic_problems(p: RunParams, bad: set[str]) -> list[Problem]:
    problems: list[Problem] = []

    def ok(*fields: str) -> bool:
        return not (bad & set(fields))

    catalog = _catalog()
    for field in ("namespace", "service_name", "cluster_name", "node_pool"):
        if ok(field):
            problems.extend(_rfc1123_problems(field, getattr(p, field)))
    if (
        ok("service_name")
        and _RFC1123_LABEL.match(p.service_name)
        and len(names.epp_service(p.service_name)) > 63
    ):
        problems.append(
            Problem(
                "service_name",
                p.service_name,
                f"too long: KServe names its EPP service '{names.epp_service(p.service_name)}' "
                "(over 63 characters)",
                "use a name of at most 51 characters",
            )
        )

    for field in ("num_nodes", "replicas", "cache_test_requests", "load_requests", "load_concurrency"):
        if ok(field) and getattr(p, field) < 1:
            problems.append(
                Problem(field, getattr(p, field), "must be at least 1", "use a positive whole number")
            )
    for field in (
        "cache_test_prefix_tokens",
        "load_prefix_tokens",
        "cache_test_max_tokens",
        "load_max_tokens",
    ):
        if ok(field) and getattr(p, field) < 0:
            problems.append(Problem(field, getattr(p, field), "cannot be negative", "use 0 or more"))
    for field in (
        "cluster_timeout_s",
        "operators_timeout_s",
        "ready_timeout_s",
        "rollout_timeout_s",
        "delete_timeout_s",
        "request_timeout_s",
        "load_max_duration_s",
    ):
        value = getattr(p, field)
        if ok(field) and not (value > 0 and math.isfinite(value)):
            problems.append(
                Problem(field, value, "a wait must be a positive number of seconds", "use e.g. 600")
            )

    if ok("replicas", "num_nodes") and p.replicas >= 1 and p.num_nodes >= 1 and p.replicas > p.num_nodes:
        problems.append(
            Problem(
                "replicas",
                p.replicas,
                f"more replicas than TPU nodes (num_nodes = {p.num_nodes}); each replica needs a whole node",
                f"set replicas to at most {p.num_nodes}, or num_nodes to {p.replicas}",
            )
        )

    if ok("time_scale") and not (p.time_scale > 0 and math.isfinite(p.time_scale)):
        problems.append(
            Problem(
                "time_scale",
                p.time_scale,
                "must be greater than 0 (it multiplies every simulated duration)",
                "use 1 for real-time, 0.01 to run 100x faster",
            )
        )

    if ok("scenario"):
        for name in p.scenario:
            if name not in SCENARIOS:
                close = difflib.get_close_matches(name, list(SCENARIOS), n=1)
                hint = f"did you mean '{close[0]}'? " if close else ""
                problems.append(
                    Problem(
                        "scenario", name, "unknown scenario", f"{hint}known: {', '.join(sorted(SCENARIOS))}"
                    )
                )
        if p.target == "gke" and p.scenario:
            problems.append(
                Problem(
                    "scenario",
                    p.scenario,
                    "scenarios are staged by the local twin; real GKE cannot stage them",
                    "remove scenario, or set target: local",
                )
            )

    zone_known = ok("zone") and p.zone in catalog.zones_with_tpu_v6e
    if ok("zone") and not zone_known:
        close = difflib.get_close_matches(p.zone, sorted(catalog.zones_with_tpu_v6e), n=1, cutoff=0.8)
        hint = f"did you mean '{close[0]}'? " if close else ""
        problems.append(
            Problem(
                "zone",
                p.zone,
                "this zone does not offer TPU v6e",
                f"{hint}use one of: {', '.join(sorted(catalog.zones_with_tpu_v6e))}",
            )
        )

    machine = catalog.machine_types.get(p.machine_type) if ok("machine_type") else None
    if ok("machine_type") and machine is None:
        problems.append(
            Problem(
                "machine_type",
                p.machine_type,
                "not a TPU v6e machine type",
                f"use one of: {', '.join(sorted(catalog.machine_types))} (the guide uses ct6e-standard-4t)",
            )
        )
    if machine is not None and ok("tpu_topology"):
        problems.extend(_topology_problems(p, machine.chips, list(getattr(machine, "topologies", []) or [])))

    if machine is not None and ok("num_nodes", "max_tpu_chips") and p.max_tpu_chips is not None:
        pool_chips = p.num_nodes * machine.chips
        if pool_chips > p.max_tpu_chips:
            problems.append(
                Problem(
                    "num_nodes",
                    p.num_nodes,
                    f"{p.num_nodes} nodes × {machine.chips} chips = {pool_chips} chips, over your stated "
                    f"quota max_tpu_chips = {p.max_tpu_chips}",
                    f"use at most {p.max_tpu_chips // machine.chips} nodes, or request more TPU v6e quota",
                )
            )
    if ok("max_tpu_chips") and p.max_tpu_chips is not None and p.max_tpu_chips < 0:
        problems.append(
            Problem("max_tpu_chips", p.max_tpu_chips, "cannot be negative", "give your quota in chips")
        )

    if p.target == "gke" and ok("project"):
        problems.extend(_project_problems(p.project))

    for field in SECRET_FIELDS:
        if ok(field):
            problems.extend(_secret_file_problems(p, field))

    if ok("model_uri") and "://" not in p.model_uri:
        problems.append(
            Problem("model_uri", p.model_uri, "not a storage URI", "use e.g. hf://Qwen/Qwen2.5-3B-Instruct")
        )
    if ok("cost_per_chip_hour") and p.cost_per_chip_hour is not None and p.cost_per_chip_hour < 0:
        problems.append(
            Problem(
                "cost_per_chip_hour",
                p.cost_per_chip_hour,
                "cannot be negative",
                "give your price per chip-hour",
            )
        )
    if ok("gke_api_endpoint") and p.gke_api_endpoint and not re.match(r"^https?://", p.gke_api_endpoint):
        problems.append(
            Problem(
                "gke_api_endpoint",
                p.gke_api_endpoint,
                "not a URL",
                "use e.g. http://127.0.0.1:8081 or leave unset",
            )
        )
    return problems


def _rfc1123_problems(field: str, value: str) -> list[Problem]:
    if len(value) <= 63 and _RFC1123_LABEL.match(value):
        return []
    suggestion = re.sub(r"[^a-z0-9-]+", "-", value.lower()).strip("-")[:63].strip("-") or "my-name"
    return [
        Problem(
            field,
            value,
            "not a valid Kubernetes name (RFC 1123: lowercase letters, digits and '-', starting and ending "
            "with a letter or digit, at most 63 characters)",
            f"use e.g. '{suggestion}'",
        )
    ]


def _topology_problems(p: RunParams, chips: int, topologies: list[str]) -> list[Problem]:
    topology = p.tpu_topology
    if not _TOPOLOGY.match(topology):
        return [Problem("tpu_topology", topology, "not a topology like 2x2 or 2x2x1", "use e.g. '2x2'")]
    slice_chips = math.prod(int(x) for x in topology.split("x"))
    if slice_chips == chips and (not topologies or _same_topology(topology, topologies)):
        return []
    if slice_chips != chips and slice_chips == p.num_nodes * chips:
        message = (
            f"topology {topology} is a multi-host slice of {slice_chips} chips over {p.num_nodes} nodes; "
            "this runbook runs one replica per single-host node"
        )
    else:
        message = (
            f"topology {topology} has {slice_chips} chips but one {p.machine_type} node has {chips} "
            f"(and num_nodes × chips = {p.num_nodes * chips})"
        )
    expected = topologies[0] if topologies else ("2x2" if chips == 4 else f"a {chips}-chip topology")
    return [Problem("tpu_topology", topology, message, f"use '{expected}' for {p.machine_type}")]


def _same_topology(topology: str, topologies: list[str]) -> bool:
    def norm(t: str) -> str:
        return t[:-2] if t.endswith("x1") and t.count("x") == 2 else t

    return norm(topology) in {norm(t) for t in topologies}


def _project_problems(project: str | None) -> list[Problem]:
    if not project:
        return [
            Problem(
                "project",
                project,
                "target gke needs a Google Cloud project",
                "set project to your project id (gcloud projects list shows it)",
            )
        ]
    if project in PLACEHOLDER_PROJECTS:
        return [
            Problem(
                "project",
                project,
                "still the placeholder from the example file",
                "replace it with your project id (gcloud projects list shows it)",
            )
        ]
    if not _GCP_PROJECT_ID.match(project):
        return [
            Problem(
                "project",
                project,
                "not a valid project id (6-30 characters: lowercase letters, digits, '-', "
                "starting with a letter)",
                "copy the PROJECT_ID column of `gcloud projects list`",
            )
        ]
    return []


def _secret_file_problems(p: RunParams, field: str) -> list[Problem]:
    path = getattr(p, field)
    what = "HuggingFace token" if field == "hf_token_file" else "Red Hat registry pull secret"
    template = "huggingface-token" if field == "hf_token_file" else "redhat-pull"
    if path is None:
        if p.target == "gke":
            return [
                Problem(
                    field,
                    None,
                    f"target gke needs the {what} file",
                    f"copy manifests/templates/{template}.yaml.template, fill it in, "
                    f"and set {field} to its path",
                )
            ]
        return [
            Problem(
                field,
                None,
                f"the twin needs a (fake) {what} file too",
                f"set {field} to the file in params/twin-secrets/",
            )
        ]
    if not Path(path).is_file():
        return [
            Problem(
                field,
                str(path),
                f"the {what} file does not exist",
                f"create it from manifests/templates/{template}.yaml.template "
                "(paths are relative to the params file)",
            )
        ]
    return []
