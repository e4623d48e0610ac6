"""``ApiError`` and field errors, worded and shaped as kube-apiserver words and shapes them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from rhaii_nb.twin.resources import ResourceType


class ApiError(Exception):
    """An API failure the HTTP layer turns into a ``Status`` body with ``code``."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def to_status(self) -> dict[str, Any]:
        """The ``metav1.Status`` body for this error."""
        status: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details is not None:
            status["details"] = self.details
        status["code"] = self.code
        return status

    def __repr__(self) -> str:
        return f"ApiError({self.code}, {self.reason!r}, {self.message!r})"


def _details(rt: ResourceType, name: str, kind: str | None = None) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name}
    if rt.group:
        details["group"] = rt.group
    details["kind"] = kind or rt.plural
    return details


def not_found(rt: ResourceType, name: str) -> ApiError:
    """404 ``pods "x" not found``."""
    return ApiError(404, "NotFound", f'{rt.group_resource} "{name}" not found', _details(rt, name))


def already_exists(rt: ResourceType, name: str) -> ApiError:
    """409 ``pods "x" already exists``."""
    return ApiError(409, "AlreadyExists", f'{rt.group_resource} "{name}" already exists', _details(rt, name))


def conflict(rt: ResourceType, name: str, why: str) -> ApiError:
    """409 ``Operation cannot be fulfilled on pods "x": <why>``."""
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {rt.group_resource} "{name}": {why}',
        _details(rt, name),
    )


STALE_OBJECT = "the object has been modified; please apply your changes to the latest version and try again"


def forbidden(rt: ResourceType, name: str, why: str) -> ApiError:
    """403 ``pods "x" is forbidden: <why>``."""
    subject = f'{rt.group_resource} "{name}"' if name else rt.group_resource
    return ApiError(403, "Forbidden", f"{subject} is forbidden: {why}", _details(rt, name))


def bad_request(message: str) -> ApiError:
    """400 BadRequest."""
    return ApiError(400, "BadRequest", message)


def method_not_allowed(message: str) -> ApiError:
    """405 MethodNotAllowed."""
    return ApiError(405, "MethodNotAllowed", message)


_NO_VALUE_TYPES = {"Required value", "Forbidden", "Too long", "Internal error"}
_CAUSE_REASON = {
    "Invalid value": "FieldValueInvalid",
    "Required value": "FieldValueRequired",
    "Unsupported value": "FieldValueNotSupported",
    "Forbidden": "FieldValueForbidden",
    "Too long": "FieldValueTooLong",
    "Too many": "FieldValueTooMany",
    "Duplicate value": "FieldValueDuplicate",
    "Not found": "FieldValueNotFound",
    "Internal error": "InternalError",
}

_MISSING = object()


def go_value(value: Any) -> str:
    """Format a bad value the way Go's field errors do (%q for strings, %v for numbers)."""
    if value is None:
        return '"null"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@dataclass
class FieldError:
    """One ``field.Error``: type is the Go error type text (``Invalid value``, ``Required value``...)."""

    field: str
    type: str
    value: Any = _MISSING
    detail: str = ""
    reason_override: str | None = None

    def body(self) -> str:
        """``Invalid value: "x": detail`` (the message without the field path)."""
        text = self.type
        if self.type not in _NO_VALUE_TYPES and self.value is not _MISSING:
            text += f": {go_value(self.value)}"
        if self.detail:
            text += f": {self.detail}"
        return text

    def __str__(self) -> str:
        return f"{self.field}: {self.body()}"

    def cause(self) -> dict[str, Any]:
        """The ``StatusCause`` entry for ``details.causes``."""
        reason = self.reason_override or _CAUSE_REASON.get(self.type, "FieldValueInvalid")
        return {"reason": reason, "message": self.body(), "field": self.field}


def invalid(rt: ResourceType, name: str, errors: list[FieldError]) -> ApiError:
    """422 Invalid: ``Deployment.apps "x" is invalid: spec.replicas: Invalid value: ...``."""
    summary = str(errors[0]) if len(errors) == 1 else "[" + ", ".join(str(e) for e in errors) + "]"
    details = _details(rt, name, kind=rt.kind)
    details["causes"] = [e.cause() for e in errors]
    return ApiError(422, "Invalid", f'{rt.qualified_kind} "{name}" is invalid: {summary}', details)
