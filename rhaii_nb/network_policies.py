"""The guide's optional step 8: the four NetworkPolicies, applied only when the params ask for them.

With ``apply_network_policies: false`` every function here says so and does nothing, so the
notebook runs through and its criteria are recorded as skipped.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

SKIP_REASON = "apply_network_policies is false in the params (optional for a PoC; recommended for production)"


def skip_reason(params: Any) -> str:
    """Why this step is skipped, or ``""`` when it applies."""
    return "" if params.apply_network_policies else SKIP_REASON


def policy_names(params: Any) -> list[str]:
    """Names of the runbook's four NetworkPolicies (what the guide says ``kubectl get`` should list)."""
    from rhaii_nb.manifests import manifests_for

    return [obj["metadata"]["name"] for obj in manifests_for(params, "networkpolicies").objects]


def policy_objects(params: Any) -> list[dict[str, Any]]:
    """The NetworkPolicies the runbook applies (validated; ``rhaii_nb.training`` may leave one out)."""
    from rhaii_nb.manifests import manifests_for
    from rhaii_nb.training import as_the_runbook_applies

    return as_the_runbook_applies(params, manifests_for(params, "networkpolicies").objects)


def apply(session: Any, params: Any, *, show: bool = True) -> Any:
    """Server-side apply the four NetworkPolicies; the ApplyResult, or None (said so) when skipped."""
    from rhaii_nb.apply import apply_objects
    from rhaii_nb.display import show_text

    if skip_reason(params):
        show_text(f"Skipped: {SKIP_REASON}.")
        return None
    return apply_objects(session, policy_objects(params), show=show)


def listed(session: Any, params: Any) -> pd.DataFrame:
    """The NetworkPolicies in the workload namespace (``kubectl get networkpolicies``) and whether each
    is one of the runbook's."""
    answer = session.networking.list_namespaced_network_policy(params.namespace)
    ours = set(policy_names(params))
    rows = [
        {
            "name": item.metadata.name,
            "pod selector": ",".join(
                f"{k}={v}" for k, v in (item.spec.pod_selector.match_labels or {}).items()
            ),
            "policy types": ",".join(item.spec.policy_types or []),
            "runbook's": "✅" if item.metadata.name in ours else "",
        }
        for item in answer.items
    ]
    return pd.DataFrame(rows, columns=["name", "pod selector", "policy types", "runbook's"])


def present(session: Any, params: Any) -> int:
    """How many of the runbook's NetworkPolicies exist."""
    existing = set(listed(session, params)["name"])
    return sum(name in existing for name in policy_names(params))
