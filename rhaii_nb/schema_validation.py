"""Validate Kubernetes objects strictly against the schemas shipped in ``rhaii_nb/data/schemas``.

Two kinds of schema:

* core kinds: the Kubernetes "local-strict" JSON Schemas (draft 2020-12, closed objects), whose
  ``$ref``s resolve through a ``referencing`` registry holding ``_definitions.json``;
* custom resources: each CRD's ``openAPIV3Schema``, made strict the way ``kubectl --validate=strict``
  behaves: every object is closed (unknown fields are errors) unless the schema preserves unknown
  fields or declares ``additionalProperties``. A CRD object's ``metadata`` is checked against
  Kubernetes' ``ObjectMeta``.

On top of the schemas, ``semantic_problems`` checks the guide's rules for the inference service
(TPU request = limit = chips per node, prefix caching on, TPU node selector and toleration, secrets
referenced by name).
"""

from __future__ import annotations

import copy
import difflib
import json
import re
import shlex
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

if "jsonschema" not in sys.modules:
    # jsonschema imports the optional rfc3987_syntax (installed with Jupyter's jsonschema[format-nongpl])
    # only to check "iri" formats, and that import builds a grammar taking several seconds — in every
    # notebook kernel. The schemas here use no such format and validate without a FormatChecker.
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[assignment]

from jsonschema import Draft7Validator, Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource

K8S_SCHEMA_DIR = "data/schemas/kubernetes/v1.31.0-local-strict"
CRD_SCHEMA_FILES = (
    "data/schemas/kserve/serving.kserve.io_llminferenceservices.yaml",
    "data/schemas/istio/envoyfilters.networking.istio.io.crd.yaml",
    "data/schemas/gateway-api/gateway.networking.k8s.io_httproutes.yaml",
    "data/schemas/gateway-api/gateway.networking.k8s.io_gateways.yaml",
    "data/schemas/gateway-api/gateway.networking.k8s.io_gatewayclasses.yaml",
    "data/schemas/gateway-api/gateway.networking.k8s.io_referencegrants.yaml",
    "data/schemas/gateway-api-inference-extension/inference.networking.k8s.io_inferencepools.yaml",
    "data/schemas/gateway-api-inference-extension/inference.networking.x-k8s.io_inferencepools.yaml",
    "data/schemas/gateway-api-inference-extension/inference.networking.x-k8s.io_inferenceobjectives.yaml",
)
# libyaml's loader when present: the CRDs are ~1.5 MB of YAML.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"

TPU_RESOURCE = "google.com/tpu"
TPU_ACCELERATOR_LABEL = "cloud.google.com/gke-tpu-accelerator"
TPU_TOPOLOGY_LABEL = "cloud.google.com/gke-tpu-topology"
TPU_ACCELERATOR = "tpu-v6e-slice"
PREFIX_CACHING_FLAG = "--enable-prefix-caching"
HF_SECRET_NAME = "huggingface-token"
HF_SECRET_KEY = "token"
PULL_SECRET_NAME = "rhaiis-pull-secret"


@dataclass(frozen=True)
class SchemaProblem:
    """One way an object breaks its schema or the guide's rules."""

    object: str  # Kind/namespace/name
    path: str  # dotted field path, e.g. spec.template.containers[0].resources
    message: str

    def __str__(self) -> str:
        return f"{self.object}: {self.path or '(object)'}: {self.message}"


class ManifestInvalid(ValueError):
    """Objects failed validation; ``problems`` lists every failure."""

    def __init__(self, problems: list[SchemaProblem]) -> None:
        self.problems = problems
        super().__init__(
            f"{len(problems)} manifest problem{'s' if len(problems) != 1 else ''}:\n"
            + "\n".join(f"- {p}" for p in problems)
        )


# ----- public API -----------------------------------------------------------------------------------


def known_kinds() -> list[tuple[str, str]]:
    """(apiVersion, kind) pairs that have a schema."""
    return sorted(_validators())


def validate_object(obj: Mapping[str, Any]) -> list[SchemaProblem]:
    """Schema problems of one object (empty when valid). Unknown kinds are a problem too."""
    ref = object_ref(obj)
    if not isinstance(obj, Mapping):
        return [SchemaProblem(ref, "", "not a mapping (a Kubernetes object is a YAML mapping)")]
    key = (str(obj.get("apiVersion")), str(obj.get("kind")))
    validators = _validators()
    if key not in validators:
        return [
            SchemaProblem(
                ref,
                "apiVersion/kind",
                f"no schema for {key[0]} {key[1]}; known: "
                + ", ".join(f"{a} {k}" for a, k in sorted(validators)),
            )
        ]
    kind_validator, meta_validator = validators[key]
    problems = [_problem(ref, error, "") for error in kind_validator.iter_errors(obj)]
    if meta_validator is not None and "metadata" in obj:
        problems += [_problem(ref, e, "metadata") for e in meta_validator.iter_errors(obj["metadata"])]
    if not (obj.get("metadata") or {}).get("name"):
        problems.append(SchemaProblem(ref, "metadata.name", "required: every object needs a name"))
    return sorted(set(problems), key=lambda p: (p.path, p.message))


def semantic_problems(
    obj: Mapping[str, Any], chips_per_node: int = 4, tpu_topology: str | None = None
) -> list[SchemaProblem]:
    """The guide's rules beyond the schema (only the LLMInferenceService has some)."""
    if obj.get("kind") != "LLMInferenceService":
        return []
    ref = object_ref(obj)
    problems: list[SchemaProblem] = []

    def bad(path: str, message: str) -> None:
        problems.append(SchemaProblem(ref, path, message))

    spec = obj.get("spec") or {}
    if not (spec.get("model") or {}).get("uri"):
        bad("spec.model.uri", "required: the model to serve, e.g. hf://Qwen/Qwen2.5-3B-Instruct")
    template = spec.get("template") or {}
    containers = template.get("containers") or []
    main_index = next((i for i, c in enumerate(containers) if c.get("name") == "main"), None)
    if main_index is None:
        bad("spec.template.containers", "needs the vLLM container named 'main'")
    else:
        main = containers[main_index]
        path = f"spec.template.containers[{main_index}]"
        resources_ = main.get("resources") or {}
        for section in ("requests", "limits"):
            value = (resources_.get(section) or {}).get(TPU_RESOURCE)
            if value is None or str(value) != str(chips_per_node):
                bad(
                    f"{path}.resources.{section}.{TPU_RESOURCE}",
                    f"is {value!r}; a replica must take all {chips_per_node} TPU chips of its node "
                    "(request = limit)",
                )
        args = " ".join(str(a) for a in (main.get("args") or []) + (main.get("command") or []))
        if PREFIX_CACHING_FLAG not in _flags(args):
            bad(f"{path}.args", f"prefix caching is off: add {PREFIX_CACHING_FLAG} to the vLLM arguments")
        hf = next((e for e in main.get("env") or [] if e.get("name") == "HF_TOKEN"), None)
        if hf is None:
            bad(f"{path}.env", f"HF_TOKEN missing: reference secret {HF_SECRET_NAME!r} key {HF_SECRET_KEY!r}")
        elif "value" in hf:
            bad(
                f"{path}.env[HF_TOKEN]",
                "a token written into the manifest; reference the secret by name instead",
            )
        else:
            ref_ = (hf.get("valueFrom") or {}).get("secretKeyRef") or {}
            if ref_.get("name") != HF_SECRET_NAME or ref_.get("key") != HF_SECRET_KEY:
                bad(
                    f"{path}.env[HF_TOKEN].valueFrom.secretKeyRef",
                    f"must reference secret {HF_SECRET_NAME!r} key {HF_SECRET_KEY!r}",
                )
    selector = template.get("nodeSelector") or {}
    if selector.get(TPU_ACCELERATOR_LABEL) != TPU_ACCELERATOR:
        bad(
            f"spec.template.nodeSelector.{TPU_ACCELERATOR_LABEL}",
            f"must be {TPU_ACCELERATOR} (TPU v6e nodes)",
        )
    topology = selector.get(TPU_TOPOLOGY_LABEL)
    if not topology or (tpu_topology and topology != tpu_topology):
        bad(
            f"spec.template.nodeSelector.{TPU_TOPOLOGY_LABEL}",
            f"is {topology!r}; must be the node pool's topology {tpu_topology or '(e.g. 2x2)'}",
        )
    if not any(_tolerates_tpu(t) for t in template.get("tolerations") or []):
        bad(
            "spec.template.tolerations",
            f"needs a toleration for the TPU taint {TPU_RESOURCE}=present:NoSchedule, "
            "or no TPU node accepts the pod",
        )
    pull_secrets = [s.get("name") for s in template.get("imagePullSecrets") or []]
    if PULL_SECRET_NAME not in pull_secrets:
        bad("spec.template.imagePullSecrets", f"must name the pull secret {PULL_SECRET_NAME!r}")
    replicas = spec.get("replicas")
    if not isinstance(replicas, int) or replicas < 1:
        bad("spec.replicas", f"is {replicas!r}; needs at least 1 replica")
    return problems


def check_objects(
    objects: Iterable[Mapping[str, Any]], chips_per_node: int = 4, tpu_topology: str | None = None
) -> list[SchemaProblem]:
    """Schema and semantic problems of every object."""
    problems: list[SchemaProblem] = []
    for obj in objects:
        problems += validate_object(obj)
        problems += semantic_problems(obj, chips_per_node, tpu_topology)
    return problems


def validate_objects(
    objects: Iterable[Mapping[str, Any]], chips_per_node: int = 4, tpu_topology: str | None = None
) -> None:
    """Raise ``ManifestInvalid`` listing every problem of every object; return None when all are valid."""
    problems = check_objects(list(objects), chips_per_node, tpu_topology)
    if problems:
        raise ManifestInvalid(problems)


def object_ref(obj: Any) -> str:
    """``Kind/namespace/name`` (or ``Kind/name``) for messages."""
    if not isinstance(obj, Mapping):
        return "<not an object>"
    meta = obj.get("metadata") or {}
    parts = [str(obj.get("kind") or "?"), meta.get("namespace"), str(meta.get("name") or "?")]
    return "/".join(p for p in parts if p)


# ----- building the validators ------------------------------------------------------------------


class _Validators(Mapping[tuple[str, str], tuple[Any, Any]]):
    """(apiVersion, kind) -> (kind validator, ObjectMeta validator or None), built on first need.

    The core kinds load together (one ``$ref`` registry); each CRD file only when an object of its API
    group is checked: the LLMInferenceService CRD alone is 1 MB of YAML (~0.3 s to parse), which a
    notebook checking an EnvoyFilter never needs.
    """

    def __init__(self) -> None:
        self._by_key: dict[tuple[str, str], tuple[Any, Any]] = {}
        self._meta_validator: Any = None
        self._loaded_groups: set[str] = set()
        self._core_loaded = False

    def _core(self) -> None:
        if self._core_loaded:
            return
        k8s_dir = resources.files("rhaii_nb").joinpath(K8S_SCHEMA_DIR)
        definitions = json.loads(k8s_dir.joinpath("_definitions.json").read_text(encoding="utf-8"))
        registry: Registry = Registry().with_resource(definitions["$id"], Resource.from_contents(definitions))
        kind_schemas = []
        for entry in sorted(k8s_dir.iterdir(), key=lambda e: e.name):
            if entry.name.endswith(".json") and not entry.name.startswith("_"):
                schema = json.loads(entry.read_text(encoding="utf-8"))
                registry = registry.with_resource(schema["$id"], Resource.from_contents(schema))
                kind_schemas.append(schema)
        registry = registry.crawl()
        for schema in kind_schemas:
            for gvk in schema.get("x-kubernetes-group-version-kind", []):
                api_version = f"{gvk['group']}/{gvk['version']}" if gvk["group"] else gvk["version"]
                self._by_key[(api_version, gvk["kind"])] = (
                    Draft202012Validator(schema, registry=registry),
                    None,
                )
        meta_schema = {"$ref": f"{definitions['$id']}#/$defs/{OBJECT_META}"}
        self._meta_validator = Draft202012Validator(meta_schema, registry=registry)
        self._core_loaded = True

    def _group(self, group: str) -> None:
        """Load the core kinds and the CRDs of API group ``group`` ("*": every CRD file)."""
        if group in self._loaded_groups or "*" in self._loaded_groups:
            return
        self._core()
        for name, file_groups in _crd_file_groups().items():
            if group != "*" and group not in file_groups:
                continue
            text = resources.files("rhaii_nb").joinpath(name).read_text(encoding="utf-8")
            for crd in yaml.load_all(text, Loader=_YAML_LOADER):
                if not crd or crd.get("kind") != "CustomResourceDefinition":
                    continue
                crd_group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
                for version in crd["spec"]["versions"]:
                    raw = (version.get("schema") or {}).get("openAPIV3Schema")
                    if raw is None or not version.get("served", True):
                        continue
                    strict = strict_crd_schema(raw)
                    self._by_key[(f"{crd_group}/{version['name']}", kind)] = (
                        Draft7Validator(strict),
                        self._meta_validator,
                    )
        self._loaded_groups.add(group)

    def _load_for(self, key: object) -> None:
        api_version = key[0] if isinstance(key, tuple) and key else ""
        group = str(api_version).rpartition("/")[0]
        if group:
            self._group(group)
        else:
            self._core()

    def __getitem__(self, key: tuple[str, str]) -> tuple[Any, Any]:
        self._load_for(key)
        return self._by_key[key]

    def __contains__(self, key: object) -> bool:
        self._load_for(key)
        return key in self._by_key

    def __iter__(self) -> Iterator[tuple[str, str]]:
        self._group("*")
        return iter(dict(self._by_key))

    def __len__(self) -> int:
        self._group("*")
        return len(self._by_key)


_GROUP_LINE = re.compile(r"^  group: *['\"]?([A-Za-z0-9.-]+)", re.MULTILINE)


@lru_cache(maxsize=1)
def _crd_file_groups() -> dict[str, set[str]]:
    """CRD file -> the API groups it defines (its ``spec.group`` lines), found without parsing YAML."""
    base = resources.files("rhaii_nb")
    return {
        name: set(_GROUP_LINE.findall(base.joinpath(name).read_text(encoding="utf-8")))
        for name in CRD_SCHEMA_FILES
    }


@lru_cache(maxsize=1)
def _validators() -> _Validators:
    return _Validators()


def strict_crd_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a CRD's openAPIV3Schema where every object not preserving unknown fields is closed."""
    strict = copy.deepcopy(dict(schema))
    root_props = strict.setdefault("properties", {})
    root_props.setdefault("apiVersion", {"type": "string"})
    root_props.setdefault("kind", {"type": "string"})
    root_props["metadata"] = {"type": "object"}  # checked separately against ObjectMeta
    _close(strict, is_root=True)
    return strict


def _close(node: Any, is_root: bool = False) -> None:
    if not isinstance(node, dict):
        return
    if node.get("nullable") is True and isinstance(node.get("type"), str):
        node["type"] = [node["type"], "null"]
    is_object = node.get("type") == "object" or (
        isinstance(node.get("type"), list) and "object" in node["type"]
    )
    if (
        is_object
        and not node.get("x-kubernetes-preserve-unknown-fields")
        and "additionalProperties" not in node
    ):
        if node.get("x-kubernetes-embedded-resource"):
            props = node.setdefault("properties", {})
            for key in ("apiVersion", "kind", "metadata"):
                props.setdefault(key, {})
        node["additionalProperties"] = False
        node.setdefault("properties", {})
    for key, value in list(node.items()):
        if key == "properties" and isinstance(value, dict):
            for name, child in value.items():
                if not (is_root and name == "metadata"):
                    _close(child)
        elif key in ("items", "additionalProperties", "not"):
            _close(value)
        elif key in ("allOf", "anyOf", "oneOf") and isinstance(value, list):
            for child in value:
                _close(child)


# ----- messages --------------------------------------------------------------------------------------


def _problem(ref: str, error: ValidationError, prefix: str) -> SchemaProblem:
    path = _join(prefix, _path_text(error.absolute_path))
    if error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
        allowed = list((error.schema.get("properties") or {}).keys())
        unexpected = [k for k in error.instance if k not in allowed and not _pattern_allows(error.schema, k)]
        if unexpected:
            name = unexpected[0]
            close = difflib.get_close_matches(name, allowed, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            extra = f" (and {', '.join(unexpected[1:])})" if len(unexpected) > 1 else ""
            return SchemaProblem(ref, _join(path, name), f"unknown field{extra}{hint}")
    if error.validator == "type":
        wanted = error.validator_value
        return SchemaProblem(
            ref, path, f"must be of type {wanted}, got {_type_name(error.instance)} {error.instance!r}"
        )
    if error.validator == "required":
        return SchemaProblem(ref, path, error.message.replace("is a required property", "is required"))
    if error.validator == "enum":
        return SchemaProblem(ref, path, f"{error.instance!r} is not one of {error.validator_value}")
    if error.validator in ("oneOf", "anyOf") and error.context:
        best = min(error.context, key=lambda e: len(e.message))
        return SchemaProblem(ref, path, best.message)
    return SchemaProblem(ref, path, error.message)


def _pattern_allows(schema: Mapping[str, Any], key: str) -> bool:
    return any(re.search(pattern, key) for pattern in (schema.get("patternProperties") or {}))


def _path_text(parts: Iterable[Any]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _join(prefix: str, rest: str) -> str:
    if not prefix:
        return rest
    if not rest:
        return prefix
    return prefix + rest if rest.startswith("[") else f"{prefix}.{rest}"


def _type_name(value: Any) -> str:
    return {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        list: "array",
        dict: "object",
    }.get(type(value), type(value).__name__)


def _flags(args: str) -> set[str]:
    try:
        words = shlex.split(args)
    except ValueError:
        words = args.split()
    return {w.split("=", 1)[0] for w in words}


def _tolerates_tpu(toleration: Mapping[str, Any]) -> bool:
    if toleration.get("key") != TPU_RESOURCE:
        return toleration.get("operator") == "Exists" and not toleration.get("key")
    effect_ok = toleration.get("effect") in (None, "", "NoSchedule")
    if toleration.get("operator") == "Exists":
        return effect_ok
    return toleration.get("value") == "present" and effect_ok
