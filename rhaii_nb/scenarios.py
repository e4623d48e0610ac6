"""The twin's failure scenarios: what each does, where the runbook notices, and the fix.

One table shared by params validation, the twin, the troubleshooting helpers and the README.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scenario:
    """A failure the twin can stage, described the way a trainee meets it."""

    name: str
    what: str  # what the twin does differently
    symptom: str  # what the trainee sees
    fails_at: str  # notebook (phase) where the runbook fails or degrades
    cause: str  # the cause `diagnose()` must name
    fix: str  # what fixes it
    fixable: bool  # whether `diagnose(fix=True)` can repair it safely


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in [
        Scenario(
            name="quota-short",
            what="The region's TPU v6e quota is 8 chips (12 needed); a pool created anyway gets "
            "only 2 nodes, so one replica cannot schedule.",
            symptom="Preflight fails its quota check; run past it and only 2/3 replicas become Ready, "
            "one vLLM pod Pending with '0/2 nodes are available: 2 Insufficient google.com/tpu'.",
            fails_at="00_preflight",
            cause="Not enough TPU nodes (chips) for the requested replicas.",
            fix="Request more TPU v6e quota, or resize the node pool to one node per replica within quota.",
            fixable=False,
        ),
        Scenario(
            name="bad-hf-token",
            what="The storage-initializer gets 401 Unauthorized from HuggingFace.",
            symptom="vLLM pods stay in Init:CrashLoopBackOff; storage-initializer log shows 401.",
            fails_at="04_inference_service",
            cause="The HuggingFace token is invalid or lacks access to the model.",
            fix="Put a valid token in the hf_token_file, re-create the hf-token secret and restart the pods.",
            fixable=False,
        ),
        Scenario(
            name="slow-compile",
            what="XLA compilation takes 4x longer than usual.",
            symptom="Pods sit at Running 0/1 long after the weights load; log stops at 'Compiling'.",
            fails_at="04_inference_service",
            cause="XLA compilation still in progress (first start on TPU takes minutes).",
            fix="Wait longer (raise ready_timeout_s); the compiled graphs are cached afterwards.",
            fixable=False,
        ),
        Scenario(
            name="node-loss",
            what="A TPU node disappears shortly after the replicas become Ready.",
            symptom="One replica goes back to Pending; the node pool reports fewer nodes than requested.",
            fails_at="08_verify",
            cause="A TPU node was lost (preemption or maintenance); its replica cannot reschedule.",
            fix="Resize the node pool back to the requested node count.",
            fixable=True,
        ),
        Scenario(
            name="api-flaky",
            what="A share of Kubernetes and GKE API calls answer 500 or 429 with Retry-After.",
            symptom="Occasional retries logged; the run still passes.",
            fails_at="",
            cause="Transient API errors (the helpers retry them).",
            fix="Nothing to fix: retries with backoff absorb them.",
            fixable=False,
        ),
        Scenario(
            name="missing-envoyfilter",
            what="The runbook's EnvoyFilter step skips the ext_proc filter, so the EPP is bypassed.",
            symptom="Requests spread round-robin across replicas; no prefix-cache speed-up.",
            fails_at="10_cache_behaviour",
            cause="An EnvoyFilter of cache-aware routing is missing.",
            fix="Re-apply the three EnvoyFilters.",
            fixable=True,
        ),
        Scenario(
            name="netpol-blocks-gateway",
            what="The NetworkPolicy step omits allow-gateway-to-vllm while default-deny is on.",
            symptom="The gateway answers 503 'upstream connect error or disconnect/reset before headers. "
            "reset reason: connection failure'.",
            fails_at="07_network_policies",
            cause="A NetworkPolicy blocks gateway traffic to the vLLM pods.",
            fix="Apply the allow-gateway-to-vllm NetworkPolicy.",
            fixable=True,
        ),
    ]
}


def get_scenario(name: str) -> Scenario:
    """Return the scenario called ``name``; KeyError naming the known ones otherwise."""
    try:
        return SCENARIOS[name]
    except KeyError:
        raise KeyError(f"unknown scenario {name!r}; known: {', '.join(sorted(SCENARIOS))}") from None
