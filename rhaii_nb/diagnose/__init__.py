"""``diagnose(session, params)``: look at the cluster the way the guide's troubleshooting section does,
and say what is wrong, why, and how to fix it.

:func:`inspect` gathers what a person would look at with kubectl and gcloud — the
LLMInferenceService status, the vLLM pods and their stages, the namespace's events, the TPU nodes
and their capacity, the node pool as GKE reports it, the TPU quota, the EnvoyFilters in the
gateway's namespace, the EPP pod's containers, the NetworkPolicies, and the recent log lines of the
pods that are not ready — plus, when the service answers, one short cache test through the gateway.
Every part is looked at separately: one that cannot be read is noted, the others still count.

The rules turn those observations into :class:`Finding`\\ s (symptom, likely cause, fix, evidence).
They cover the guide's troubleshooting cases (only 1/3 or 2/3 replicas, cache routing not working,
NetworkPolicy blocking traffic, high latency despite caching) and the failures the twin can stage
(``rhaii_nb.scenarios``: bad HuggingFace token, slow compile, node loss, quota): a finding caused by
a scenario carries its name and the scenario table's cause.

``diagnose(..., fix=True)`` applies the safe fixes only — re-apply missing EnvoyFilters or
NetworkPolicies (server-side apply of the runbook's own manifests) and resize the TPU node pool back
to ``num_nodes`` when the quota allows it — then waits for the service and looks again.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from rhaii_nb.diagnose.findings import Finding, findings_of
from rhaii_nb.diagnose.fixes import FixAction, apply_fixes, wait_after_fixes
from rhaii_nb.diagnose.observe import ClusterView, inspect

__all__ = ["ClusterView", "Diagnosis", "Finding", "FixAction", "diagnose", "findings_of", "inspect"]


@dataclass
class Diagnosis:
    """Findings of one look at the cluster, the fixes applied and the re-check after them."""

    findings: list[Finding]
    view: ClusterView
    fixes: list[FixAction] = field(default_factory=list)
    after: Diagnosis | None = None

    @property
    def problems(self) -> list[Finding]:
        """Findings that are errors or warnings (not info)."""
        return [f for f in self.findings if f.severity != "info"]

    @property
    def healthy(self) -> bool:
        """No error-level finding."""
        return not any(f.severity == "error" for f in self.findings)

    @property
    def causes(self) -> list[str]:
        """The likely causes named, in order."""
        return [f.cause for f in self.findings]

    @property
    def error_causes(self) -> list[str]:
        """The likely causes of error-level findings (empty when healthy)."""
        return [f.cause for f in self.findings if f.severity == "error"]

    @property
    def scenarios(self) -> list[str]:
        """Names of the twin scenarios whose causes were found."""
        return [f.scenario for f in self.findings if f.scenario]

    @property
    def final(self) -> Diagnosis:
        """The re-check after fixes, or this diagnosis."""
        return self.after.final if self.after is not None else self

    def table(self) -> pd.DataFrame:
        """Findings as a table: severity, symptom, likely cause, fix, evidence."""
        marks = {"error": "❌", "warning": "⚠️", "info": "ℹ️"}
        rows = [
            {
                "": marks.get(f.severity, ""),
                "symptom": f.symptom,
                "likely cause": f.cause,
                "fix": f.fix + (" (fix=True applies it)" if f.fixable else ""),
                "evidence": "; ".join(f.evidence[:4]),
            }
            for f in self.findings
        ]
        if not rows:
            rows = [
                {"": "✅", "symptom": "nothing wrong found", "likely cause": "", "fix": "", "evidence": ""}
            ]
        return pd.DataFrame(rows, columns=["", "symptom", "likely cause", "fix", "evidence"])

    def styled(self) -> Any:
        """:meth:`table` for a notebook: every cell in full (no truncation), left-aligned, no index."""
        colours = {"❌": "#fce8e6", "⚠️": "#fef7e0", "✅": "#e6f4ea"}
        return (
            self.table()
            .style.hide(axis="index")
            .set_properties(**{"text-align": "left", "white-space": "pre-wrap"})
            .apply(lambda row: [f"background-color: {colours.get(row.iloc[0], 'white')}"] * len(row), axis=1)
        )

    def fixes_table(self) -> pd.DataFrame:
        """The fixes applied: finding, action, ok, detail."""
        return pd.DataFrame([asdict(f) for f in self.fixes], columns=["finding", "action", "ok", "detail"])

    def summary(self) -> dict[str, Any]:
        """JSON-friendly summary for run records."""
        return {
            "healthy": self.healthy,
            "findings": [f.as_dict() for f in self.findings],
            "fixes": [asdict(f) for f in self.fixes],
            "after": self.after.summary() if self.after is not None else None,
        }


def diagnose(
    session: Any,
    params: Any,
    *,
    fix: bool = False,
    behaviour: bool = True,
    recheck_timeout: float | None = None,
) -> Diagnosis:
    """Inspect the cluster and return findings; with ``fix=True`` apply the safe fixes and look again.

    ``behaviour`` adds one completion and a 6-request cache test through the gateway (when the
    service exists). ``recheck_timeout`` bounds the wait for replicas after a node pool resize
    (default: the params' ready timeout).
    """
    view = inspect(session, params, behaviour=behaviour)
    result = Diagnosis(findings_of(params, view), view)
    if fix and any(f.fixable for f in result.findings):
        result.fixes = apply_fixes(session, params, result.findings, view)
        timeout = recheck_timeout if recheck_timeout is not None else params.wait_s("ready_timeout_s")
        wait_after_fixes(session, params, result.fixes, timeout)
        after = inspect(session, params, behaviour=behaviour)
        result.after = Diagnosis(findings_of(params, after), after)
    return result
