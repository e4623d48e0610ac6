"""The measuring helpers against real replica servers over sockets (cpu-test profile)."""

from __future__ import annotations

import asyncio
import math
import socket
import ssl

import numpy as np
import pandas as pd
import pytest
from aiohttp import web

from rhaii_nb import measure, metrics, workload
from rhaii_nb.twin.inference import CPU_TEST
from rhaii_nb.twin.inference.background import BackgroundReplicas


@pytest.fixture(scope="module")
def replicas():
    with BackgroundReplicas("cpu-test", count=2) as running:
        yield running


@pytest.fixture(autouse=True)
def _fresh_caches(replicas):
    for server in replicas.servers:
        server.reset()


def test_workload_prompts_are_deterministic_and_sized():
    prefix = workload.long_prefix(300, seed=1, label="Policy 0")
    assert prefix == workload.long_prefix(300, seed=1, label="Policy 0")
    assert 300 <= workload.estimate_tokens(prefix) <= 320
    prompts = workload.shared_prefix_workload(prefixes=3, suffixes=4, prefix_tokens=200, seed=2)
    assert len(prompts) == 12 and [p.prefix_id for p in prompts[:4]] == [0, 1, 2, 0]
    heads = {p.prefix_id: p.text[:40] for p in prompts}
    assert len(set(heads.values())) == 3  # prefixes differ from their first block on
    assert all(p.text.startswith(prompts[p.prefix_id].text[:500]) for p in prompts)
    grouped = workload.shared_prefix_workload(2, 2, 50, order="grouped")
    assert [(p.prefix_id, p.suffix_id) for p in grouped] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    with pytest.raises(ValueError, match="order must be"):
        workload.shared_prefix_workload(order="random")
    assert workload.cache_note(workload.GUIDE_SHORT_PROMPT) is not None
    assert "can never hit" in workload.cache_note(workload.GUIDE_SHORT_PROMPT)
    assert workload.cache_note(workload.default_cache_prompt()) is None


@pytest.mark.timeout(60)
def test_cache_test_sees_the_first_miss_and_later_hits(replicas):
    result = measure.cache_test(replicas.urls[0], requests=6)
    df = result.df
    assert list(df.columns) == [*measure.RECORD_COLUMNS, "faster_than_first"]
    assert len(df) == 6 and df["error"].isna().all() and (df["status"] == 200).all()
    assert df["replica"].eq("replica-0").all()
    assert df["cached_tokens"].iloc[0] == 0 and not df["hit"].iloc[0]
    prompt_tokens = int(df["prompt_tokens"].iloc[0])
    assert (df["cached_tokens"].iloc[1:] == (prompt_tokens - 1) // 16 * 16).all()
    assert df["ttft_s"].notna().all() and (df["ttft_s"] <= df["latency_s"]).all()
    summary = result.summary()
    assert summary["hits"] == 5 and summary["hit_rate_after_first"] == 1.0 and summary["notes"] == []
    assert summary["speedup_pct"] == pytest.approx(
        (1 - df["latency_s"].iloc[1:].mean() / df["latency_s"].iloc[0]) * 100
    )


@pytest.mark.timeout(60)
def test_cache_test_with_a_short_prompt_says_it_cannot_hit(replicas):
    result = measure.cache_test(replicas.urls[1], prompt="Translate to French: Hello world", requests=3)
    assert result.summary()["hits"] == 0
    assert result.notes and "128-token KV block" in result.notes[0]


@pytest.mark.timeout(60)
def test_throughput_reports_real_percentiles(replicas):
    result = measure.throughput_test(replicas.urls[0], requests=20, concurrency=5, max_tokens=8)
    summary = result.summary()
    assert summary["succeeded"] == 20 and summary["failed"] == 0 and summary["req_per_s"] > 0
    latencies = result.df["latency_s"].to_numpy()
    expected = np.percentile(latencies, [50, 90, 99])
    assert [summary["latency_p50_s"], summary["latency_p90_s"], summary["latency_p99_s"]] == pytest.approx(
        expected
    )
    assert summary["latency_p99_s"] <= latencies.max()
    assert sorted(result.df["i"]) == list(range(20))
    assert result.df["completion_tokens"].eq(8).all()
    assert summary["replicas"] == {"replica-0": 20}


@pytest.mark.timeout(60)
def test_load_stops_by_itself_at_the_time_bound():
    slow = CPU_TEST.with_overrides(decode_base_s=0.01)
    with BackgroundReplicas(slow) as running:
        result = measure.load(
            running.urls[0], ["hello there"], requests=100_000, concurrency=4, duration_s=0.5, max_tokens=5
        )
    assert 0 < len(result.df) < 100_000
    assert result.failed == 0


@pytest.mark.timeout(60)
def test_errors_are_recorded_not_raised(replicas):
    result = measure.throughput_test(replicas.urls[0], model="nope", requests=3, concurrency=3)
    assert result.failed == 3 and result.succeeded == 0
    assert set(result.df["status"]) == {404}
    assert result.df["error"].iloc[0] == "HTTP 404: The model `nope` does not exist."
    assert result.summary()["errors"] == {"HTTP 404: The model `nope` does not exist.": 3}
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    refused = measure.load(f"http://127.0.0.1:{closed_port}", ["hi"], requests=2, timeout_s=5)
    assert refused.failed == 2 and refused.df["error"].str.startswith("ConnectError").all()
    assert math.isnan(refused.summary()["latency_p50_s"])


@pytest.mark.timeout(60)
def test_prefix_sweep_shows_no_hit_below_one_block(replicas):
    sweep = measure.prefix_sweep(replicas.urls[1], lengths=[3, 120], repeats=2)
    table = sweep.table().set_index("length")
    assert list(sweep.df["role"]) == ["cold", "warm", "warm"] * 2
    assert table.loc[3, "cached_tokens"] == 0 and not table.loc[3, "hit"]  # shared part < one block
    assert table.loc[120, "hit"] and table.loc[120, "cached_tokens"] >= 112
    assert {"cold_ttft_s", "warm_ttft_s", "ttft_cut_pct"} <= set(table.columns)


@pytest.mark.timeout(60)
def test_replica_metrics_attribute_hits_to_the_replica_that_served(replicas):
    before = metrics.replica_stats(replicas.metrics_urls)
    assert list(before.columns) == metrics.STATS_COLUMNS and set(before["replica"]) == {
        "replica-0",
        "replica-1",
    }
    measure.cache_test(replicas.urls[1], requests=4)
    after = metrics.replica_stats(replicas.metrics_urls)
    window = metrics.stats_delta(before, after).set_index("replica")
    assert window.loc["replica-0", "queries"] == 0 and math.isnan(window.loc["replica-0", "hit_rate"])
    assert window.loc["replica-1", "requests"] == 4
    served = replicas.servers[1].cache
    assert window.loc["replica-1", "hits"] > 0
    assert 0.5 < window.loc["replica-1", "hit_rate"] < 1.0
    assert after.set_index("replica").loc["replica-1", "hits"] == served.hits


def test_stats_delta_counts_from_zero_after_a_restart():
    before = pd.DataFrame(
        [{"replica": "a", "queries": 1000.0, "hits": 800.0, "requests": 10.0, "kv_usage": 0.0}]
    )
    after = pd.DataFrame(
        [
            {"replica": "a", "queries": 100.0, "hits": 0.0, "requests": 1.0, "kv_usage": 0.0},
            {"replica": "b", "queries": 50.0, "hits": 25.0, "requests": 2.0, "kv_usage": 0.1},
        ]
    )
    window = metrics.stats_delta(before, after).set_index("replica")
    assert window.loc["a", "queries"] == 100 and window.loc["a", "hit_rate"] == 0
    assert window.loc["b", "hit_rate"] == 0.5


@pytest.mark.timeout(60)
def test_sync_helpers_work_inside_a_running_loop(replicas):
    async def notebook_cell() -> float:
        return measure.ttft(replicas.urls[0])  # like Jupyter: a loop is already running

    assert 0 < asyncio.run(notebook_cell()) < 30


@pytest.mark.timeout(60)
def test_https_verified_against_the_twin_ca_and_loud_when_off(tmp_path):
    from rhaii_nb.twin.pki import Pki

    pki = Pki(tmp_path)
    with BackgroundReplicas("cpu-test", ssl_context=pki.server_ssl_context(["localhost"])) as running:
        url = running.urls[0]
        verified = measure.load(url, ["hello"], requests=1, verify=str(pki.ca_cert_path))
        assert verified.failed == 0
        refused = measure.load(url, ["hello"], requests=1)  # system CAs do not know the twin CA
        assert refused.failed == 1 and "SSL" in refused.df["error"].iloc[0].upper()
        with pytest.warns(UserWarning, match="TLS verification is OFF"):
            measure.Endpoint(url, verify=False)
    with pytest.raises(ValueError, match="must start with http"):
        measure.Endpoint("gateway:80")


# ---- the transport: keep-alive, timeouts, TLS trust as httpx had it --------------------------------
SSE_CHUNKS = (
    b'data: {"choices": [{"index": 0, "text": " ok"}]}\n\n',
    b'data: {"choices": [{"index": 0, "text": ""}], "usage": {"prompt_tokens": 3, "completion_tokens": 1}}'
    b"\n\n",
    b"data: [DONE]\n\n",
)


async def _sse_server(peers: list[int], stall: asyncio.Event | None = None) -> tuple[web.AppRunner, str]:
    """A vLLM-shaped SSE server on a free port recording each request's client port; with ``stall``
    it sends the first chunk and then nothing until the event is set."""

    async def completions(request: web.Request) -> web.StreamResponse:
        peers.append(request.transport.get_extra_info("peername")[1])
        await request.read()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for index, chunk in enumerate(SSE_CHUNKS):
            await response.write(chunk)
            if index == 0 and stall is not None:
                await asyncio.wait_for(stall.wait(), 30)
        await asyncio.sleep(0.005)  # the body's end comes apart from [DONE], as from vLLM's Starlette
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/v1/completions", completions)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


@pytest.mark.timeout(60)
def test_streamed_requests_reuse_their_keep_alive_connections():
    async def scenario() -> tuple[measure.LoadResult, list[int]]:
        peers: list[int] = []
        runner, url = await _sse_server(peers)
        try:
            result = await measure.load_async(measure.Endpoint(url), ["hi"], requests=30, concurrency=3)
        finally:
            await runner.cleanup()
        return result, peers

    result, peers = asyncio.run(scenario())
    assert result.failed == 0 and result.df["completion_tokens"].eq(1).all()
    assert len(peers) == 30
    # Reading each body to its end (past [DONE]) hands the connection back open: 3 workers, 3 connections.
    assert len(set(peers)) <= 3, f"{len(set(peers))} connections for 30 requests: bodies left unread"


@pytest.mark.timeout(60)
def test_a_stream_that_stops_is_a_read_timeout_not_a_hang():
    async def scenario() -> measure.LoadResult:
        stall = asyncio.Event()
        runner, url = await _sse_server([], stall)
        try:
            return await measure.load_async(measure.Endpoint(url, timeout_s=0.5), ["hi"], requests=1)
        finally:
            stall.set()
            await runner.cleanup()

    result = asyncio.run(scenario())
    assert result.failed == 1
    assert result.df["error"].iloc[0].startswith("ReadTimeout: "), result.df["error"].iloc[0]
    assert result.df["latency_s"].iloc[0] < 25  # ended by the 0.5 s read timeout, not the server's 30 s


@pytest.mark.timeout(60)
def test_verify_true_trusts_ssl_cert_file_as_httpx_does(tmp_path, monkeypatch):
    from rhaii_nb.twin.pki import Pki

    pki = Pki(tmp_path)
    assert measure.ssl_context(False).verify_mode == ssl.CERT_NONE
    assert measure.ssl_context(str(pki.ca_cert_path)).verify_mode == ssl.CERT_REQUIRED
    with BackgroundReplicas("cpu-test", ssl_context=pki.server_ssl_context(["localhost"])) as running:
        monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca_cert_path))
        trusted = measure.load(running.urls[0], ["hello"], requests=1)
        assert trusted.failed == 0, trusted.df["error"].iloc[0]
        monkeypatch.delenv("SSL_CERT_FILE")
        refused = measure.load(running.urls[0], ["hello"], requests=1)
        assert refused.df["error"].iloc[0].startswith("ConnectError: ")


@pytest.mark.timeout(60)
def test_the_environment_proxy_is_used_unless_no_proxy_names_the_host(monkeypatch):
    async def scenario() -> tuple[measure.LoadResult, measure.LoadResult, list[int]]:
        peers: list[int] = []
        runner, proxy_url = await _sse_server(peers)  # answers whatever is sent to it, like a proxy would
        try:
            target = measure.Endpoint("http://upstream.invalid:8000", timeout_s=5)
            monkeypatch.setenv("HTTP_PROXY", proxy_url)
            via_proxy = await measure.load_async(target, ["hi"], requests=2)
            monkeypatch.setenv("NO_PROXY", "upstream.invalid")
            direct = await measure.load_async(target, ["hi"], requests=1)
        finally:
            await runner.cleanup()
        return via_proxy, direct, peers

    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    via_proxy, direct, peers = asyncio.run(scenario())
    assert via_proxy.failed == 0 and len(peers) == 2  # both requests went to the proxy
    assert direct.df["error"].iloc[0].startswith("ConnectError: ") and len(peers) == 2
