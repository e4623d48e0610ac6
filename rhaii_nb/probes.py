"""Probe the inference service: health, models, completion, chat — internally and through the gateway.

- ``internal``: through the Kubernetes API's service proxy,
  ``<api>/api/v1/namespaces/<ns>/services/https:<svc>:8000/proxy/<path>``, with the session's host,
  cluster CA and bearer token — what the guide does with ``kubectl run curl -k``, but with TLS verified.
- ``external``: through the inference gateway, ``http://<gateway address>/<ns>/<svc>/<path>``.

Each probe returns a :class:`ProbeResult` (status, latency, ok, short body summary) a criteria cell
can check; :func:`probe_all` gives them as a DataFrame.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Any

import httpx
import pandas as pd

from rhaii_nb import names
from rhaii_nb.retry import RetryTransport

DEFAULT_MODEL = "/mnt/models"
WORKLOAD_PORT = 8000
PROBES = ("health", "models", "completion", "chat")


@dataclass
class ProbeResult:
    """One probe's outcome."""

    probe: str
    via: str
    url: str
    status: int | None
    latency_s: float | None
    ok: bool
    summary: str

    def as_dict(self) -> dict[str, Any]:
        """Plain dict (for tables and run records)."""
        return asdict(self)


def internal_base_url(session: Any, params: Any) -> str:
    """Service-proxy URL of the workload Service's https port on the Kubernetes API."""
    session.api_client  # noqa: B018 - resolves the API host
    svc = names.workload_service(params.service_name)
    return (
        f"{session.kube_host}/api/v1/namespaces/{params.namespace}/services/https:{svc}:{WORKLOAD_PORT}/proxy"
    )


def _client(session: Any, via: str, timeout: float) -> httpx.Client:
    if via == "internal":
        token = session.kube_token()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        verify = session.ssl_context()
        return httpx.Client(headers=headers, timeout=timeout, transport=RetryTransport(verify=verify))
    if via == "external":
        return httpx.Client(timeout=timeout, transport=RetryTransport())
    raise ValueError(f"via must be 'internal' or 'external', not {via!r}")


def _request(probe: str, model: str) -> tuple[str, str, dict[str, Any] | None]:
    if probe == "health":
        return "GET", "/health", None
    if probe == "models":
        return "GET", "/v1/models", None
    if probe == "completion":
        return (
            "POST",
            "/v1/completions",
            {
                "model": model,
                "prompt": "Explain machine learning in one sentence:",
                "max_tokens": 20,
            },
        )
    if probe == "chat":
        return (
            "POST",
            "/v1/chat/completions",
            {
                "model": model,
                "messages": [{"role": "user", "content": "Say hello in French."}],
                "max_tokens": 20,
            },
        )
    raise ValueError(f"unknown probe {probe!r}; known: {', '.join(PROBES)}")


def _summarise(probe: str, response: httpx.Response) -> tuple[bool, str]:
    if response.status_code != 200:
        return False, f"HTTP {response.status_code}: {response.text[:160]}"
    if probe == "health":
        return True, "healthy"
    try:
        body = response.json()
    except json.JSONDecodeError:
        return False, f"not JSON: {response.text[:120]}"
    if probe == "models":
        ids = [m.get("id") for m in body.get("data", [])]
        return bool(ids), f"models: {', '.join(map(str, ids)) or 'none'}"
    choices = body.get("choices") or []
    if not choices:
        return False, "no 'choices' in the response"
    first = choices[0]
    text = first.get("text") if probe == "completion" else (first.get("message") or {}).get("content")
    usage = body.get("usage") or {}
    return bool(text), f"{(text or '').strip()[:80]!r} ({usage.get('completion_tokens', '?')} tokens)"


def probe(
    session: Any,
    params: Any,
    name: str,
    *,
    via: str = "internal",
    model: str | None = None,
    timeout: float | None = None,
) -> ProbeResult:
    """Run one probe (``health``, ``models``, ``completion``, ``chat``) via ``internal`` or ``external``."""
    method, path, body = _request(name, model or DEFAULT_MODEL)
    base = internal_base_url(session, params) if via == "internal" else session.service_base_url()
    url = base + path
    request_timeout = timeout or getattr(params, "request_timeout_s", 60.0)
    with _client(session, via, request_timeout) as client:
        started = time.perf_counter()
        try:
            response = client.request(method, url, json=body)
        except httpx.HTTPError as exc:
            return ProbeResult(name, via, url, None, None, False, f"{type(exc).__name__}: {exc}")
        latency = time.perf_counter() - started
    ok, summary = _summarise(name, response)
    return ProbeResult(name, via, url, response.status_code, round(latency, 4), ok, summary)


def detect_model(session: Any, params: Any, via: str = "internal") -> str:
    """The served model id from ``/v1/models`` (vLLM says ``/mnt/models`` without --served-model-name)."""
    _, path, _ = _request("models", DEFAULT_MODEL)
    base = internal_base_url(session, params) if via == "internal" else session.service_base_url()
    with _client(session, via, getattr(params, "request_timeout_s", 60.0)) as client:
        response = client.get(base + path)
    if response.status_code == 200:
        data = response.json().get("data") or []
        if data and data[0].get("id"):
            return str(data[0]["id"])
    return DEFAULT_MODEL


def probe_all(
    session: Any,
    params: Any,
    *,
    via: tuple[str, ...] = ("internal", "external"),
    probes: tuple[str, ...] = PROBES,
) -> pd.DataFrame:
    """Every probe through every path, as a DataFrame (probe, via, url, status, latency_s, ok, summary)."""
    rows = []
    for path in via:
        model = detect_model(session, params, path)
        rows += [probe(session, params, name, via=path, model=model).as_dict() for name in probes]
    return pd.DataFrame(rows, columns=["probe", "via", "url", "status", "latency_s", "ok", "summary"])
