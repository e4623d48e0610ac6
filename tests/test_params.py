"""Run parameters: the shipped files validate, malformed ones fail listing field, value and fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rhaii_nb.cli import main as cli_main
from rhaii_nb.params import ParamsError, RunParams, load_params, validate_params

ROOT = Path(__file__).resolve().parents[1]
PARAMS_DIR = ROOT / "params"
LOCAL = PARAMS_DIR / "local.yaml"
SENTINEL_TOKEN = "hf_SENTINELsentinelSENTINELsentinel00"


def _local_data() -> dict:
    data = yaml.safe_load(LOCAL.read_text())
    for key in ("hf_token_file", "pull_secret_file"):
        data[key] = str(PARAMS_DIR / data[key])
    return data


def _write(tmp_path: Path, data: dict, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def _problems(tmp_path: Path, changes: dict, remove: tuple[str, ...] = ()) -> ParamsError:
    data = _local_data()
    data.update(changes)
    for key in remove:
        data.pop(key, None)
    with pytest.raises(ParamsError) as info:
        load_params(_write(tmp_path, data))
    return info.value


# ----- the shipped files ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["local.yaml", "ci.yaml"])
def test_shipped_twin_params_validate(name):
    params = load_params(PARAMS_DIR / name)
    assert params.target == "local"
    assert params.secret_status() == {"hf_token_file": "present", "pull_secret_file": "present"}
    assert params.hf_token_file.is_absolute() and params.hf_token_file.parent.name == "twin-secrets"


def test_gke_params_fail_only_because_of_placeholder_project_and_unfilled_secrets():
    with pytest.raises(ParamsError) as info:
        load_params(PARAMS_DIR / "gke-europe-west4.yaml")
    fields = {p.field for p in info.value.problems}
    project = next(p for p in info.value.problems if p.field == "project")
    assert project.value == "YOUR_PROJECT_ID"
    assert "placeholder" in project.message and "gcloud projects list" in project.fix
    # On a fresh clone the filled-in secrets do not exist yet; nothing else may be wrong.
    assert fields <= {"project", "hf_token_file", "pull_secret_file"}


def test_gke_params_validate_once_project_and_secrets_are_filled_in(tmp_path):
    data = yaml.safe_load((PARAMS_DIR / "gke-europe-west4.yaml").read_text())
    data["project"] = "my-rhaii-project"
    for key in ("hf_token_file", "pull_secret_file"):
        data[key] = str(PARAMS_DIR / yaml.safe_load(LOCAL.read_text())[key])
    params = load_params(_write(tmp_path, data))
    assert params.target == "gke"
    assert params.region == "europe-west4"
    assert params.chips_per_node == 4 and params.chips_needed == 12 and params.pool_chips == 12
    assert params.gke_cluster_path == (
        "projects/my-rhaii-project/locations/europe-west4-a/clusters/rhaii-tpu-scaleout-cluster"
    )
    assert params.wait_s("ready_timeout_s") == 1500


def test_every_file_in_params_dir_is_covered():
    assert {p.name for p in PARAMS_DIR.glob("*.yaml")} == {"local.yaml", "ci.yaml", "gke-europe-west4.yaml"}


# ----- malformed files: each names the field, the bad value and the fix ----------------------------

MALFORMED = [
    ("typo", {"replcas": 3}, (), "replcas", "did you mean 'replicas'"),
    ("zone-without-v6e", {"zone": "us-west1-a"}, (), "zone", "europe-west4-a"),
    ("more-replicas-than-nodes", {"replicas": 4}, (), "replicas", "at most 3"),
    ("over-quota", {"max_tpu_chips": 8}, (), "num_nodes", "at most 2 nodes"),
    ("bad-namespace", {"namespace": "RHAII_Inference"}, (), "namespace", "rhaii-inference"),
    (
        "gke-missing-secret-files",
        {"target": "gke", "project": "my-proj-123"},
        ("hf_token_file",),
        "hf_token_file",
        "huggingface-token.yaml.template",
    ),
    (
        "secret-file-absent",
        {"pull_secret_file": "/nonexistent/pull.yaml"},
        (),
        "pull_secret_file",
        "template",
    ),
    ("time-scale-zero", {"time_scale": 0}, (), "time_scale", "0.01"),
    ("unknown-scenario", {"scenario": ["node-los"]}, (), "scenario", "did you mean 'node-loss'"),
    ("gke-without-project", {"target": "gke"}, ("project",), "project", "gcloud projects list"),
    ("placeholder-project", {"target": "gke", "project": "YOUR_PROJECT_ID"}, (), "project", "replace it"),
    ("topology-mismatch", {"tpu_topology": "2x4"}, (), "tpu_topology", "'2x2'"),
    ("replicas-not-a-number", {"replicas": "three"}, (), "replicas", "3"),
    ("unknown-target", {"target": "aws"}, (), "target", "'gke'"),
    ("service-name-too-long", {"service_name": "s" * 60}, (), "service_name", "at most 51"),
    ("not-a-tpu-machine", {"machine_type": "n1-standard-4"}, (), "machine_type", "ct6e-standard-4t"),
    ("negative-timeout", {"ready_timeout_s": -5}, (), "ready_timeout_s", "600"),
    (
        "scenario-on-gke",
        {"target": "gke", "project": "my-proj-123", "scenario": "node-loss"},
        (),
        "scenario",
        "target: local",
    ),
]


@pytest.mark.parametrize(
    ("case", "changes", "remove", "field", "fix"), MALFORMED, ids=[m[0] for m in MALFORMED]
)
def test_malformed_params_name_field_value_and_fix(tmp_path, case, changes, remove, field, fix):
    error = _problems(tmp_path, changes, remove)
    matching = [p for p in error.problems if p.field == field]
    assert matching, f"{case}: no problem names {field!r}; got {error}"
    problem = matching[0]
    assert fix in problem.fix, f"{case}: fix {problem.fix!r} lacks {fix!r}"
    text = str(error)
    assert field in text and problem.fix in text
    if field in changes:
        assert repr(problem.value) in text or str(changes[field]) in text


def test_all_problems_are_listed_at_once(tmp_path):
    error = _problems(
        tmp_path,
        {
            "zone": "us-west1-a",
            "replicas": 5,
            "namespace": "Bad_NS",
            "time_scale": -1,
            "scenario": ["nope"],
            "x": 1,
        },
    )
    assert {p.field for p in error.problems} >= {
        "zone",
        "replicas",
        "namespace",
        "time_scale",
        "scenario",
        "x",
    }
    assert str(error).startswith(str(tmp_path / "p.yaml"))
    assert "6 problems" in str(error)


def test_type_error_does_not_hide_other_problems(tmp_path):
    error = _problems(tmp_path, {"num_nodes": "many", "zone": "mars-1-a"})
    assert {p.field for p in error.problems} == {"num_nodes", "zone"}


def test_invalid_yaml_and_missing_file_are_clear(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("target: [local\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(bad)
    with pytest.raises(ParamsError, match="does not exist"):
        load_params(tmp_path / "missing.yaml")
    listing = tmp_path / "list.yaml"
    listing.write_text("- target\n")
    with pytest.raises(ParamsError, match="mapping"):
        load_params(listing)


# ----- overrides, paths, derived values, secrets ---------------------------------------------------


def test_overrides_win_and_are_validated(tmp_path):
    params = load_params(LOCAL, {"replicas": 2, "scenario": "node-loss"})
    assert params.replicas == 2 and params.scenario == ["node-loss"]
    with pytest.raises(ParamsError, match="did you mean 'replicas'"):
        load_params(LOCAL, {"replica": 2})


def test_relative_paths_follow_the_params_file_and_overrides_the_cwd(tmp_path, monkeypatch):
    secrets = tmp_path / "conf" / "secrets"
    secrets.mkdir(parents=True)
    (secrets / "hf.txt").write_text("hf_abcdefghijklmnopqrstuvwxyz01234567\n")
    (secrets / "pull.json").write_text('{"auths": {"registry.redhat.io": {"auth": "eDp5"}}}')
    data = _local_data()
    data.update(hf_token_file="secrets/hf.txt", pull_secret_file="secrets/pull.json", twin_home="state")
    path = _write(tmp_path / "conf", data)
    params = load_params(path)
    assert params.hf_token_file == secrets / "hf.txt"
    assert params.twin_home == tmp_path / "conf" / "state"
    monkeypatch.chdir(tmp_path)
    params = load_params(path, {"twin_home": "elsewhere"})
    assert params.twin_home == tmp_path / "elsewhere"


def test_default_params_file_is_found_from_a_subdirectory(monkeypatch):
    monkeypatch.chdir(ROOT / "rhaii_nb")
    assert load_params().service_name == "qwen-3b-tpu-svc"


def test_derived_values_come_from_properties():
    params = load_params(LOCAL, {"replicas": 2, "num_nodes": 3})
    assert params.chips_needed == 8 and params.pool_chips == 12
    assert params.region == "europe-west4"
    assert params.gateway_path_prefix == "/rhaii-inference/qwen-3b-tpu-svc"
    assert params.served_model_name == "Qwen/Qwen2.5-3B-Instruct"
    assert (
        params.resource_names["epp_service_fqdn"]
        == "qwen-3b-tpu-svc-epp-service.rhaii-inference.svc.cluster.local"
    )
    assert params.resource_names["workload_deployment"] == "qwen-3b-tpu-svc-kserve"
    assert "chips_needed" not in RunParams.model_fields and "region" not in RunParams.model_fields


def test_twin_waits_scale_with_time_scale_but_keep_a_floor():
    params = load_params(LOCAL, {"time_scale": 0.01, "ready_timeout_s": 12000})
    assert params.wait_s("ready_timeout_s") == 120
    assert load_params(LOCAL, {"time_scale": 0.001}).wait_s("ready_timeout_s") == 30


def test_twin_home_has_a_default(monkeypatch, tmp_path):
    monkeypatch.setenv("RHAII_TWIN_HOME", str(tmp_path / "th"))
    assert load_params(LOCAL).twin_home == tmp_path / "th"


def test_secret_values_never_enter_the_model(tmp_path):
    token = tmp_path / "hf.txt"
    token.write_text(SENTINEL_TOKEN)
    params = load_params(LOCAL, {"hf_token_file": str(token)})
    shown = repr(params) + str(params.resolved()) + str(params.summary_dict()) + params.model_dump_json()
    assert SENTINEL_TOKEN not in shown
    assert params.secret_status()["hf_token_file"] == "present"
    token.unlink()
    assert params.secret_status()["hf_token_file"] == "absent"


def test_validate_params_accepts_a_plain_mapping():
    params = validate_params(_local_data())
    assert params.num_nodes == 3


# ----- CLI ------------------------------------------------------------------------------------------


def test_cli_check_passes_and_fails_with_exit_codes(tmp_path, capsys):
    assert cli_main(["params", "check", str(LOCAL), str(PARAMS_DIR / "ci.yaml")]) == 0
    out = capsys.readouterr().out
    assert "✅" in out and "2 of 2 params files valid" in out

    bad = _write(tmp_path, {**_local_data(), "zone": "us-west1-a", "replicas": 9})
    assert cli_main(["params", "check", str(LOCAL), str(bad)]) == 1
    out = capsys.readouterr().out
    assert "❌" in out and "zone" in out and "replicas" in out and "1 of 2 params files valid" in out


def test_cli_show_prints_resolved_and_derived_values_without_secrets(tmp_path, capsys):
    token = tmp_path / "hf.txt"
    token.write_text(SENTINEL_TOKEN)
    data = {**_local_data(), "hf_token_file": str(token)}
    assert cli_main(["params", "show", str(_write(tmp_path, data))]) == 0
    out = capsys.readouterr().out
    assert SENTINEL_TOKEN not in out
    assert "(present)" in out and "chips_needed" in out and "12" in out and "europe-west4" in out
    assert "qwen-3b-tpu-svc-epp-service" in out


def test_cli_show_of_invalid_file_exits_1(capsys):
    assert cli_main(["params", "show", str(PARAMS_DIR / "gke-europe-west4.yaml")]) == 1
    assert "YOUR_PROJECT_ID" in capsys.readouterr().out


@pytest.mark.timeout(60)
def test_console_script_params_check():
    script = Path(sys.executable).parent / "rhaii-nb"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "rhaii_nb"]
    done = subprocess.run(
        [*command, "params", "check", str(PARAMS_DIR / "gke-europe-west4.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "YOUR_PROJECT_ID" in done.stdout and "fix:" in done.stdout
