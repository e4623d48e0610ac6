"""Read the two secret files (HuggingFace token, registry pull secret) without ever showing them.

Each file may be either a filled-in copy of the guide's secret template (a ``v1`` Secret YAML, as
``manifests/templates/*.yaml.template``) or just the value: the token on one line, or the
``dockerconfigjson`` JSON. Errors name the file and what is wrong, never the content.
"""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path
from typing import Any

import yaml

HF_TOKEN_KEY = "token"
DOCKERCONFIG_KEY = ".dockerconfigjson"
TEMPLATE_PLACEHOLDERS = frozenset({"YOUR_HF_TOKEN_HERE", "BASE64_ENCODED_DOCKERCONFIGJSON"})


class SecretFileError(ValueError):
    """A secret file is missing or malformed; the message never contains the secret."""


def read_hf_token(path: str | Path) -> str:
    """The HuggingFace token held by ``path`` (raw token or filled-in Secret YAML)."""
    path = Path(path)
    secret = _load_secret_manifest(path)
    if secret is not None:
        value = _secret_value(secret, HF_TOKEN_KEY, path)
    else:
        lines = [line.strip() for line in _read_text(path).splitlines()]
        values = [line for line in lines if line and not line.startswith("#")]
        if len(values) != 1:
            raise SecretFileError(
                f"{path}: expected the token alone on one line (or a filled-in huggingface-token Secret "
                f"YAML), found {len(values)} non-comment lines"
            )
        value = values[0]
    _reject_placeholder(value, path)
    return value


def read_dockerconfigjson(path: str | Path) -> str:
    """The ``.dockerconfigjson`` JSON text held by ``path`` (raw JSON or filled-in Secret YAML)."""
    path = Path(path)
    secret = _load_secret_manifest(path)
    value = _secret_value(secret, DOCKERCONFIG_KEY, path) if secret is not None else _read_text(path).strip()
    _reject_placeholder(value, path)
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        raise SecretFileError(
            f"{path}: the pull secret is not valid dockerconfigjson JSON (create it with `podman login "
            "registry.redhat.io`, then base64 -w0 the auth file)"
        ) from None
    if not isinstance(parsed, dict) or not isinstance(parsed.get("auths"), dict):
        raise SecretFileError(f"{path}: the dockerconfigjson has no 'auths' mapping")
    return value


def dockerconfig_registries(path: str | Path) -> list[str]:
    """Registries the pull secret has credentials for (names only, safe to show)."""
    return sorted(json.loads(read_dockerconfigjson(path))["auths"])


def secret_values_of_files(hf_token_file: Path | None, pull_secret_file: Path | None) -> list[str]:
    """Every string that reveals a secret in these files: token, JSON, base64 forms, passwords.

    Unreadable or malformed files contribute what can be read (a raw file's whole text), so that a
    half-filled file is still masked.
    """
    values: list[str] = []
    if hf_token_file is not None and Path(hf_token_file).is_file():
        try:
            token = read_hf_token(hf_token_file)
            values += [token, base64.b64encode(token.encode()).decode()]
        except SecretFileError:
            values.extend(_raw_lines(hf_token_file))
    if pull_secret_file is not None and Path(pull_secret_file).is_file():
        try:
            text = read_dockerconfigjson(pull_secret_file)
        except SecretFileError:
            values.extend(_raw_lines(pull_secret_file))
        else:
            values.extend(_dockerconfig_secret_strings(text))
    return [v for v in dict.fromkeys(values) if v]


def _dockerconfig_secret_strings(text: str) -> list[str]:
    values = [text, base64.b64encode(text.encode()).decode(), json.dumps(json.loads(text))]
    for entry in json.loads(text)["auths"].values():
        if not isinstance(entry, dict):
            continue
        for key in ("auth", "password", "identitytoken", "registrytoken"):
            if isinstance(entry.get(key), str):
                values.append(entry[key])
        if isinstance(entry.get("auth"), str):
            try:
                decoded = base64.b64decode(entry["auth"], validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                continue
            values.append(decoded)
            values.append(decoded.partition(":")[2])
    return values


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise SecretFileError(f"{path}: file not found")
    return path.read_text(encoding="utf-8")


def _raw_lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    return [text.strip(), *(line.strip() for line in text.splitlines() if len(line.strip()) >= 8)]


def _load_secret_manifest(path: Path) -> dict[str, Any] | None:
    """The file parsed as a Secret manifest, or None when it holds a bare value."""
    text = _read_text(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    if isinstance(data, dict) and data.get("kind") == "Secret":
        return data
    return None


def _secret_value(secret: dict[str, Any], key: str, path: Path) -> str:
    string_data = secret.get("stringData") or {}
    data = secret.get("data") or {}
    if key in string_data:
        return str(string_data[key]).strip()
    if key in data:
        raw = str(data[key]).strip()
        if raw in TEMPLATE_PLACEHOLDERS:
            return raw
        try:
            return base64.b64decode(raw, validate=True).decode("utf-8").strip()
        except (binascii.Error, UnicodeDecodeError):
            raise SecretFileError(f"{path}: data.{key} is not valid base64 (use base64 -w0)") from None
    raise SecretFileError(f"{path}: the Secret has no '{key}' under stringData or data")


def _reject_placeholder(value: str, path: Path) -> None:
    if value in TEMPLATE_PLACEHOLDERS:
        raise SecretFileError(
            f"{path}: still holds the template placeholder {value}; replace it with the real value"
        )
    if not value:
        raise SecretFileError(f"{path}: the secret value is empty")
