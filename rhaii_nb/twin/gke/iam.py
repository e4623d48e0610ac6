"""Resource Manager for the twin's project: ``projects.get`` and ``testIamPermissions``.

The twin's identity owns every project it is asked about, so ``testIamPermissions`` grants every
well-formed permission requested (``service.resource.verb``), as Resource Manager does for an owner.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from rhaii_nb.twin.gke.errors import invalid_argument

_PERMISSION = re.compile(r"^[a-z][a-zA-Z0-9]*(\.[a-zA-Z0-9]+){2,}$")
PROJECT_CREATE_TIME = "2024-01-15T09:00:00.000Z"


def project_number(project: str) -> str:
    """A stable 12-digit project number derived from the project id."""
    digest = int(hashlib.sha256(project.encode()).hexdigest(), 16)
    return str(100_000_000_000 + digest % 900_000_000_000)


def test_iam_permissions(body: dict[str, Any]) -> dict[str, Any]:
    """The subset of ``body["permissions"]`` held: all of them; 400 for a malformed permission."""
    permissions = body.get("permissions") or []
    if not isinstance(permissions, list):
        raise invalid_argument("Invalid JSON payload: 'permissions' must be a list of strings.")
    bad = [p for p in permissions if not isinstance(p, str) or not _PERMISSION.match(p)]
    if bad:
        raise invalid_argument(f"Permission {bad[0]!s} is not valid.")
    return {"permissions": list(dict.fromkeys(permissions))} if permissions else {}


def project_v1(project: str) -> dict[str, Any]:
    """``cloudresourcemanager`` v1 ``projects.get`` (what ``gcloud projects describe`` reads)."""
    return {
        "projectNumber": project_number(project),
        "projectId": project,
        "lifecycleState": "ACTIVE",
        "name": project,
        "createTime": PROJECT_CREATE_TIME,
    }


def project_v3(project: str) -> dict[str, Any]:
    """``cloudresourcemanager`` v3 ``projects.get``."""
    return {
        "name": f"projects/{project_number(project)}",
        "projectId": project,
        "state": "ACTIVE",
        "displayName": project,
        "createTime": PROJECT_CREATE_TIME,
        "etag": f'W/"{project_number(project)[-8:]}"',
    }


def service_v1(project: str, service: str) -> dict[str, Any]:
    """``serviceusage`` v1 ``services.get``: every API is enabled in the twin's project."""
    return {
        "name": f"projects/{project_number(project)}/services/{service}",
        "parent": f"projects/{project_number(project)}",
        "config": {"name": service, "title": service},
        "state": "ENABLED",
    }
