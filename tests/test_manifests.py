"""The manifests: valid as they stand, params applied as typed overrides, secrets built and hidden."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import yaml

from rhaii_nb import redact
from rhaii_nb.manifests import (
    GROUPS,
    MANIFESTS_DIR,
    SECRET_TEMPLATES,
    ManifestError,
    build_secrets,
    chips_per_host_bounds,
    load_manifests,
    manifests_for,
    secrets_set,
    set_cli_flag,
    with_params,
)
from rhaii_nb.params import load_params
from rhaii_nb.schema_validation import ManifestInvalid, check_objects, validate_object
from rhaii_nb.secret_files import SecretFileError

ROOT = Path(__file__).resolve().parents[1]
LOCAL = ROOT / "params" / "local.yaml"
SENTINEL = "hf_SENTINELmanifestTOKEN000000000000"


@pytest.fixture
def params():
    return load_params(LOCAL)


def test_guide_file_names_exist():
    for relative in [*(f for files in GROUPS.values() for f in files), *SECRET_TEMPLATES]:
        assert (MANIFESTS_DIR / relative).is_file(), relative
    assert len(GROUPS["envoyfilters"]) == 3 and len(GROUPS["networkpolicies"]) == 4
    on_disk = {p.relative_to(MANIFESTS_DIR).as_posix() for p in MANIFESTS_DIR.rglob("*.yaml")}
    assert on_disk == {f for files in GROUPS.values() for f in files}, "a manifest file is not in any group"


def test_every_manifest_and_template_is_valid_as_it_stands():
    objects = load_manifests().objects
    assert len(objects) == 9
    assert check_objects(objects) == []
    for template in SECRET_TEMPLATES:
        secret = yaml.safe_load((MANIFESTS_DIR / template).read_text())
        assert validate_object(secret) == [], template


def test_the_guide_values_are_in_the_files():
    service = load_manifests("inference-service").of_kind("LLMInferenceService")[0]
    assert service["metadata"] == {"name": "qwen-3b-tpu-svc", "namespace": "rhaii-inference"}
    assert service["spec"]["replicas"] == 3
    main = service["spec"]["template"]["containers"][0]
    assert "--enable-prefix-caching" in main["args"][0]
    assert main["resources"]["requests"] == main["resources"]["limits"] == {"google.com/tpu": "4"}
    filters = load_manifests("envoyfilters").of_kind("EnvoyFilter")
    assert [f["metadata"]["namespace"] for f in filters] == ["opendatahub"] * 3
    policies = load_manifests("networkpolicies").of_kind("NetworkPolicy")
    assert {p["metadata"]["name"] for p in policies} == {
        "allow-gateway-to-vllm",
        "allow-gateway-to-epp-scheduler",
        "allow-istio-control-plane",
        "allow-vllm-egress",
    }


def test_default_params_change_nothing(params):
    original = load_manifests()
    assert with_params(original, params).objects == original.objects


def test_params_are_applied_on_the_loaded_objects(params):
    custom = params.model_copy(
        update={
            "namespace": "team-a",
            "service_name": "my-llm",
            "replicas": 2,
            "model_uri": "hf://Org/Other-Model",
            "vllm_image": "registry.example.com/vllm:test",
        }
    )
    original = load_manifests()
    snapshot = json.dumps(original.objects, sort_keys=True)
    changed = with_params(original, custom)
    assert json.dumps(original.objects, sort_keys=True) == snapshot, "with_params must not change its input"

    namespace = changed.of_kind("Namespace")[0]
    assert namespace["metadata"]["name"] == "team-a"
    service = changed.of_kind("LLMInferenceService")[0]
    assert service["metadata"] == {"name": "my-llm", "namespace": "team-a"}
    assert service["spec"]["replicas"] == 2
    assert service["spec"]["model"] == {"uri": "hf://Org/Other-Model", "name": "Org/Other-Model"}
    assert service["spec"]["template"]["containers"][0]["image"] == "registry.example.com/vllm:test"
    assert {p["metadata"]["namespace"] for p in changed.of_kind("NetworkPolicy")} == {"team-a"}

    fqdn = "my-llm-epp-service.team-a.svc.cluster.local"
    mtls, ext_proc, body = changed.of_kind("EnvoyFilter")
    patch = mtls["spec"]["configPatches"][0]
    assert patch["match"]["cluster"]["name"] == f"outbound|9002||{fqdn}"
    assert patch["patch"]["value"]["transport_socket"]["typed_config"]["sni"] == f"outbound_.9002_._.{fqdn}"
    grpc = ext_proc["spec"]["configPatches"][0]["patch"]["value"]["typed_config"]["grpc_service"]
    assert grpc["envoy_grpc"]["cluster_name"] == f"outbound|9002||{fqdn}"
    routes = [
        p["match"]["routeConfiguration"]["vhost"]["route"]["name"] for p in body["spec"]["configPatches"]
    ]
    assert routes == ["team-a.my-llm-kserve-route.0", "team-a.my-llm-kserve-route.1"]
    assert {f["metadata"]["namespace"] for f in changed.of_kind("EnvoyFilter")} == {"opendatahub"}
    assert "rhaii-inference" not in json.dumps(changed.objects)
    assert "qwen-3b-tpu-svc" not in json.dumps(changed.objects)
    assert check_objects(changed.objects, 4, "2x2") == []


def test_tpu_shape_follows_machine_type(params):
    eight = params.model_copy(update={"machine_type": "ct6e-standard-8t", "tpu_topology": "2x4"})
    service = with_params(load_manifests("inference-service"), eight).of_kind("LLMInferenceService")[0]
    main = service["spec"]["template"]["containers"][0]
    assert main["resources"]["limits"] == {"google.com/tpu": "8"}
    assert "--tensor-parallel-size=8" in main["args"][0] and "--tensor-parallel-size=4" not in main["args"][0]
    assert service["spec"]["template"]["nodeSelector"]["cloud.google.com/gke-tpu-topology"] == "2x4"
    env = {e["name"]: e.get("value") for e in main["env"]}
    assert env["TPU_CHIPS_PER_HOST_BOUNDS"] == "2,4,1"
    assert check_objects([service], 8, "2x4") == []


def test_manifests_for_validates(params, tmp_path):
    assert len(manifests_for(params)) == 9
    broken = tmp_path / "manifests"
    broken.mkdir()
    text = (MANIFESTS_DIR / "llmisvc-tpu-caching.yaml").read_text().replace("  model:\n", "  modle:\n", 1)
    (broken / "llmisvc-tpu-caching.yaml").write_text(text)
    with pytest.raises(ManifestInvalid, match=r"spec\.modle"):
        manifests_for(params, "inference-service", directory=broken)


def test_load_errors_are_clear(tmp_path):
    with pytest.raises(ManifestError, match="no such manifest file"):
        load_manifests("nope.yaml", directory=tmp_path)
    (tmp_path / "bad.yaml").write_text("just: a mapping\n")
    with pytest.raises(ManifestError, match="apiVersion and kind"):
        load_manifests("bad.yaml", directory=tmp_path)


def test_cli_flag_and_topology_helpers():
    assert set_cli_flag("vllm --tensor-parallel-size=4 --x", "--tensor-parallel-size", "8") == (
        "vllm --tensor-parallel-size=8 --x"
    )
    assert (
        set_cli_flag("vllm --tensor-parallel-size 4", "--tensor-parallel-size", "2")
        == "vllm --tensor-parallel-size=2"
    )
    assert set_cli_flag("vllm --other", "--tensor-parallel-size", "2") == "vllm --other"
    assert chips_per_host_bounds("2x2") == "2,2,1" and chips_per_host_bounds("2x2x1") == "2,2,1"


# ----- secrets ---------------------------------------------------------------------------------------


def test_secrets_are_built_from_the_files_and_never_shown(params, tmp_path):
    redact.clear()
    token_file = tmp_path / "hf.txt"
    token_file.write_text(SENTINEL + "\n")
    custom = params.model_copy(update={"hf_token_file": token_file, "namespace": "team-a"})
    hf, pull = build_secrets(custom)
    assert hf["metadata"] == {"name": "huggingface-token", "namespace": "team-a"}
    assert base64.b64decode(hf["data"]["token"]).decode() == SENTINEL
    assert pull["type"] == "kubernetes.io/dockerconfigjson"
    assert "registry.redhat.io" in json.loads(base64.b64decode(pull["data"][".dockerconfigjson"]))["auths"]
    for shown in (
        repr(hf),
        str(hf),
        repr([hf, pull]),
        repr(secrets_set(custom)),
        secrets_set(custom).table().to_string(),
    ):
        assert SENTINEL not in shown and hf["data"]["token"] not in shown
    assert redact.redact(f"leak {SENTINEL} {hf['data']['token']}") == "leak *** ***"
    assert check_objects([hf, pull]) == []
    redact.clear()


def test_unfilled_template_is_refused(params):
    template = params.model_copy(update={"hf_token_file": MANIFESTS_DIR / SECRET_TEMPLATES[0]})
    with pytest.raises(SecretFileError, match="placeholder"):
        build_secrets(template)
