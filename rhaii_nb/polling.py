"""How often a wait asks again: the real interval on GKE, a short one on the twin.

On GKE a status changes over minutes, so asking every few seconds costs nothing and loses little. On the
twin the same change takes a fraction of a second (durations scale with ``time_scale``), so a
multi-second interval would make the wait itself most of the step.
"""

from __future__ import annotations

from typing import Any

# Each ask is one local HTTP call to the twin (a few ms of CPU): five a second is cheap.
TWIN_POLL_S = 0.2


def poll_interval(params: Any, seconds: float) -> float:
    """``seconds`` on GKE; on the twin at most :data:`TWIN_POLL_S`."""
    if getattr(params, "target", "gke") == "gke":
        return seconds
    return min(seconds, TWIN_POLL_S)
