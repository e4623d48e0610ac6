"""Charts for the demo (plotly): each function takes measured DataFrames and returns a Figure.

Nothing is shown here: the notebook displays the figure, the run report embeds it. Colours and
fonts are sized for a projector; cache hits are green, misses orange, unknown grey.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

HIT_COLOURS = {"hit": "#2ca02c", "miss": "#ff7f0e", "unknown": "#7f7f7f"}
STAGE_COLOURS = {
    "Pending": "#bcbd22",
    "ContainerCreating": "#17becf",
    "Init": "#9467bd",
    "PodInitializing": "#8c564b",
    "Running": "#1f77b4",
    "Ready": "#2ca02c",
    "Terminating": "#d62728",
    "CrashLoopBackOff": "#e377c2",
}
_FONT = {"size": 16}


def _layout(fig: go.Figure, title: str, x_title: str, y_title: str) -> go.Figure:
    fig.update_layout(
        title={"text": title, "font": {"size": 22}},
        template="plotly_white",
        font=_FONT,
        legend={"font": {"size": 15}},
        margin={"l": 70, "r": 30, "t": 80, "b": 60},
    )
    fig.update_xaxes(title_text=x_title)
    fig.update_yaxes(title_text=y_title)
    return fig


def _require(df: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what} needs columns {missing}; got {list(df.columns)}")


def _hit_label(value: object) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "unknown"
    return "hit" if bool(value) else "miss"


def _with_hit_labels(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(cache=df["hit"].map(_hit_label))


def latency_per_request(
    df: pd.DataFrame, *, metric: str = "latency_s", title: str | None = None
) -> go.Figure:
    """Per-request latency (ms) in request order, hits and misses marked."""
    _require(df, ["i", metric, "hit"], "latency_per_request")
    data = _with_hit_labels(df)
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=data["i"],
            y=data[metric] * 1000,
            mode="lines",
            line={"color": "#cccccc"},
            showlegend=False,
            hoverinfo="skip",
        )
    )
    for label, colour in HIT_COLOURS.items():
        part = data[data["cache"] == label]
        if part.empty:
            continue
        fig.add_trace(
            go.Scatter(
                x=part["i"],
                y=part[metric] * 1000,
                mode="markers",
                name=f"cache {label}",
                marker={"color": colour, "size": 12, "symbol": "circle" if label == "hit" else "x"},
                customdata=part[["replica"]] if "replica" in part else None,
                hovertemplate="request %{x}<br>%{y:.0f} ms<extra>%{customdata[0]}</extra>",
            )
        )
    what = "time to first token" if metric == "ttft_s" else "end-to-end latency"
    return _layout(fig, title or f"Per-request {what}", "request #", f"{what} (ms)")


def latency_distribution(
    df: pd.DataFrame, *, metric: str = "latency_s", title: str | None = None
) -> go.Figure:
    """Latency distribution (ms) of hits vs misses (box plots with every point)."""
    _require(df, [metric, "hit"], "latency_distribution")
    data = _with_hit_labels(df)
    fig = go.Figure()
    for label, colour in HIT_COLOURS.items():
        part = data[data["cache"] == label]
        if part.empty:
            continue
        fig.add_trace(
            go.Box(
                y=part[metric] * 1000,
                name=f"cache {label}",
                marker_color=colour,
                boxpoints="all",
                jitter=0.4,
                pointpos=0,
            )
        )
    what = "time to first token" if metric == "ttft_s" else "end-to-end latency"
    return _layout(fig, title or f"{what.capitalize()}: cache hits vs misses", "", f"{what} (ms)")


def throughput_over_time(df: pd.DataFrame, *, bin_s: float = 1.0, title: str | None = None) -> go.Figure:
    """Completed requests per second over the run (bars) and errors (red)."""
    _require(df, ["t_start", "latency_s", "error"], "throughput_over_time")
    if bin_s <= 0:
        raise ValueError(f"bin_s must be positive, got {bin_s}")
    done = df["t_start"] + df["latency_s"]
    bins = (done // bin_s) * bin_s
    ok = df["error"].isna()
    per_bin = pd.DataFrame({"t": bins, "ok": ok}).groupby("t")["ok"].agg(["sum", "count"])
    fig = go.Figure()
    fig.add_trace(go.Bar(x=per_bin.index, y=per_bin["sum"] / bin_s, name="succeeded", marker_color="#1f77b4"))
    failed = (per_bin["count"] - per_bin["sum"]) / bin_s
    if failed.any():
        fig.add_trace(go.Bar(x=per_bin.index, y=failed, name="failed", marker_color="#d62728"))
    fig.update_layout(barmode="stack")
    return _layout(fig, title or "Throughput over time", "time since start (s)", "requests / s")


def replica_share(df: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """Per replica: share of requests (left) and prefix-cache hit rate of its requests (right)."""
    _require(df, ["replica", "hit"], "replica_share")
    data = df.assign(replica=df["replica"].fillna("(unknown)"))
    counts = data["replica"].value_counts().sort_index()
    known = data.dropna(subset=["hit"])
    hit_rate = (
        known.groupby("replica")["hit"].apply(lambda s: s.astype(bool).mean() * 100).reindex(counts.index)
    )
    fig = make_subplots(rows=1, cols=2, subplot_titles=("requests served", "cache hit rate (%)"))
    fig.add_trace(
        go.Bar(
            x=counts.index,
            y=counts.values,
            name="requests",
            marker_color="#1f77b4",
            text=[f"{v / counts.sum():.0%}" for v in counts.values],
            textposition="auto",
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Bar(x=hit_rate.index, y=hit_rate.values, name="hit rate", marker_color="#2ca02c"), row=1, col=2
    )
    fig.update_yaxes(range=[0, 100], row=1, col=2)
    fig.update_layout(showlegend=False)
    return _layout(fig, title or "Requests and cache hits per replica", "replica", "")


def replica_metrics_chart(stats: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """Per replica from ``/metrics`` (``rhaii_nb.metrics.stats_delta``): prefix-cache hit rate (%)."""
    _require(stats, ["replica", "hit_rate", "queries"], "replica_metrics_chart")
    fig = go.Figure(
        go.Bar(
            x=stats["replica"],
            y=stats["hit_rate"] * 100,
            marker_color="#2ca02c",
            text=[f"{q:,.0f} tokens queried" for q in stats["queries"]],
            textposition="auto",
        )
    )
    fig.update_yaxes(range=[0, 100])
    return _layout(
        fig, title or "Prefix-cache hit rate per replica (vLLM metrics)", "replica", "hit rate (%)"
    )


def _stage_colour(stage: str) -> str | None:
    """Colour of a stage label such as ``Pending``, ``Init:0/1`` or ``Running 0/1`` (``n/n`` = Ready)."""
    if stage in STAGE_COLOURS:
        return STAGE_COLOURS[stage]
    word, _, ready = stage.partition(" ")
    if word == "Running" and ready and len(set(ready.split("/"))) == 1:
        return STAGE_COLOURS["Ready"]
    return STAGE_COLOURS.get(word.split(":")[0])


def pod_timeline(stages: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """Gantt chart of pod lifecycle stages: rows ``pod, stage, start, end`` (datetimes or seconds)."""
    _require(stages, ["pod", "stage", "start", "end"], "pod_timeline")
    data = stages.copy()
    is_time = pd.api.types.is_datetime64_any_dtype(data["start"])
    if is_time:
        data["start"] = pd.to_datetime(data["start"], utc=True)
        # A stage still current (no end yet) lasts until the chart is drawn.
        data["end"] = pd.to_datetime(data["end"], utc=True).fillna(pd.Timestamp.now(tz="UTC"))
        durations = (data["end"] - data["start"]).dt.total_seconds() * 1000  # plotly date axes use ms
    else:
        durations = data["end"] - data["start"]
    fig = go.Figure()
    for stage in dict.fromkeys(data["stage"]):
        mask = data["stage"] == stage
        fig.add_trace(
            go.Bar(
                y=data.loc[mask, "pod"],
                x=durations[mask],
                base=data.loc[mask, "start"],
                orientation="h",
                name=str(stage),
                marker_color=_stage_colour(str(stage)),
            )
        )
    fig.update_layout(barmode="overlay")
    fig.update_yaxes(autorange="reversed")
    if is_time:
        fig.update_xaxes(type="date")
    return _layout(fig, title or "Pod lifecycle", "time" if is_time else "seconds since start", "pod")


def prefix_sweep_chart(table: pd.DataFrame, *, block_size: int = 128, title: str | None = None) -> go.Figure:
    """Cold vs warm TTFT (ms) per shared-prefix length (``SweepResult.table()``), one KV block marked."""
    _require(table, ["length", "cold_ttft_s", "warm_ttft_s"], "prefix_sweep_chart")
    labels = [str(v) for v in table["length"]]
    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            x=labels,
            y=table["cold_ttft_s"] * 1000,
            name="first request (cold)",
            marker_color=HIT_COLOURS["miss"],
        )
    )
    fig.add_trace(
        go.Bar(x=labels, y=table["warm_ttft_s"] * 1000, name="repeat (warm)", marker_color=HIT_COLOURS["hit"])
    )
    if "ttft_cut_pct" in table:
        fig.add_trace(
            go.Scatter(
                x=labels,
                y=table["warm_ttft_s"] * 1000,
                mode="text",
                showlegend=False,
                text=[f"−{c:.0f}%" if c > 0 else "" for c in table["ttft_cut_pct"]],
                textposition="top center",
            )
        )
    fig.update_layout(barmode="group")
    fig.add_annotation(
        text=f"one KV block = {block_size} tokens: shorter prefixes cannot hit",
        showarrow=False,
        xref="paper",
        yref="paper",
        x=0,
        y=1.05,
        xanchor="left",
        font={"size": 14},
    )
    return _layout(
        fig,
        title or "Time to first token vs shared-prefix length",
        "prefix length (tokens)",
        "time to first token (ms)",
    )


def routing_comparison(
    runs: Mapping[str, pd.DataFrame], *, metric: str = "ttft_s", title: str | None = None
) -> go.Figure:
    """Side by side (e.g. ``{"cache-aware": df_on, "round-robin": df_off}``): latency box plots (left)
    and prefix-cache hit rate (right)."""
    if not runs:
        raise ValueError("routing_comparison needs at least one run")
    fig = make_subplots(
        rows=1,
        cols=2,
        column_widths=[0.65, 0.35],
        subplot_titles=(
            "time to first token (ms)" if metric == "ttft_s" else "latency (ms)",
            "cache hit rate (%)",
        ),
    )
    names, rates = [], []
    for name, df in runs.items():
        _require(df, [metric, "hit"], "routing_comparison")
        fig.add_trace(go.Box(y=df[metric] * 1000, name=name, boxpoints="outliers"), row=1, col=1)
        known = df["hit"].dropna()
        names.append(name)
        rates.append(known.astype(bool).mean() * 100 if len(known) else None)
    fig.add_trace(go.Bar(x=names, y=rates, marker_color="#2ca02c", showlegend=False), row=1, col=2)
    fig.update_yaxes(range=[0, 100], row=1, col=2)
    fig.update_layout(showlegend=False)
    return _layout(fig, title or "Cache-aware routing on vs off", "", "")
