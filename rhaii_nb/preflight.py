"""Preflight: everything the runbook needs, checked before anything is created — better than the guide's.

Where the guide's ``preflight-check.sh`` falls short (it never checks TPU quota, only warns about
roles, only looks for secret *files*, checks a wrong CRD name), this checks:

- tools (all optional: the notebooks never shell out; kubectl/gcloud help in a terminal);
- credentials valid (a real GKE API call succeeds);
- permissions: ``testIamPermissions`` on the project for what the runbook does;
- secrets present and well formed (token shape, dockerconfigjson with registry.redhat.io
  credentials) — without revealing them;
- TPU v6e quota in the region (Cloud Quotas ``quotaInfos``, ``TPUS-PER-TPU-FAMILY-per-project-region``,
  dimension ``tpu_family: CT6E``) ≥ the chips the node pool needs;
- the zone offers the machine type (catalog + Compute ``machineTypes.get``) and GKE serves the zone
  (``getServerConfig``).

Returns a :class:`CheckTable`: ✅/❌ (⚠️ for optional) with a fix for each failure, and ``.failed``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from rhaii_nb.gcp_catalog import load_catalog

RUNBOOK_PERMISSIONS = (
    "container.clusters.create",
    "container.clusters.get",
    "container.clusters.update",
    "container.clusters.delete",
    "container.clusters.getCredentials",
    "container.operations.get",
    "container.customResourceDefinitions.create",
    "container.namespaces.create",
    "container.secrets.create",
    "iam.serviceAccounts.actAs",
)
OPTIONAL_TOOLS = {
    "kubectl": "inspect the cluster from a terminal (write_kubeconfig gives you a kubeconfig)",
    "gcloud": "manage the project from a terminal",
    "helm": "only if you install the operators by hand",
    "jq": "only for the guide's own scripts",
}
HF_TOKEN_SHAPE = re.compile(r"^hf_[A-Za-z0-9]{30,}$")
PULL_REGISTRY = "registry.redhat.io"


@dataclass
class Check:
    """One preflight check: ``ok`` True/False, or None when skipped."""

    name: str
    ok: bool | None
    detail: str
    fix: str = ""
    optional: bool = False

    @property
    def mark(self) -> str:
        """✅ passed, ❌ failed, ⚠️ optional and failed, ⏭️ skipped."""
        if self.ok is None:
            return "⏭️"
        if self.ok:
            return "✅"
        return "⚠️" if self.optional else "❌"


@dataclass
class CheckTable:
    """The preflight result: a table a presenter can show and a criteria cell can check."""

    checks: list[Check] = field(default_factory=list)

    @property
    def df(self) -> pd.DataFrame:
        """Columns: check, result, detail, fix (fix only for failures)."""
        rows = [
            {
                "check": c.name + (" (optional)" if c.optional else ""),
                "result": c.mark,
                "detail": c.detail,
                "fix": c.fix if c.ok is False else "",
            }
            for c in self.checks
        ]
        return pd.DataFrame(rows, columns=["check", "result", "detail", "fix"])

    @property
    def failed(self) -> list[Check]:
        """Required checks that failed."""
        return [c for c in self.checks if c.ok is False and not c.optional]

    @property
    def ok(self) -> bool:
        """Whether every required check passed."""
        return not self.failed

    def raise_if_failed(self) -> None:
        """Raise ``PreflightFailed`` naming each failed check and its fix."""
        if self.failed:
            raise PreflightFailed(
                "Preflight failed:\n"
                + "\n".join(f"- {c.name}: {c.detail} — fix: {c.fix}" for c in self.failed)
            )

    def criteria(self) -> list[Any]:
        """One success criterion per required check (optional tools are left out: they never fail a run)."""
        from rhaii_nb.criteria import Criterion

        return [
            Criterion(c.name, c.mark, "==", "✅", note=c.fix if c.ok is False else c.detail)
            for c in self.checks
            if not c.optional
        ]

    def _repr_html_(self) -> str:
        return self.df.to_html(index=False)

    def __repr__(self) -> str:
        return self.df.to_string(index=False)


class PreflightFailed(RuntimeError):
    """At least one required preflight check failed."""


def _guard(name: str, fix: str, fn: Callable[[], Check]) -> Check:
    """Run one check; an unexpected error becomes a failed check (its message, never a secret)."""
    from rhaii_nb.redact import redact

    try:
        return fn()
    except Exception as exc:
        return Check(name, False, redact(f"{type(exc).__name__}: {exc}")[:300], fix)


# --- individual checks --------------------------------------------------------------------------


def check_tools(which: Callable[[str], str | None] = shutil.which) -> list[Check]:
    """Each optional tool present on PATH."""
    return [
        Check(
            f"tool {tool}",
            which(tool) is not None,
            which(tool) or "not on PATH",
            f"install {tool} if you want to {why}",
            optional=True,
        )
        for tool, why in OPTIONAL_TOOLS.items()
    ]


def check_credentials(session: Any, params: Any) -> Check:
    """Credentials are valid: a token can be obtained and the GKE API answers ``list_clusters``."""
    name, fix = (
        "credentials valid",
        (
            "run `gcloud auth application-default login`"
            if params.target == "gke"
            else "restart the twin: rhaii-nb twin up"
        ),
    )

    def run() -> Check:
        session.gcp.tokens.token()
        answer = session.gke.list_clusters(parent=session.location_path, retry=session.gcp.retry)
        who = "Google application-default credentials" if params.target == "gke" else "the twin's GKE API"
        return Check(name, True, f"{who}: GKE API answers ({len(answer.clusters)} clusters in {params.zone})")

    return _guard(name, fix, run)


def check_permissions(session: Any, params: Any, permissions: tuple[str, ...] = RUNBOOK_PERMISSIONS) -> Check:
    """``testIamPermissions`` on the project grants every permission the runbook uses."""
    name = "IAM permissions"
    fix = (
        f"ask a project owner for roles/container.admin and roles/iam.serviceAccountUser on {params.project}"
    )

    def run() -> Check:
        granted = set(session.gcp.test_iam_permissions(params.project, list(permissions)))
        missing = [p for p in permissions if p not in granted]
        if missing:
            return Check(name, False, f"missing: {', '.join(missing)}", fix)
        return Check(name, True, f"all {len(permissions)} granted on project {params.project}")

    return _guard(name, fix, run)


def check_hf_token(params: Any) -> Check:
    """The HuggingFace token file exists and holds something shaped like a token (never shown)."""
    from rhaii_nb.secret_files import SecretFileError, read_hf_token

    name, fix = (
        "HuggingFace token",
        (
            "put your token (https://huggingface.co/settings/tokens) in the file named by hf_token_file, "
            "alone on one line or as the filled-in huggingface-token secret template"
        ),
    )
    path = params.hf_token_file
    if path is None:
        return Check(name, False, "hf_token_file is not set", fix)
    try:
        token = read_hf_token(path)
    except SecretFileError as exc:
        return Check(name, False, str(exc), fix)
    if not HF_TOKEN_SHAPE.match(token):
        return Check(
            name,
            False,
            f"{path}: does not look like a HuggingFace token ('hf_' + at least 30 letters/digits)",
            fix,
        )
    return Check(name, True, f"{path}: present, token-shaped ({len(token)} characters)")


def check_pull_secret(params: Any) -> Check:
    """The pull secret parses as dockerconfigjson and has credentials for registry.redhat.io."""
    from rhaii_nb.secret_files import SecretFileError, read_dockerconfigjson

    name, fix = (
        "registry pull secret",
        (
            f"`podman login {PULL_REGISTRY}`, then put the auth file (base64 -w0) in the filled-in "
            "redhat-pull secret template named by pull_secret_file"
        ),
    )
    path = params.pull_secret_file
    if path is None:
        return Check(name, False, "pull_secret_file is not set", fix)
    try:
        auths = json.loads(read_dockerconfigjson(path))["auths"]
    except SecretFileError as exc:
        return Check(name, False, str(exc), fix)
    entry = auths.get(PULL_REGISTRY) or auths.get(f"https://{PULL_REGISTRY}")
    if not isinstance(entry, dict):
        return Check(
            name,
            False,
            f"{path}: no credentials for {PULL_REGISTRY} (has: {', '.join(sorted(auths)) or 'none'})",
            fix,
        )
    if not _has_credentials(entry):
        return Check(
            name,
            False,
            f"{path}: the {PULL_REGISTRY} entry has no usable 'auth' (user:password) or username/password",
            fix,
        )
    return Check(name, True, f"{path}: dockerconfigjson with credentials for {PULL_REGISTRY}")


def _has_credentials(entry: dict[str, Any]) -> bool:
    if isinstance(entry.get("username"), str) and isinstance(entry.get("password"), str):
        return bool(entry["username"] and entry["password"])
    auth = entry.get("auth")
    if not isinstance(auth, str):
        return False
    try:
        user, sep, password = base64.b64decode(auth, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return bool(user and sep and password)


def tpu_quota_chips(session: Any, params: Any) -> int | None:
    """The project's on-demand TPU v6e chip quota in the params' region (None = unlimited)."""
    catalog = load_catalog()
    infos = session.gcp.list_quota_infos(params.project, "compute.googleapis.com")
    matching = [i for i in infos if i.get("quotaId") == catalog.tpu_quota_id]
    if not matching:
        raise LookupError(f"quota {catalog.tpu_quota_id} not listed for compute.googleapis.com")
    best: tuple[int, int] | None = None  # (specificity, value)
    for info in matching:
        for dims in info.get("dimensionsInfos", []):
            d = dims.get("dimensions") or {}
            if d.get("tpu_family", catalog.tpu_quota_family) != catalog.tpu_quota_family:
                continue
            if "region" in d and d["region"] != params.region:
                continue
            specificity = ("region" in d) + ("tpu_family" in d)
            value = int((dims.get("details") or {}).get("value", 0))
            if best is None or specificity > best[0]:
                best = (specificity, value)
    if best is None:
        raise LookupError(f"no {catalog.tpu_quota_family} quota entry applies to region {params.region}")
    return None if best[1] < 0 else best[1]


def check_quota(session: Any, params: Any) -> Check:
    """TPU v6e quota in the region ≥ the chips of the node pool (num_nodes × chips per node)."""
    need = params.pool_chips
    name = "TPU v6e quota"
    fix = (
        f"request ≥ {need} chips of TPUS-PER-TPU-FAMILY (CT6E) in {params.region}: IAM & Admin > Quotas, "
        "or lower num_nodes/replicas"
    )

    def run() -> Check:
        quota = tpu_quota_chips(session, params)
        if quota is None:
            return Check(name, True, f"unlimited in {params.region}; need {need}")
        ok = quota >= need
        return Check(
            name,
            ok,
            f"{quota} chips in {params.region}; the pool needs {need} "
            f"({params.num_nodes} × {params.chips_per_node})",
            "" if ok else fix,
        )

    return _guard(name, fix, run)


def check_zone(session: Any, params: Any) -> Check:
    """The zone offers the TPU machine type (catalog + Compute API) and GKE serves the zone."""
    catalog = load_catalog()
    name = "zone offers machine type"
    fix = f"use a TPU v6e zone: {', '.join(sorted(catalog.zones_with_tpu_v6e))}"
    if not catalog.offers(params.zone, params.machine_type):
        return Check(name, False, f"{params.machine_type} is not offered in {params.zone}", fix)

    def run() -> Check:
        offered = session.gcp.machine_type(params.project, params.zone, params.machine_type)
        if offered is None:
            return Check(
                name, False, f"Compute Engine does not offer {params.machine_type} in {params.zone}", fix
            )
        config = session.gke.get_server_config(name=session.location_path, retry=session.gcp.retry)
        version = config.default_cluster_version or "available"
        return Check(
            name, True, f"{params.machine_type} in {params.zone} (catalog and Compute API); GKE {version}"
        )

    return _guard(name, f"check that GKE is available in {params.zone} for project {params.project}", run)


def run(session: Any, params: Any, *, include_tools: bool = True) -> CheckTable:
    """Run every preflight check; never raises for a failed check (see ``CheckTable.raise_if_failed``)."""
    from rhaii_nb.redact import register_params

    register_params(params)  # whatever goes wrong below, secret values are masked
    checks: list[Check] = check_tools() if include_tools else []
    checks.append(check_credentials(session, params))
    checks.append(check_permissions(session, params))
    checks.append(check_hf_token(params))
    checks.append(check_pull_secret(params))
    checks.append(check_quota(session, params))
    checks.append(check_zone(session, params))
    return CheckTable(checks)
