"""Secret files are read without revealing them, and every known secret is masked in output."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path

import pytest

from rhaii_nb import redact
from rhaii_nb.params import load_params
from rhaii_nb.secret_files import (
    SecretFileError,
    dockerconfig_registries,
    read_dockerconfigjson,
    read_hf_token,
    secret_values_of_files,
)

ROOT = Path(__file__).resolve().parents[1]
TWIN_SECRETS = ROOT / "params" / "twin-secrets"
TOKEN = "hf_SENTINELtokenSENTINELtoken0000000"
PASSWORD = "SENTINEL-password-9876"
DOCKERCONFIG = json.dumps(
    {"auths": {"registry.redhat.io": {"auth": base64.b64encode(f"me:{PASSWORD}".encode()).decode()}}}
)


@pytest.fixture(autouse=True)
def _empty_registry():
    redact.clear()
    yield
    redact.clear()


def _secret_yaml(name: str, key: str, value: str, *, encoded: bool) -> str:
    section = "data" if encoded else "stringData"
    shown = base64.b64encode(value.encode()).decode() if encoded else value
    return f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n{section}:\n  {key}: '{shown}'\n"


def test_twin_secrets_are_filled_in_templates_that_parse():
    token = read_hf_token(TWIN_SECRETS / "huggingface-token-secret.yaml")
    assert token.startswith("hf_") and "FAKE" in token
    assert dockerconfig_registries(TWIN_SECRETS / "redhat-pull-secret.yaml") == ["registry.redhat.io"]


@pytest.mark.parametrize("form", ["raw", "stringData", "data"])
def test_hf_token_in_each_form(tmp_path, form):
    path = tmp_path / "hf"
    if form == "raw":
        path.write_text(f"# my token\n{TOKEN}\n")
    else:
        path.write_text(_secret_yaml("huggingface-token", "token", TOKEN, encoded=form == "data"))
    assert read_hf_token(path) == TOKEN


@pytest.mark.parametrize("form", ["raw", "data"])
def test_dockerconfigjson_in_each_form(tmp_path, form):
    path = tmp_path / "pull"
    if form == "raw":
        path.write_text(DOCKERCONFIG)
    else:
        path.write_text(_secret_yaml("rhaiis-pull-secret", ".dockerconfigjson", DOCKERCONFIG, encoded=True))
    assert json.loads(read_dockerconfigjson(path)) == json.loads(DOCKERCONFIG)


def test_template_placeholders_and_bad_content_are_errors_without_the_value(tmp_path):
    placeholder = tmp_path / "hf.yaml"
    placeholder.write_text(_secret_yaml("huggingface-token", "token", "YOUR_HF_TOKEN_HERE", encoded=False))
    with pytest.raises(SecretFileError, match="placeholder"):
        read_hf_token(placeholder)
    not_json = tmp_path / "pull.json"
    not_json.write_text(f"{PASSWORD} is not json")
    with pytest.raises(SecretFileError) as info:
        read_dockerconfigjson(not_json)
    assert PASSWORD not in str(info.value)
    two_lines = tmp_path / "hf.txt"
    two_lines.write_text(f"{TOKEN}\n{TOKEN}x\n")
    with pytest.raises(SecretFileError) as info:
        read_hf_token(two_lines)
    assert TOKEN not in str(info.value)
    with pytest.raises(SecretFileError, match="not found"):
        read_hf_token(tmp_path / "absent")


def test_secret_values_cover_token_json_base64_and_password(tmp_path):
    hf, pull = tmp_path / "hf", tmp_path / "pull"
    hf.write_text(TOKEN)
    pull.write_text(DOCKERCONFIG)
    values = secret_values_of_files(hf, pull)
    assert TOKEN in values and PASSWORD in values and DOCKERCONFIG in values
    assert base64.b64encode(DOCKERCONFIG.encode()).decode() in values


def test_redact_masks_registered_and_extra_values():
    redact.register(TOKEN, "abc")  # too short to register
    text = f"token={TOKEN} short=abc other={PASSWORD}"
    assert redact.redact(text) == f"token=*** short=abc other={PASSWORD}"
    assert redact.redact(text, [PASSWORD]) == "token=*** short=abc other=***"
    assert redact.redact_known(TOKEN) == "***"
    assert redact.redact_data({"a": [TOKEN, 1], "b": {"c": TOKEN}}) == {"a": ["***", 1], "b": {"c": "***"}}


def test_register_params_masks_whole_dockerconfig_and_its_password(tmp_path):
    hf, pull = tmp_path / "hf", tmp_path / "pull"
    hf.write_text(TOKEN)
    pull.write_text(DOCKERCONFIG)
    params = load_params(
        ROOT / "params" / "local.yaml", {"hf_token_file": str(hf), "pull_secret_file": str(pull)}
    )
    redact.register_params(params)
    assert (
        redact.redact(f"json {DOCKERCONFIG} and pw {PASSWORD} and {TOKEN}") == "json *** and pw *** and ***"
    )


def test_logging_filter_masks_messages(caplog):
    redact.register(TOKEN)
    logger = logging.getLogger("rhaii_nb.test_redact")
    logger.addFilter(redact.RedactingFilter())
    with caplog.at_level(logging.INFO, logger=logger.name):
        logger.info("using token %s", TOKEN)
    assert TOKEN not in caplog.text and "using token ***" in caplog.text
