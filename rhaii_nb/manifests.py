"""The runbook's manifests: load them from ``manifests/``, apply params as typed overrides, build secrets.

The YAML files are plain Kubernetes objects with the guide's values, valid as they stand (so the
guide's ``kubectl apply -f`` works on them). The runbook loads them and sets the values that come
from params on the loaded objects — namespace, service name and the names derived from it (the
EnvoyFilters' EPP cluster and route names), replicas, model, image, TPU shape — never by text
templating. Secrets are built from the params' secret files and never shown.
"""

from __future__ import annotations

import base64
import copy
import shlex
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from rhaii_nb import names, redact
from rhaii_nb.schema_validation import (
    HF_SECRET_KEY,
    HF_SECRET_NAME,
    PULL_SECRET_NAME,
    TPU_RESOURCE,
    TPU_TOPOLOGY_LABEL,
    object_ref,
    validate_objects,
)
from rhaii_nb.secret_files import read_dockerconfigjson, read_hf_token

MANIFESTS_DIR = Path(__file__).resolve().parents[1] / "manifests"
# The manifests name the guide's namespace; objects elsewhere (the gateway's) keep theirs.
FILE_NAMESPACE = "rhaii-inference"
GATEWAY_NAMESPACE = names.GATEWAY_NAMESPACE
EPP_GRPC_PORT = 9002
# Route rules of KServe's managed HTTPRoute that go through the InferencePool (and so the EPP).
EPP_ROUTE_RULES = (0, 1)

GROUPS: dict[str, tuple[str, ...]] = {
    "namespace": ("namespace.yaml",),
    "inference-service": ("llmisvc-tpu-caching.yaml",),
    "envoyfilters": (
        "envoyfilter-epp-mtls-fix-tpu.yaml",
        "envoyfilter-ext-proc-tpu.yaml",
        "envoyfilter-route-extproc-body.yaml",
    ),
    "networkpolicies": (
        "networkpolicies/allow-gateway-to-vllm.yaml",
        "networkpolicies/allow-epp-scheduler.yaml",
        "networkpolicies/allow-istio.yaml",
        "networkpolicies/allow-vllm-egress.yaml",
    ),
}
SECRET_TEMPLATES = ("templates/huggingface-token.yaml.template", "templates/redhat-pull.yaml.template")


class ManifestError(ValueError):
    """A manifest file is missing or not a set of Kubernetes objects."""


@dataclass
class Manifest:
    """One object and the file it came from."""

    source: str
    obj: dict[str, Any]

    @property
    def ref(self) -> str:
        """``Kind/namespace/name``."""
        return object_ref(self.obj)


class ManifestSet:
    """Objects in apply order, each with its source file."""

    def __init__(self, items: Iterable[Manifest]) -> None:
        self.items = list(items)

    @property
    def objects(self) -> list[dict[str, Any]]:
        """The objects, in order."""
        return [item.obj for item in self.items]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        """The objects of one kind."""
        return [obj for obj in self.objects if obj.get("kind") == kind]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.objects)

    def __len__(self) -> int:
        return len(self.items)

    def __add__(self, other: ManifestSet) -> ManifestSet:
        return ManifestSet([*self.items, *other.items])

    def table(self) -> pd.DataFrame:
        """One row per object: kind, namespace, name, file."""
        rows = [
            {
                "kind": m.obj.get("kind"),
                "namespace": (m.obj.get("metadata") or {}).get("namespace") or "",
                "name": (m.obj.get("metadata") or {}).get("name"),
                "file": m.source,
            }
            for m in self.items
        ]
        return pd.DataFrame(rows, columns=["kind", "namespace", "name", "file"])

    def __repr__(self) -> str:
        return f"ManifestSet({', '.join(m.ref for m in self.items)})"


class SecretObject(dict):
    """A Secret manifest whose printed form never shows its data."""

    def __repr__(self) -> str:
        meta = self.get("metadata") or {}
        keys = sorted((self.get("data") or {}) | (self.get("stringData") or {}))
        where = f"{meta.get('namespace')}/{meta.get('name')}"
        return f"<Secret {where} type={self.get('type')} keys={keys} (values hidden)>"

    __str__ = __repr__


# ----- loading -------------------------------------------------------------------------------------


def load_manifests(*groups_or_files: str, directory: str | Path | None = None) -> ManifestSet:
    """Load manifest groups (``namespace``, ``inference-service``, ``envoyfilters``, ``networkpolicies``)
    or files (relative to ``directory``, default the project's ``manifests/``). No argument: all groups.
    """
    base = Path(directory) if directory is not None else MANIFESTS_DIR
    wanted = groups_or_files or tuple(GROUPS)
    items: list[Manifest] = []
    for entry in wanted:
        for relative in GROUPS.get(entry, (entry,)):
            items.extend(_load_file(base, relative))
    return ManifestSet(items)


def _load_file(base: Path, relative: str) -> list[Manifest]:
    path = base / relative
    if not path.is_file():
        known = ", ".join(GROUPS)
        raise ManifestError(f"{path}: no such manifest file (manifest groups: {known})")
    try:
        docs = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]
    except yaml.YAMLError as exc:
        raise ManifestError(f"{path}: not valid YAML: {exc}") from None
    for doc in docs:
        if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
            raise ManifestError(
                f"{path}: every document must be a Kubernetes object with apiVersion and kind"
            )
    return [Manifest(relative, doc) for doc in docs]


# ----- typed overrides from params -----------------------------------------------------------------


def with_params(manifests: ManifestSet, params: Any) -> ManifestSet:
    """A copy of ``manifests`` with the params' values set on each object (the input is unchanged)."""
    items = []
    for item in manifests.items:
        obj = copy.deepcopy(item.obj)
        _set_namespace(obj, params.namespace)
        kind = obj.get("kind")
        if kind == "LLMInferenceService":
            _override_llmisvc(obj, params)
        elif kind == "EnvoyFilter":
            _override_envoyfilter(obj, params)
        items.append(Manifest(item.source, obj))
    return ManifestSet(items)


def manifests_for(params: Any, *groups: str, directory: str | Path | None = None) -> ManifestSet:
    """Load ``groups``, apply ``params``, validate (schemas + guide rules); ``ManifestInvalid`` if not."""
    manifest_set = with_params(load_manifests(*groups, directory=directory), params)
    validate_objects(manifest_set.objects, params.chips_per_node, params.tpu_topology)
    return manifest_set


def _set_namespace(obj: dict[str, Any], namespace: str) -> None:
    meta = obj.setdefault("metadata", {})
    if obj.get("kind") == "Namespace":
        if meta.get("name") == FILE_NAMESPACE:
            meta["name"] = namespace
        return
    if meta.get("namespace", FILE_NAMESPACE) == FILE_NAMESPACE:
        meta["namespace"] = namespace


def _override_llmisvc(obj: dict[str, Any], params: Any) -> None:
    obj["metadata"]["name"] = params.service_name
    spec = obj.setdefault("spec", {})
    spec["replicas"] = params.replicas
    model = spec.setdefault("model", {})
    model["uri"] = params.model_uri
    model["name"] = params.served_model_name
    template = spec.setdefault("template", {})
    template.setdefault("nodeSelector", {})[TPU_TOPOLOGY_LABEL] = params.tpu_topology
    chips = str(params.chips_per_node)
    for container in template.get("containers") or []:
        if container.get("name") != "main":
            continue
        container["image"] = params.vllm_image
        resources = container.setdefault("resources", {})
        for section in ("requests", "limits"):
            resources.setdefault(section, {})[TPU_RESOURCE] = chips
        container["args"] = [
            set_cli_flag(arg, "--tensor-parallel-size", chips) for arg in container.get("args") or []
        ]
        for env in container.get("env") or []:
            if env.get("name") == "TPU_CHIPS_PER_HOST_BOUNDS":
                env["value"] = chips_per_host_bounds(params.tpu_topology)


def _override_envoyfilter(obj: dict[str, Any], params: Any) -> None:
    fqdn = names.epp_service_fqdn(params.service_name, params.namespace)
    cluster = f"outbound|{EPP_GRPC_PORT}||{fqdn}"
    route = names.http_route(params.service_name)
    for patch in (obj.get("spec") or {}).get("configPatches") or []:
        match = patch.get("match") or {}
        if "cluster" in match and str(match["cluster"].get("name", "")).startswith(
            f"outbound|{EPP_GRPC_PORT}||"
        ):
            match["cluster"]["name"] = cluster
        route_match = ((match.get("routeConfiguration") or {}).get("vhost") or {}).get("route")
        if route_match and "name" in route_match:
            index = str(route_match["name"]).rsplit(".", 1)[-1]
            route_match["name"] = f"{params.namespace}.{route}.{index}"
        value = (patch.get("patch") or {}).get("value") or {}
        tls = (value.get("transport_socket") or {}).get("typed_config") or {}
        if "sni" in tls:
            tls["sni"] = f"outbound_.{EPP_GRPC_PORT}_._.{fqdn}"
        grpc = ((value.get("typed_config") or {}).get("grpc_service") or {}).get("envoy_grpc") or {}
        if "cluster_name" in grpc:
            grpc["cluster_name"] = cluster


def set_cli_flag(command_line: str, flag: str, value: str) -> str:
    """``command_line`` with ``flag``'s value set (``--flag=value`` or ``--flag value`` forms)."""
    words = shlex.split(command_line)
    out, changed, skip = [], False, False
    for i, word in enumerate(words):
        if skip:
            skip = False
            continue
        if word == flag and i + 1 < len(words):
            out += [f"{flag}={value}"]
            changed, skip = True, True
        elif word.startswith(f"{flag}="):
            out.append(f"{flag}={value}")
            changed = True
        else:
            out.append(word)
    return shlex.join(out) if changed else command_line


def chips_per_host_bounds(topology: str) -> str:
    """``TPU_CHIPS_PER_HOST_BOUNDS`` for a single-host topology: ``2x2`` → ``2,2,1``."""
    dims = topology.split("x")
    return ",".join([*dims, "1", "1"][:3])


# ----- secrets ---------------------------------------------------------------------------------------


def build_secrets(params: Any) -> list[SecretObject]:
    """The two Secrets the service references, from the params' secret files (values registered in redact)."""
    redact.register_params(params)
    token = read_hf_token(params.hf_token_file)
    dockerconfig = read_dockerconfigjson(params.pull_secret_file)
    return [
        _secret(HF_SECRET_NAME, params.namespace, "Opaque", {HF_SECRET_KEY: token}),
        _secret(
            PULL_SECRET_NAME,
            params.namespace,
            "kubernetes.io/dockerconfigjson",
            {".dockerconfigjson": dockerconfig},
        ),
    ]


def secrets_set(params: Any) -> ManifestSet:
    """``build_secrets`` as a ManifestSet (sources name the params' files, never their content)."""
    secrets = build_secrets(params)
    sources = [str(params.hf_token_file), str(params.pull_secret_file)]
    return ManifestSet(Manifest(src, obj) for src, obj in zip(sources, secrets, strict=True))


def _secret(name: str, namespace: str, type_: str, values: Mapping[str, str]) -> SecretObject:
    return SecretObject(
        apiVersion="v1",
        kind="Secret",
        metadata={"name": name, "namespace": namespace},
        type=type_,
        data={key: base64.b64encode(value.encode()).decode() for key, value in values.items()},
    )
