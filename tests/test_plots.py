"""Charts built from real measurements against a cpu-test replica."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import pytest

from rhaii_nb import measure, metrics, plots
from rhaii_nb.twin.inference.background import BackgroundReplicas


@pytest.fixture(scope="module")
def measured():
    with BackgroundReplicas("cpu-test", count=2) as replicas:
        before = metrics.replica_stats(replicas.metrics_urls)
        cache = measure.cache_test(replicas.urls[0], requests=5)
        load = measure.load(replicas.urls[1], ["hello there", "general kenobi"], requests=12, concurrency=3)
        sweep = measure.prefix_sweep(replicas.urls[1], lengths=[3, 64], repeats=1)
        stats = metrics.stats_delta(before, metrics.replica_stats(replicas.metrics_urls))
    return {"cache": cache, "load": load, "sweep": sweep, "stats": stats}


def _names(fig: go.Figure) -> list[str]:
    return [trace.name for trace in fig.data if trace.name]


@pytest.mark.timeout(60)
def test_latency_per_request_marks_hits_and_misses(measured):
    df = measured["cache"].df
    fig = plots.latency_per_request(df)
    assert _names(fig) == ["cache hit", "cache miss"]
    hits = next(t for t in fig.data if t.name == "cache hit")
    assert len(hits.x) == 4 and list(hits.x) == [1, 2, 3, 4]
    assert fig.layout.yaxis.title.text == "end-to-end latency (ms)"
    assert (
        plots.latency_per_request(df, metric="ttft_s").layout.title.text == "Per-request time to first token"
    )


@pytest.mark.timeout(60)
def test_distribution_throughput_and_replica_charts(measured):
    cache_df, load_df = measured["cache"].df, measured["load"].df
    box = plots.latency_distribution(cache_df)
    assert _names(box) == ["cache hit", "cache miss"] and all(isinstance(t, go.Box) for t in box.data)
    throughput = plots.throughput_over_time(load_df, bin_s=0.1)
    assert sum(throughput.data[0].y) * 0.1 == pytest.approx(12)
    assert throughput.layout.yaxis.title.text == "requests / s"
    both = pd.concat([cache_df, load_df], ignore_index=True)
    share = plots.replica_share(both)
    assert list(share.data[0].x) == ["replica-0", "replica-1"] and list(share.data[0].y) == [5, 12]
    assert share.data[1].y[0] == pytest.approx(80.0)  # 4 of the 5 cache-test requests hit
    from_metrics = plots.replica_metrics_chart(measured["stats"])
    assert len(from_metrics.data[0].x) == 2


@pytest.mark.timeout(60)
def test_sweep_and_routing_comparison(measured):
    table = measured["sweep"].table()
    fig = plots.prefix_sweep_chart(table, block_size=16)
    assert _names(fig) == ["first request (cold)", "repeat (warm)"]
    assert list(fig.data[0].x) == ["3", "64"]
    comparison = plots.routing_comparison(
        {"cache-aware": measured["cache"].df, "round-robin": measured["load"].df}
    )
    rates = comparison.data[-1]
    assert list(rates.x) == ["cache-aware", "round-robin"] and rates.y[1] == 0


def test_pod_timeline_accepts_datetimes_and_seconds():
    start = pd.Timestamp("2026-01-01T10:00:00")
    stages = pd.DataFrame(
        [
            {"pod": "vllm-0", "stage": "Pending", "start": start, "end": start + pd.Timedelta(seconds=30)},
            {
                "pod": "vllm-0",
                "stage": "Running",
                "start": start + pd.Timedelta(seconds=30),
                "end": start + pd.Timedelta(seconds=300),
            },
            {"pod": "vllm-1", "stage": "Pending", "start": start, "end": start + pd.Timedelta(seconds=45)},
        ]
    )
    fig = plots.pod_timeline(stages)
    assert _names(fig) == ["Pending", "Running"]
    assert list(fig.data[0].x) == [30_000, 45_000] and fig.layout.xaxis.type == "date"
    seconds = stages.assign(start=[0, 30, 0], end=[30, 300, 45])
    assert list(plots.pod_timeline(seconds).data[1].x) == [270]
    with pytest.raises(ValueError, match=r"needs columns \['end'\]"):
        plots.pod_timeline(stages.drop(columns="end"))
