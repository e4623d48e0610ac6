"""Strict validation against the shipped schemas catches broken manifests, with the field path."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from rhaii_nb.schema_validation import (
    ManifestInvalid,
    check_objects,
    known_kinds,
    semantic_problems,
    strict_crd_schema,
    validate_object,
    validate_objects,
)

MANIFESTS = Path(__file__).resolve().parents[1] / "manifests"


def _load(relative: str) -> dict:
    return yaml.safe_load((MANIFESTS / relative).read_text())


@pytest.fixture
def llmisvc() -> dict:
    return _load("llmisvc-tpu-caching.yaml")


def _paths(problems) -> dict[str, str]:
    return {p.path: p.message for p in problems}


def test_schemas_cover_the_kinds_the_runbook_applies():
    kinds = set(known_kinds())
    for expected in [
        ("serving.kserve.io/v1alpha1", "LLMInferenceService"),
        ("networking.istio.io/v1alpha3", "EnvoyFilter"),
        ("networking.k8s.io/v1", "NetworkPolicy"),
        ("v1", "Namespace"),
        ("v1", "Secret"),
        ("gateway.networking.k8s.io/v1", "HTTPRoute"),
    ]:
        assert expected in kinds


def test_unknown_field_in_crd_is_rejected_with_path_and_suggestion(llmisvc):
    llmisvc["spec"]["modle"] = llmisvc["spec"].pop("model")
    problems = _paths(validate_object(llmisvc))
    assert "spec.modle" in problems
    assert "unknown field" in problems["spec.modle"] and "did you mean 'model'" in problems["spec.modle"]


def test_unknown_field_deep_inside_the_pod_template(llmisvc):
    llmisvc["spec"]["template"]["containers"][0]["resourcez"] = {}
    llmisvc["spec"]["template"]["tolerations"][0]["efect"] = "NoSchedule"
    problems = _paths(validate_object(llmisvc))
    assert "spec.template.containers[0].resourcez" in problems
    assert "did you mean 'effect'" in problems["spec.template.tolerations[0].efect"]


def test_wrong_types_are_rejected(llmisvc):
    llmisvc["spec"]["replicas"] = "three"
    llmisvc["spec"]["template"]["containers"][0]["livenessProbe"]["httpGet"]["port"] = [8000]
    problems = _paths(validate_object(llmisvc))
    assert "integer" in problems["spec.replicas"] and "'three'" in problems["spec.replicas"]
    assert "spec.template.containers[0].livenessProbe.httpGet.port" in problems


def test_metadata_of_custom_objects_is_checked_strictly(llmisvc):
    llmisvc["metadata"]["labelz"] = {"a": "b"}
    llmisvc["metadata"]["labels"] = {"a": 1}
    problems = _paths(validate_object(llmisvc))
    assert "did you mean 'labels'" in problems["metadata.labelz"]
    assert "metadata.labels.a" in problems


def test_preserved_fields_stay_open_but_their_siblings_are_closed():
    envoyfilter = _load("envoyfilter-ext-proc-tpu.yaml")
    envoyfilter["spec"]["configPatches"][0]["patch"]["value"]["anything"] = {"goes": True}
    assert validate_object(envoyfilter) == []
    envoyfilter["spec"]["configPatches"][0]["patch"]["operaton"] = "MERGE"
    assert "spec.configPatches[0].patch.operaton" in _paths(validate_object(envoyfilter))


def test_enum_and_core_kind_unknown_fields():
    envoyfilter = _load("envoyfilter-epp-mtls-fix-tpu.yaml")
    envoyfilter["spec"]["configPatches"][0]["applyTo"] = "CLUSTERS"
    assert "spec.configPatches[0].applyTo" in _paths(validate_object(envoyfilter))
    policy = _load("networkpolicies/allow-istio.yaml")
    policy["spec"]["bogus"] = 1
    policy["spec"]["ingress"][0]["ports"][0]["port"] = {"x": 1}
    problems = _paths(validate_object(policy))
    assert "spec.bogus" in problems
    assert "spec.ingress[0].ports[0].port" in problems


def test_unknown_kind_and_missing_name_are_problems():
    problems = validate_object({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}})
    assert problems and "no schema" in problems[0].message
    nameless = _paths(validate_object({"apiVersion": "v1", "kind": "Namespace", "metadata": {}}))
    assert "metadata.name" in nameless


def test_strict_schema_leaves_the_original_untouched():
    crd = yaml.safe_load(
        (
            MANIFESTS.parent / "rhaii_nb/data/schemas/istio/envoyfilters.networking.istio.io.crd.yaml"
        ).read_text()
    )
    raw = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    before = copy.deepcopy(raw)
    strict = strict_crd_schema(raw)
    assert raw == before
    assert strict["additionalProperties"] is False
    assert strict["properties"]["spec"]["additionalProperties"] is False


# ----- the guide's semantic rules --------------------------------------------------------------------


def test_the_shipped_service_meets_the_guide_rules(llmisvc):
    assert semantic_problems(llmisvc, chips_per_node=4, tpu_topology="2x2") == []


@pytest.mark.parametrize(
    ("breakage", "path"),
    [
        (
            lambda o: o["spec"]["template"]["containers"][0]["resources"]["limits"].update(
                {"google.com/tpu": "2"}
            ),
            "spec.template.containers[0].resources.limits.google.com/tpu",
        ),
        (
            lambda o: o["spec"]["template"]["containers"][0]["resources"].pop("requests"),
            "spec.template.containers[0].resources.requests.google.com/tpu",
        ),
        (
            lambda o: o["spec"]["template"]["containers"][0].update(
                args=[
                    o["spec"]["template"]["containers"][0]["args"][0].replace("--enable-prefix-caching", "")
                ]
            ),
            "spec.template.containers[0].args",
        ),
        (
            lambda o: o["spec"]["template"]["nodeSelector"].pop("cloud.google.com/gke-tpu-accelerator"),
            "spec.template.nodeSelector.cloud.google.com/gke-tpu-accelerator",
        ),
        (lambda o: o["spec"]["template"].pop("tolerations"), "spec.template.tolerations"),
        (
            lambda o: o["spec"]["template"]["containers"][0]["env"][3].update(
                value="hf_inline", valueFrom=None
            ),
            "spec.template.containers[0].env[HF_TOKEN]",
        ),
        (
            lambda o: o["spec"]["template"].update(imagePullSecrets=[{"name": "other"}]),
            "spec.template.imagePullSecrets",
        ),
        (lambda o: o["spec"]["model"].pop("uri"), "spec.model.uri"),
    ],
    ids=[
        "tpu-limit",
        "tpu-request",
        "prefix-caching-off",
        "node-selector",
        "toleration",
        "inline-token",
        "pull-secret",
        "model-uri",
    ],
)
def test_semantic_rules_catch_each_breakage(llmisvc, breakage, path):
    breakage(llmisvc)
    assert path in _paths(semantic_problems(llmisvc, chips_per_node=4, tpu_topology="2x2"))


def test_topology_must_match_the_node_pool(llmisvc):
    problems = _paths(semantic_problems(llmisvc, chips_per_node=4, tpu_topology="2x4"))
    assert "2x4" in problems["spec.template.nodeSelector.cloud.google.com/gke-tpu-topology"]


def test_validate_objects_raises_listing_every_problem(llmisvc):
    llmisvc["spec"]["modle"] = {}
    llmisvc["spec"]["template"]["containers"][0]["resources"]["limits"]["google.com/tpu"] = "8"
    with pytest.raises(ManifestInvalid) as info:
        validate_objects([llmisvc, _load("namespace.yaml")])
    text = str(info.value)
    assert "2 manifest problems" in text
    assert "spec.modle" in text and "google.com/tpu" in text
    assert check_objects([_load("namespace.yaml")]) == []
