"""Preflight: secrets checked without revealing them, tools optional, and the full run against the twin."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path
from types import SimpleNamespace

import helpers_session
import pytest

from rhaii_nb import preflight

twin_session = helpers_session.twin_session
twin_admin = helpers_session.twin_admin

SENTINEL_TOKEN = "hf_SENTINELtokenABCDEFGHIJKLMNOPQRSTUV1234"
SENTINEL_PASSWORD = "SENTINEL-pass-9f8e7d6c5b4a"


def _dockerconfig(registry: str = "registry.redhat.io", password: str = SENTINEL_PASSWORD) -> str:
    auth = base64.b64encode(f"someone:{password}".encode()).decode()
    return json.dumps({"auths": {registry: {"auth": auth}}})


def _secret_yaml(key: str, value: str, *, as_data: bool = False) -> str:
    if as_data:
        encoded = base64.b64encode(value.encode()).decode()
        return f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\ndata:\n  {key}: {encoded}\n"
    return f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\nstringData:\n  {key}: '{value}'\n"


def _params(tmp_path: Path, token_text: str | None, pull_text: str | None) -> SimpleNamespace:
    hf = pull = None
    if token_text is not None:
        hf = tmp_path / "hf"
        hf.write_text(token_text)
    if pull_text is not None:
        pull = tmp_path / "pull"
        pull.write_text(pull_text)
    return SimpleNamespace(hf_token_file=hf, pull_secret_file=pull)


def _assert_no_sentinel(*texts: str) -> None:
    for text in texts:
        assert SENTINEL_TOKEN not in text and SENTINEL_PASSWORD not in text
        assert base64.b64encode(f"someone:{SENTINEL_PASSWORD}".encode()).decode() not in text


@pytest.mark.parametrize(
    "token_text",
    [
        SENTINEL_TOKEN + "\n",
        _secret_yaml("token", SENTINEL_TOKEN),
        _secret_yaml("token", SENTINEL_TOKEN, as_data=True),
    ],
)
def test_token_accepted_in_every_supported_form_without_showing_it(tmp_path: Path, token_text: str) -> None:
    check = preflight.check_hf_token(_params(tmp_path, token_text, None))
    assert check.ok is True, check.detail
    _assert_no_sentinel(check.detail, check.fix)


@pytest.mark.parametrize(
    ("token_text", "why"),
    [
        ("SENTINEL-not-a-token-value-1234567890\n", "does not look like"),
        ("hf_short\n", "does not look like"),
        ("YOUR_HF_TOKEN_HERE\n", "placeholder"),
        (f"{SENTINEL_TOKEN}\n{SENTINEL_TOKEN}\n", "non-comment lines"),
        (_secret_yaml("other", SENTINEL_TOKEN), "no 'token'"),
    ],
)
def test_bad_token_fails_with_a_fix_and_no_value(tmp_path: Path, token_text: str, why: str) -> None:
    check = preflight.check_hf_token(_params(tmp_path, token_text, None))
    assert check.ok is False and why in check.detail and check.fix
    _assert_no_sentinel(check.detail, check.fix, repr(check))
    assert "SENTINEL-not-a-token" not in check.detail


def test_missing_token_file(tmp_path: Path) -> None:
    params = SimpleNamespace(hf_token_file=tmp_path / "absent", pull_secret_file=None)
    check = preflight.check_hf_token(params)
    assert check.ok is False and "not found" in check.detail
    assert preflight.check_pull_secret(params).ok is False


@pytest.mark.parametrize(
    "pull_text",
    [
        _dockerconfig(),
        _secret_yaml(".dockerconfigjson", _dockerconfig(), as_data=True),
        json.dumps({"auths": {"registry.redhat.io": {"username": "u", "password": SENTINEL_PASSWORD}}}),
    ],
)
def test_pull_secret_accepted(tmp_path: Path, pull_text: str) -> None:
    check = preflight.check_pull_secret(_params(tmp_path, None, pull_text))
    assert check.ok is True, check.detail
    _assert_no_sentinel(check.detail)


@pytest.mark.parametrize(
    ("pull_text", "why"),
    [
        ("{not json " + SENTINEL_PASSWORD, "not valid dockerconfigjson"),
        (json.dumps({"registries": {}}), "no 'auths'"),
        (_dockerconfig(registry="quay.io"), "no credentials for registry.redhat.io (has: quay.io)"),
        (json.dumps({"auths": {"registry.redhat.io": {"auth": "bm9jb2xvbg=="}}}), "no usable 'auth'"),
        (_secret_yaml(".dockerconfigjson", "BASE64_ENCODED_DOCKERCONFIGJSON", as_data=False), "placeholder"),
    ],
)
def test_bad_pull_secret_fails_with_a_fix_and_no_value(tmp_path: Path, pull_text: str, why: str) -> None:
    check = preflight.check_pull_secret(_params(tmp_path, None, pull_text))
    assert check.ok is False and why in check.detail and check.fix
    _assert_no_sentinel(check.detail, check.fix)


def test_tools_are_optional() -> None:
    checks = preflight.check_tools(which=lambda tool: "/usr/bin/kubectl" if tool == "kubectl" else None)
    table = preflight.CheckTable(checks)
    assert table.ok and table.failed == []
    marks = dict(zip(table.df["check"], table.df["result"], strict=True))
    assert marks["tool kubectl (optional)"] == "✅" and marks["tool gcloud (optional)"] == "⚠️"


def test_failed_required_check_raises_with_fixes() -> None:
    table = preflight.CheckTable(
        [
            preflight.Check("a", True, "fine"),
            preflight.Check("quota", False, "8 chips; need 12", "ask for more"),
        ]
    )
    assert not table.ok and [c.name for c in table.failed] == ["quota"]
    assert list(table.df["fix"]) == ["", "ask for more"]
    with pytest.raises(preflight.PreflightFailed, match="quota: 8 chips; need 12 — fix: ask for more"):
        table.raise_if_failed()


@pytest.mark.timeout(120)
def test_preflight_against_the_twin_passes_and_reveals_no_secret(
    twin_session, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    session, params = twin_session
    params = params.model_copy(
        update={
            "hf_token_file": _params(tmp_path, SENTINEL_TOKEN, None).hf_token_file,
            "pull_secret_file": _params(tmp_path, None, _dockerconfig()).pull_secret_file,
        }
    )
    caplog.set_level(logging.DEBUG)
    table = preflight.run(session, params)
    assert table.ok, table.df.to_string()
    checks = {c.name: c for c in table.checks}
    assert "64 chips in europe-west4" in checks["TPU v6e quota"].detail
    assert checks["IAM permissions"].ok and checks["zone offers machine type"].ok
    out = capsys.readouterr()
    _assert_no_sentinel(table.df.to_string(), out.out, out.err, caplog.text)


@pytest.mark.timeout(120)
def test_preflight_catches_short_quota_and_wrong_zone(twin_session, twin_admin) -> None:
    session, params = twin_session
    twin_admin.set_tpu_quota(params.region, 8)
    try:
        table = preflight.run(session, params, include_tools=False)
    finally:
        twin_admin.set_tpu_quota(params.region, 64)
    failed = {c.name: c for c in table.failed}
    assert "TPU v6e quota" in failed
    assert failed["TPU v6e quota"].detail.startswith("8 chips in europe-west4; the pool needs 12")
    assert "request ≥ 12 chips" in failed["TPU v6e quota"].fix
    wrong_zone = params.model_copy(update={"zone": "us-west1-a"})
    check = preflight.check_zone(session, wrong_zone)
    assert check.ok is False and "europe-west4-a" in check.fix
