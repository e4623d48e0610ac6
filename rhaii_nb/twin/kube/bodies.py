"""Decode request bodies (JSON or YAML objects, patches, DeleteOptions) with the real server's errors."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from rhaii_nb.twin.errors import ApiError
from rhaii_nb.twin.kube.responses import bad_request

MAX_BODY_BYTES = 3 * 1024 * 1024  # kube-apiserver's default request body limit
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "application/apply-patch+yaml")
OBJECT_TYPES = ("application/json", "application/yaml", "application/x-yaml", "text/yaml", "")
GO_TYPE_META = (
    'struct { APIVersion string "json:\\"apiVersion,omitempty\\""; Kind string "json:\\"kind,omitempty\\"" }'
)
PATCH_TYPES = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
    "application/apply-patch+cbor": None,
}


def _yaml_error(exc: Exception) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    line = f"line {mark.line + 1}: " if mark is not None else ""
    return f"error converting YAML to JSON: yaml: {line}{problem}"


def parse_text(raw: bytes, content_type: str) -> Any:
    """Parse a JSON or YAML document; ``ValueError`` carries a Go-like message."""
    text = raw.decode("utf-8", errors="strict")
    if content_type in YAML_TYPES:
        import yaml

        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(_yaml_error(exc)) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        if not text.strip():
            raise ValueError("unexpected end of JSON input") from None
        raise ValueError(f"invalid character at line {exc.lineno} column {exc.colno}: {exc.msg}") from None


async def read_raw(request: web.Request) -> bytes:
    """The request body, 413 when larger than the server accepts."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise ApiError(413, "RequestEntityTooLarge", "the request is too large")
    return await request.read()


def _unsupported_media(content_type: str, accepted: tuple[str, ...]) -> ApiError:
    return ApiError(
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: "
        + ", ".join(accepted),
        {},
    )


async def read_object(request: web.Request) -> dict[str, Any]:
    """Decode a create/update body (JSON or YAML); the store checks its apiVersion/kind against the URL."""
    content_type = request.content_type if request.body_exists else ""
    if content_type == "application/octet-stream" and request.headers.get("Content-Type") is None:
        content_type = ""
    if content_type not in OBJECT_TYPES:
        raise _unsupported_media(content_type, ("application/json", "application/yaml"))
    raw = await read_raw(request)
    try:
        body = parse_text(raw, content_type)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"couldn't get version/kind; json parse error: {exc}") from None
    if not isinstance(body, dict):
        found = (
            "null" if body is None else type(body).__name__.replace("list", "array").replace("str", "string")
        )
        raise bad_request(
            "couldn't get version/kind; json parse error: "
            f"json: cannot unmarshal {found} into Go value of type {GO_TYPE_META}"
        )
    return body


async def read_patch(request: web.Request) -> tuple[str, Any]:
    """Decode a PATCH body: ``(patch_type, patch)`` with patch_type merge|strategic|json|apply."""
    content_type = request.content_type
    patch_type = PATCH_TYPES.get(content_type)
    if patch_type is None:
        raise _unsupported_media(content_type, tuple(t for t, v in PATCH_TYPES.items() if v))
    raw = await read_raw(request)
    try:
        patch = parse_text(raw, "application/yaml" if patch_type == "apply" else "application/json")
    except (ValueError, UnicodeDecodeError) as exc:
        if patch_type == "apply":
            raise bad_request(f"error decoding YAML: {exc}") from None
        raise bad_request(f"error decoding patch: {exc}") from None
    if patch_type == "json" and not isinstance(patch, list):
        raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    if patch_type != "json" and not isinstance(patch, dict):
        raise bad_request(
            f"error decoding patch: the patch must be a JSON object, got {type(patch).__name__}"
        )
    return patch_type, patch


async def read_optional_json(request: web.Request) -> dict[str, Any]:
    """A JSON options body (DeleteOptions, Eviction...), ``{}`` when there is none."""
    raw = await read_raw(request)
    if not raw.strip():
        return {}
    try:
        body = parse_text(
            raw, request.content_type if request.content_type in YAML_TYPES else "application/json"
        )
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"couldn't get version/kind; json parse error: {exc}") from None
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object")
    return body
