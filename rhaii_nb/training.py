"""Training mode: the scenarios that the runbook itself stages (the twin stages the others).

Two of ``rhaii_nb.scenarios`` are mistakes a person makes while following the guide rather than
failures of the platform: skipping the ext_proc EnvoyFilter (``missing-envoyfilter``) and leaving
out the NetworkPolicy that lets the gateway reach vLLM (``netpol-blocks-gateway``). With such a
scenario on (twin only: params validation rejects scenarios for GKE), the runbook's step applies
its manifests without that object — and believes it applied everything, as the person would.
``diagnose(fix=True)`` re-applies the full set, whatever the scenario.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# scenario -> (kind, name) of the object the runbook's step leaves out
OMITTED_BY_SCENARIO: dict[str, tuple[str, str]] = {
    "missing-envoyfilter": ("EnvoyFilter", "inference-pool-ext-proc-tpu-fix"),
    "netpol-blocks-gateway": ("NetworkPolicy", "allow-gateway-to-vllm"),
}


def omitted(params: Any) -> set[tuple[str, str]]:
    """(kind, name) of every object the params' scenarios make the runbook leave out."""
    if getattr(params, "target", "local") != "local":
        return set()
    return {OMITTED_BY_SCENARIO[s] for s in getattr(params, "scenario", []) or [] if s in OMITTED_BY_SCENARIO}


def as_the_runbook_applies(params: Any, objects: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """``objects`` without the ones a training scenario leaves out (all of them without scenarios)."""
    left_out = omitted(params)
    return [o for o in objects if (o.get("kind"), (o.get("metadata") or {}).get("name")) not in left_out]
