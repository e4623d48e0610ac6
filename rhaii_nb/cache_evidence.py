"""The cache test's evidence, robust to a noisy machine: the repeats' median against the first request.

The guide's own check compares the first request with the ones after it. "Every repeat faster than
the first" is a wall-clock test that one stalled request fails (a busy laptop, a CI runner sharing
its cores), while caching works. The median of the repeats ignores such a stall, yet still falls to
the first request's level when the prefix is not cached (then nothing is cut). Whether the server
itself reports cached prompt tokens is independent of timing altogether.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd


def _cut_pct(first: float, rest: float) -> float:
    if not (first > 0) or math.isnan(rest):
        return math.nan
    return (1.0 - rest / first) * 100.0


def repeats_vs_first(df: pd.DataFrame) -> dict[str, Any]:
    """From a cache test's rows (first request, then repeats of the same prompt, in order): the median
    latency and time to first token of the answered repeats, their cut against the first request in
    percent, the share of repeats faster than the first, and the share the server reported as
    prefix-cache hits (NaN when it reports no cached-token counts)."""
    if len(df) < 2:
        raise ValueError(f"a cache test needs a first request and repeats; got {len(df)} row(s)")
    first = df.iloc[0]
    rest = df.iloc[1:]
    answered = rest[rest["error"].isna()]
    median_latency = float(answered["latency_s"].median()) if len(answered) else math.nan
    median_ttft = float(answered["ttft_s"].median()) if len(answered) else math.nan
    known_hits = answered["hit"].dropna()
    return {
        "first_latency_s": float(first["latency_s"]),
        "first_ttft_s": float(first["ttft_s"]),
        "repeats": len(rest),
        "median_repeat_latency_s": median_latency,
        "median_repeat_ttft_s": median_ttft,
        "latency_cut_pct": _cut_pct(float(first["latency_s"]), median_latency),
        "ttft_cut_pct": _cut_pct(float(first["ttft_s"]), median_ttft),
        "share_faster_than_first": float((answered["latency_s"] < first["latency_s"]).mean())
        if len(answered)
        else math.nan,
        "repeat_hit_share": float(known_hits.astype(bool).mean()) if len(known_hits) else math.nan,
    }


def hits_unreported_reason(evidence: dict[str, Any]) -> str:
    """A skip reason when the server reported no cached-token counts ('' when it did)."""
    if math.isnan(evidence["repeat_hit_share"]):
        return "the server reports no cached prompt tokens (vLLM: --enable-prompt-tokens-details)"
    return ""
