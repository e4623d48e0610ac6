"""``connect(params) -> Session``: every client a notebook needs, for GKE or the twin, chosen once.

The two targets differ only in where the clients point and which credentials they carry:

================  =====================================  ==========================================
                  ``target: gke``                         ``target: local`` (the twin)
================  =====================================  ==========================================
Google APIs       ``*.googleapis.com``, google-auth       the twin's GKE server (one base URL),
                  default credentials                     anonymous credentials
Kubernetes API    endpoint + CA of the GKE cluster        endpoint + CA of the twin's cluster
                  (``get_cluster``), access token         (``get_cluster``), the twin's API token
================  =====================================  ==========================================

In both cases the Kubernetes client is built from the cluster's ``endpoint`` and
``masterAuth.clusterCaCertificate`` as the GKE API reports them — no kubeconfig, no gcloud — lazily on
first use, because the cluster may not exist yet when the session is made (phase 01 creates it; it
calls :meth:`Session.reset_kube` afterwards).

Testing the gke path against the twin: set ``params.gke_api_endpoint`` to the twin's GKE URL and pass
``credentials=google.oauth2.credentials.Credentials(token=<twin token>)``: the very same code then
runs against the twin (the twin's GKE server accepts any bearer token and its Kubernetes API accepts
its own token).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
import ssl
import threading
import warnings
from pathlib import Path
from typing import Any

import yaml
from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials, Credentials
from google.cloud import container_v1

from rhaii_nb import names
from rhaii_nb.gcp import GcpClients, GcpEndpoints, default_credentials
from rhaii_nb.retry import DEFAULT_BACKOFF, STATS, Backoff, urllib3_retry

log = logging.getLogger(__name__)

TLS_OFF_WARNING = (
    "TLS VERIFICATION IS OFF (tls_verify=False): connections to the cluster are NOT authenticated and "
    "can be intercepted — this is what the guide's `curl -k` does. Use it only to debug a certificate "
    "problem, never for a demo or production."
)


class ClusterNotReady(RuntimeError):
    """The Kubernetes API cannot be reached yet: the cluster does not exist or has no endpoint."""


class Session:
    """Clients of one run: Google APIs, the Kubernetes API (lazy), the gateway URL. Re-entrant."""

    def __init__(
        self,
        params: Any,
        gcp: GcpClients,
        kube_token: Any,
        *,
        state_dir: Path,
        twin: Any = None,
        policy: Backoff = DEFAULT_BACKOFF,
    ) -> None:
        self.params = params
        self.gcp = gcp
        self.twin = twin
        self.state_dir = state_dir
        self.policy = policy
        self._kube_token = kube_token
        self._lock = threading.RLock()
        self._api_client: Any = None
        self._apis: dict[str, Any] = {}
        self._gateway_url: str | None = None
        self.ca_path: Path | None = None
        self.kube_host: str | None = None

    # --- identity ---------------------------------------------------------------------------------

    @property
    def target(self) -> str:
        """``gke`` or ``local``."""
        return self.params.target

    @property
    def cluster_path(self) -> str:
        """GKE API name of the cluster: ``projects/P/locations/Z/clusters/C``."""
        return (
            f"projects/{self.params.project}/locations/{self.params.zone}/clusters/{self.params.cluster_name}"
        )

    @property
    def location_path(self) -> str:
        """GKE API parent of the cluster: ``projects/P/locations/Z``."""
        return f"projects/{self.params.project}/locations/{self.params.zone}"

    @property
    def tls_verify(self) -> bool:
        """Whether TLS is verified against the cluster CA (default True; False warns loudly)."""
        return bool(getattr(self.params, "tls_verify", True))

    @property
    def retries(self) -> dict[str, int]:
        """Transient errors absorbed by retries so far, per stack (process-wide)."""
        return dict(STATS.counts)

    # --- Google ---------------------------------------------------------------------------------

    @property
    def gke(self) -> container_v1.ClusterManagerClient:
        """The GKE ``ClusterManagerClient`` (REST). Pass ``retry=session.gcp.retry`` to its calls."""
        return self.gcp.container

    def get_cluster(self) -> container_v1.Cluster | None:
        """The cluster as GKE reports it, or None when it does not exist."""
        try:
            return self.gke.get_cluster(name=self.cluster_path, retry=self.gcp.retry)
        except gexc.NotFound:
            return None

    # --- Kubernetes ------------------------------------------------------------------------------

    def kube_token(self) -> str | None:
        """The bearer token for the Kubernetes API (refreshed when it expires)."""
        return self._kube_token()

    def reset_kube(self) -> None:
        """Forget the Kubernetes clients (after the cluster is created, re-created or deleted)."""
        with self._lock:
            if self._api_client is not None:
                with contextlib.suppress(Exception):  # closing a pool never matters
                    self._api_client.close()
            self._api_client = None
            self._apis.clear()
            self._gateway_url = None

    @property
    def api_client(self) -> Any:
        """``kubernetes.client.ApiClient`` for the cluster, built on first use from the GKE API's view."""
        with self._lock:
            if self._api_client is None:
                from kubernetes import client

                self._api_client = client.ApiClient(self._kube_configuration())
            return self._api_client

    def _kube_configuration(self) -> Any:
        from kubernetes import client

        cluster = self.get_cluster()
        where = f"{self.params.cluster_name} ({self.params.project}/{self.params.zone})"
        if cluster is None:
            raise ClusterNotReady(
                f"Cluster {where} does not exist yet. "
                "Fix: create it first (notebook 01, rhaii_nb.cluster.create)."
            )
        if not cluster.endpoint or not cluster.master_auth.cluster_ca_certificate:
            status = container_v1.Cluster.Status(cluster.status).name
            raise ClusterNotReady(
                f"Cluster {where} has no API endpoint yet (status {status}). Fix: wait for it to be RUNNING "
                "(rhaii_nb.cluster.create waits for you)."
            )
        ca_pem = base64.b64decode(cluster.master_auth.cluster_ca_certificate)
        self.ca_path = self._write_state("cluster-ca.crt", ca_pem)
        self.kube_host = f"https://{cluster.endpoint}"
        cfg = client.Configuration(host=self.kube_host)
        cfg.ssl_ca_cert = str(self.ca_path)
        cfg.verify_ssl = self.tls_verify
        if not self.tls_verify:
            warn_tls_off()
        cfg.api_key_prefix = {"authorization": "Bearer"}
        token_source = self._kube_token

        def refresh_token(configuration: Any) -> None:
            token = token_source()
            if token:
                configuration.api_key["authorization"] = token

        cfg.refresh_api_key_hook = refresh_token
        refresh_token(cfg)
        cfg.retries = urllib3_retry(self.policy)
        return cfg

    def _api(self, name: str) -> Any:
        with self._lock:
            if name not in self._apis:
                from kubernetes import client, dynamic

                factory = {
                    "core": client.CoreV1Api,
                    "apps": client.AppsV1Api,
                    "custom": client.CustomObjectsApi,
                    "networking": client.NetworkingV1Api,
                    "dynamic": dynamic.DynamicClient,
                }[name]
                self._apis[name] = factory(self.api_client)
            return self._apis[name]

    @property
    def core(self) -> Any:
        """``CoreV1Api``."""
        return self._api("core")

    @property
    def apps(self) -> Any:
        """``AppsV1Api``."""
        return self._api("apps")

    @property
    def custom(self) -> Any:
        """``CustomObjectsApi``."""
        return self._api("custom")

    @property
    def networking(self) -> Any:
        """``NetworkingV1Api``."""
        return self._api("networking")

    @property
    def dynamic(self) -> Any:
        """``kubernetes.dynamic.DynamicClient`` (discovery on first use)."""
        return self._api("dynamic")

    def ssl_context(self) -> ssl.SSLContext | bool:
        """TLS settings for httpx calls to the Kubernetes API: the cluster CA, or False (loud)."""
        self.api_client  # noqa: B018 - makes sure ca_path is known
        if not self.tls_verify:
            warn_tls_off()
            return False
        return ssl.create_default_context(cafile=str(self.ca_path))

    # --- gateway ---------------------------------------------------------------------------------

    def gateway_url(self, refresh: bool = False) -> str:
        """``http://<address>`` of the inference gateway, from its ``status.addresses`` (as on GKE)."""
        if self._gateway_url and not refresh:
            return self._gateway_url
        from kubernetes.client.exceptions import ApiException

        try:
            gateway = self.custom.get_namespaced_custom_object(
                "gateway.networking.k8s.io", "v1", names.GATEWAY_NAMESPACE, "gateways", names.GATEWAY_NAME
            )
        except ApiException as exc:
            if exc.status == 404:
                raise ClusterNotReady(
                    f"Gateway {names.GATEWAY_NAMESPACE}/{names.GATEWAY_NAME} not found. Fix: install the "
                    "operators first (notebook 03)."
                ) from None
            raise
        addresses = (gateway.get("status") or {}).get("addresses") or []
        if not addresses or not addresses[0].get("value"):
            raise ClusterNotReady(
                f"Gateway {names.GATEWAY_NAMESPACE}/{names.GATEWAY_NAME} has no address yet "
                "(status.addresses is empty). Fix: wait for it to be Programmed; "
                "on GKE check the load balancer quota."
            )
        self._gateway_url = f"http://{addresses[0]['value']}"
        return self._gateway_url

    def service_base_url(self) -> str:
        """Base URL of the service behind the gateway: ``http://<gateway>/<namespace>/<service>``."""
        return f"{self.gateway_url()}/{self.params.namespace}/{self.params.service_name}"

    # --- files for the user's terminal -----------------------------------------------------------

    def write_kubeconfig(self, path: str | os.PathLike[str]) -> Path:
        """Write a kubeconfig (0600) for ``kubectl`` in a terminal; returns its path, never prints it.

        It holds the current access token: on GKE that token expires after about an hour (run this
        again for a fresh one).
        """
        from rhaii_nb.twin.home import write_file  # small atomic 0600 writer shared with the twin

        self.api_client  # noqa: B018 - resolves host and CA
        assert self.ca_path is not None and self.kube_host is not None
        name = f"rhaii-{self.params.cluster_name}"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": name,
                    "cluster": {
                        "server": self.kube_host,
                        "certificate-authority-data": base64.b64encode(self.ca_path.read_bytes()).decode(),
                    },
                }
            ],
            "users": [{"name": name, "user": {"token": self.kube_token() or ""}}],
            "contexts": [
                {"name": name, "context": {"cluster": name, "user": name, "namespace": self.params.namespace}}
            ],
            "current-context": name,
        }
        target = Path(path).expanduser()
        target.parent.mkdir(parents=True, exist_ok=True)
        write_file(target, yaml.safe_dump(config, sort_keys=False), private=True)
        return target

    def _write_state(self, name: str, data: bytes) -> Path:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        path = self.state_dir / name
        if not path.exists() or path.read_bytes() != data:
            path.write_bytes(data)
        return path

    def close(self) -> None:
        """Close every client (the session can be used again: clients are re-made lazily)."""
        self.reset_kube()
        self.gcp.close()

    def __repr__(self) -> str:
        return f"Session(target={self.target!r}, cluster={self.cluster_path!r})"


def warn_tls_off() -> None:
    """Warn, loudly and every time, that TLS verification is disabled."""
    log.warning(TLS_OFF_WARNING)
    warnings.warn(TLS_OFF_WARNING, UserWarning, stacklevel=3)


_SESSIONS: dict[str, Session] = {}
_SESSIONS_LOCK = threading.Lock()


def _session_key(params: Any, credentials: Credentials | None) -> str:
    dumped = params.model_dump_json() if hasattr(params, "model_dump_json") else repr(vars(params))
    return hashlib.sha256(f"{dumped}|{id(credentials) if credentials else ''}".encode()).hexdigest()


def connect(
    params: Any, *, credentials: Credentials | None = None, policy: Backoff = DEFAULT_BACKOFF
) -> Session:
    """The session for ``params``: the same object again for the same params (re-running a cell is safe).

    ``target: local`` starts the twin when it is not running (``params.twin_home``, ``time_scale``,
    ``scenario``). ``target: gke`` uses google-auth default credentials unless ``credentials`` is given,
    and ``params.gke_api_endpoint`` (if set) instead of Google's endpoints. ``params.verbose`` switches
    the display helpers' verbose mode (``rhaii_nb.display.set_verbose``).
    """
    from rhaii_nb.display import set_verbose

    set_verbose(getattr(params, "verbose", False))  # the notebook's output follows its params
    key = _session_key(params, credentials)
    with _SESSIONS_LOCK:
        session = _SESSIONS.get(key)
        if session is None:
            session = _new_session(params, credentials, policy)
            _SESSIONS[key] = session
        return session


def _new_session(params: Any, credentials: Credentials | None, policy: Backoff) -> Session:
    if params.target == "local":
        from rhaii_nb.twin.client import ensure_twin
        from rhaii_nb.twin.home import TwinHome

        twin = ensure_twin(
            home=params.twin_home, time_scale=params.time_scale, scenarios=tuple(params.scenario)
        )
        home = TwinHome.at(twin.home)
        gcp = GcpClients(
            credentials or AnonymousCredentials(), GcpEndpoints.single(twin.endpoints["gke"]), policy
        )
        return Session(params, gcp, home.token, state_dir=home.root / "session", twin=twin, policy=policy)
    if params.target != "gke":
        raise ValueError(f"unknown target {params.target!r}: use 'local' (the twin) or 'gke'")
    if credentials is None:
        credentials, _ = default_credentials()
    override = getattr(params, "gke_api_endpoint", None)
    endpoints = GcpEndpoints.single(override) if override else GcpEndpoints()
    gcp = GcpClients(credentials, endpoints, policy)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    state_dir = cache / "rhaii-nb" / "gke" / f"{params.project}-{params.zone}-{params.cluster_name}"
    return Session(params, gcp, gcp.tokens.token, state_dir=state_dir, policy=policy)


def forget_sessions() -> None:
    """Close and drop every cached session (tests; a notebook never needs it)."""
    with _SESSIONS_LOCK:
        for session in _SESSIONS.values():
            session.close()
        _SESSIONS.clear()
