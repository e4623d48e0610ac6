"""JSON responses and ``Status`` bodies shaped as kube-apiserver shapes them."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from rhaii_nb.twin.errors import ApiError

NOT_FOUND_MESSAGE = "the server could not find the requested resource"


def dumps(obj: Any) -> str:
    """Compact JSON, as the API server writes it."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """``application/json`` response with ``obj``."""
    return web.Response(text=dumps(obj), status=status, content_type="application/json", headers=headers)


def status_body(
    code: int, reason: str, message: str, details: dict[str, Any] | None = None, success: bool = False
) -> dict[str, Any]:
    """A ``metav1.Status`` body."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success" if success else "Failure",
    }
    if message:
        body["message"] = message
    if reason:
        body["reason"] = reason
    if details is not None:
        body["details"] = details
    body["code"] = code
    return body


def error_response(error: ApiError, headers: dict[str, str] | None = None) -> web.Response:
    """The ``Status`` response of an ``ApiError``."""
    return json_response(error.to_status(), status=error.code, headers=headers)


def not_found() -> ApiError:
    """404 for a path or resource the server does not serve."""
    return ApiError(404, "NotFound", NOT_FOUND_MESSAGE, {})


def unauthorized() -> ApiError:
    """401 for a missing or wrong bearer token."""
    return ApiError(401, "Unauthorized", "Unauthorized")


def bad_request(message: str) -> ApiError:
    """400 BadRequest."""
    return ApiError(400, "BadRequest", message)


def service_unavailable(message: str) -> ApiError:
    """503 ServiceUnavailable."""
    return ApiError(503, "ServiceUnavailable", message)
