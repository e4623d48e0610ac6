"""Google Cloud clients for both targets: GKE (container v1, REST), Cloud Quotas and Resource Manager IAM.

On GKE they talk to ``*.googleapis.com`` with google-auth default credentials; on the twin they talk
to the twin's GKE server (one base URL serves all three APIs) with anonymous credentials. The
callers never know which: only :class:`GcpEndpoints` and the credentials differ.
"""

from __future__ import annotations

import threading
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import httpx
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials, Credentials
from google.cloud import container_v1

from rhaii_nb.retry import DEFAULT_BACKOFF, Backoff, RetryTransport, google_retry

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"


class CredentialsError(RuntimeError):
    """Google credentials are missing or cannot be refreshed; the message names the fix."""


@dataclass(frozen=True)
class GcpEndpoints:
    """Base URLs of the Google APIs the runbook calls."""

    container: str = "https://container.googleapis.com"
    quotas: str = "https://cloudquotas.googleapis.com"
    resource_manager: str = "https://cloudresourcemanager.googleapis.com"
    compute: str = "https://compute.googleapis.com"

    @classmethod
    def single(cls, base_url: str) -> GcpEndpoints:
        """All the APIs behind one base URL (the twin's GKE server)."""
        base = base_url.rstrip("/")
        return cls(container=base, quotas=base, resource_manager=base, compute=base)

    @property
    def is_google(self) -> bool:
        """Whether these are Google's own endpoints."""
        return self.container.startswith("https://container.googleapis.com")


def default_credentials() -> tuple[Credentials, str | None]:
    """google-auth application-default credentials with the cloud-platform scope, and their project."""
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        return google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
    except DefaultCredentialsError as exc:
        raise CredentialsError(
            "No Google credentials found. Fix: run `gcloud auth application-default login` "
            "(or set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file)."
        ) from exc


class TokenSource:
    """Access tokens from google-auth credentials, refreshed when expired (thread-safe)."""

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials
        self._lock = threading.Lock()

    def token(self) -> str | None:
        """A valid access token, or None for anonymous credentials."""
        if isinstance(self.credentials, AnonymousCredentials):
            return None
        with self._lock:
            if not self.credentials.valid:
                import google.auth.transport.requests
                from google.auth.exceptions import RefreshError

                try:
                    self.credentials.refresh(google.auth.transport.requests.Request())
                except RefreshError:
                    # a RefreshError's message can quote the token server's answer: keep it out
                    raise CredentialsError(
                        "Google credentials could not be refreshed. Fix: run "
                        "`gcloud auth application-default login` again."
                    ) from None
            return self.credentials.token


class _BearerAuth(httpx.Auth):
    """httpx auth adding the current access token (if any)."""

    def __init__(self, tokens: TokenSource) -> None:
        self.tokens = tokens

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self.tokens.token()
        if token:
            request.headers["Authorization"] = f"Bearer {token}"
        yield request


class GcpClients:
    """The Google API clients of one session: GKE, Cloud Quotas, Resource Manager."""

    def __init__(self, credentials: Credentials, endpoints: GcpEndpoints, policy: Backoff = DEFAULT_BACKOFF):
        self.credentials = credentials
        self.endpoints = endpoints
        self.policy = policy
        self.tokens = TokenSource(credentials)
        self.retry = google_retry(policy)
        self._container: container_v1.ClusterManagerClient | None = None
        self._http: httpx.Client | None = None

    @property
    def container(self) -> container_v1.ClusterManagerClient:
        """GKE ``ClusterManagerClient`` over REST (pass ``retry=self.retry`` to calls)."""
        if self._container is None:
            self._container = container_v1.ClusterManagerClient(
                credentials=self.credentials,
                transport="rest",
                client_options=ClientOptions(api_endpoint=self.endpoints.container),
            )
        return self._container

    @property
    def http(self) -> httpx.Client:
        """httpx client (auth + retries) for the Quotas and IAM REST calls."""
        if self._http is None:
            self._http = httpx.Client(
                auth=_BearerAuth(self.tokens),
                transport=RetryTransport(policy=self.policy),
                timeout=httpx.Timeout(30.0),
            )
        return self._http

    def list_quota_infos(self, project: str, service: str = "compute.googleapis.com") -> list[dict[str, Any]]:
        """Cloud Quotas ``quotaInfos`` of a service (limits, not usage), all pages."""
        url = f"{self.endpoints.quotas}/v1/projects/{project}/locations/global/services/{service}/quotaInfos"
        infos: list[dict[str, Any]] = []
        params: dict[str, str] = {"pageSize": "500"}
        while True:
            response = self.http.get(url, params=params)
            raise_for_google_status(response, f"listing quotas of {service} in project {project}")
            body = response.json()
            infos.extend(body.get("quotaInfos", []))
            token = body.get("nextPageToken")
            if not token:
                return infos
            params["pageToken"] = token

    def test_iam_permissions(self, project: str, permissions: list[str]) -> list[str]:
        """The subset of ``permissions`` the caller holds on the project (Resource Manager v3)."""
        url = f"{self.endpoints.resource_manager}/v3/projects/{project}:testIamPermissions"
        response = self.http.post(url, json={"permissions": permissions})
        raise_for_google_status(response, f"testing IAM permissions on project {project}")
        return list(response.json().get("permissions", []))

    def machine_type(self, project: str, zone: str, name: str) -> dict[str, Any] | None:
        """Compute Engine ``machineTypes.get`` in a zone; None when the zone does not offer it (404)."""
        url = f"{self.endpoints.compute}/compute/v1/projects/{project}/zones/{zone}/machineTypes/{name}"
        response = self.http.get(url)
        if response.status_code == 404:
            return None
        raise_for_google_status(response, f"looking up machine type {name} in {zone}")
        return response.json()

    def close(self) -> None:
        """Close the HTTP clients."""
        if self._http is not None:
            self._http.close()
            self._http = None


class GoogleApiError(RuntimeError):
    """A Google REST call answered an error; carries the HTTP status and Google's status name."""

    def __init__(self, status_code: int, status: str, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.status = status


def raise_for_google_status(response: httpx.Response, doing: str) -> None:
    """Raise :class:`GoogleApiError` with Google's error message when ``response`` is not 2xx."""
    if response.is_success:
        return
    status, message = "", response.reason_phrase
    try:
        error = response.json().get("error", {})
        status, message = error.get("status", ""), error.get("message", message)
    except ValueError:
        pass
    raise GoogleApiError(
        response.status_code, status, f"{doing} failed: HTTP {response.status_code} {message}"
    )
