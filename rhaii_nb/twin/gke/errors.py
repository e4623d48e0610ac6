"""Errors of the twin's Google APIs, shaped as Google answers them.

Google REST errors are ``{"error": {"code": 404, "message": "...", "status": "NOT_FOUND"}}``;
google-api-core maps the HTTP code to its exception classes (``NotFound``, ``AlreadyExists``, ...)
and gcloud prints ``message``.
"""

from __future__ import annotations

from typing import Any

STATUS_OF_CODE = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
}


class GoogleError(Exception):
    """A failed Google API call: HTTP ``code``, canonical ``status`` name and ``message``."""

    def __init__(self, code: int, message: str, status: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or STATUS_OF_CODE.get(code, "UNKNOWN")

    def body(self) -> dict[str, Any]:
        """The JSON error body Google sends."""
        return error_body(self.code, self.message, self.status)


def error_body(code: int, message: str, status: str | None = None) -> dict[str, Any]:
    """``{"error": {"code", "message", "status"}}`` as every Google REST API answers errors."""
    return {
        "error": {"code": code, "message": message, "status": status or STATUS_OF_CODE.get(code, "UNKNOWN")}
    }


def not_found(message: str) -> GoogleError:
    """404 NOT_FOUND."""
    return GoogleError(404, message)


def already_exists(message: str) -> GoogleError:
    """409 ALREADY_EXISTS."""
    return GoogleError(409, message)


def invalid_argument(message: str) -> GoogleError:
    """400 INVALID_ARGUMENT."""
    return GoogleError(400, message)


def failed_precondition(message: str) -> GoogleError:
    """400 FAILED_PRECONDITION (e.g. an operation is already running on the cluster)."""
    return GoogleError(400, message, "FAILED_PRECONDITION")
