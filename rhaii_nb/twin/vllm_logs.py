"""What the containers of a vLLM workload pod write while they start, with real-world timings.

A script is a list of :class:`LogStep`: wait ``after_s`` real-world seconds (the kubelet scales them
with ``ctx.clock``), then write ``line``. A step may carry a ``marker`` the kubelet acts on (start the
replica's HTTP server before uvicorn says it is listening).

The lines follow what KServe's storage initializer and vLLM's OpenAI server print on TPU, and contain
every phrase the guide tells a trainee to look for, in the guide's order:
``Successfully copied hf://… to /mnt/models``, ``Loading safetensors checkpoint shards: 100%``,
``Loading weights took X seconds``, ``GPU KV cache size: X tokens``, ``Compiling the model with
different input shapes`` and ``Compiled the model with different input shapes`` (the guide's name for
the end of XLA compilation; the TPU model runner itself prints ``Compilation finished in X [secs].``
after each group, so both appear), then ``Uvicorn running on https://0.0.0.0:8000`` and
``Application startup complete.``.

Timings (real world, before scaling), from the guide: model download 30–60 s (6.2 GB for
Qwen2.5-3B-Instruct at ~150 MB/s), weights load ~12 s, XLA compilation 3–5 min in total.
"""

from __future__ import annotations

import datetime as dt
import random
import shlex
from dataclasses import dataclass

# Marker: the HTTP server must be listening before the next line is written.
SERVING = "serving"

# Qwen2.5-3B-Instruct on HuggingFace: two safetensors shards plus small files (bytes).
_HF_FILES = [
    ("config.json", 661),
    ("generation_config.json", 242),
    ("merges.txt", 1_671_853),
    ("model-00001-of-00002.safetensors", 3_968_658_944),
    ("model-00002-of-00002.safetensors", 2_203_268_048),
    ("model.safetensors.index.json", 35_598),
    ("tokenizer.json", 7_031_645),
    ("tokenizer_config.json", 7_305),
    ("vocab.json", 2_776_833),
    ("LICENSE", 7_154),
]
_DOWNLOAD_BYTES_PER_S = 150e6
# Token counts the TPU model runner pads to (powers of two from 16 up to max-model-len).
_XLA_GROUPS = ["select_hidden_states", "compute_logits", "sample_from_logits", "gather_logprobs"]


@dataclass(frozen=True)
class LogStep:
    """Wait ``after_s`` real-world seconds, then write the line (and act on ``marker``, if any).

    ``style`` picks the logger prefix added when the line is written: ``vllm`` (``INFO 02-18
    10:15:32 [file.py:123] …``), ``kserve`` (the storage initializer's format) or ``raw`` (none).
    """

    after_s: float
    text: str
    style: str = "raw"
    source: str = ""
    marker: str | None = None

    def render(self, now: dt.datetime | None = None) -> str:
        """The log line as the container prints it at ``now`` (default: the current time)."""
        now = now or dt.datetime.now(dt.UTC)
        if self.style == "vllm":
            return f"INFO {now.strftime('%m-%d %H:%M:%S')} [{self.source}] {self.text}"
        if self.style == "kserve":
            return f"{now.strftime('%Y-%m-%d %H:%M:%S.%f')[:-3]} 1 kserve INFO [{self.source}] {self.text}"
        return self.text


@dataclass(frozen=True)
class StartupScript:
    """A container's start-up: its log steps and how it ends (``exit_code`` None = keeps running)."""

    steps: list[LogStep]
    exit_code: int | None = None

    @property
    def duration_s(self) -> float:
        """Real-world seconds from start to the last line."""
        return sum(step.after_s for step in self.steps)


def _kserve(after_s: float, source: str, message: str) -> LogStep:
    """A storage-initializer line."""
    return LogStep(after_s, message, "kserve", source)


def _vllm(after_s: float, source: str, message: str, marker: str | None = None) -> LogStep:
    """A vLLM logger line."""
    return LogStep(after_s, message, "vllm", source, marker)


def _tqdm_size(size: float) -> str:
    """A byte count the way tqdm's ``unit_scale`` prints it (``661``, ``1.67M``, ``3.97G``)."""
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if size >= factor:
            return f"{size / factor:.2f}{suffix}"
    return f"{size:.0f}"


def _model_path(uri: str) -> str:
    """``hf://Qwen/Qwen2.5-3B-Instruct`` → ``Qwen/Qwen2.5-3B-Instruct``."""
    return uri.split("://", 1)[1] if "://" in uri else uri


def storage_initializer_script(
    uri: str, dest: str = "/mnt/models", *, unauthorized: bool = False
) -> StartupScript:
    """The storage initializer copying ``uri`` to ``dest``; with ``unauthorized`` HuggingFace answers 401."""
    repo = _model_path(uri)
    steps = [
        _kserve(
            0.5,
            "storage-initializer:<module>():24",
            f"Initializing, args: src_uri [{uri}] dest_path[ [{dest}]",
        ),
        _kserve(0.1, "storage.py:download():66", f"Copying contents of {uri} to local"),
    ]
    if unauthorized:
        url = f"https://huggingface.co/api/models/{repo}/revision/main"
        hf_http = "/usr/local/lib/python3.11/site-packages/huggingface_hub/utils/_http.py"
        lines = [
            "Traceback (most recent call last):",
            f'  File "{hf_http}", line 409, in hf_raise_for_status',
            "    response.raise_for_status()",
            f"requests.exceptions.HTTPError: 401 Client Error: Unauthorized for url: {url}",
            "",
            "The above exception was the direct cause of the following exception:",
            "",
            f"huggingface_hub.errors.HfHubHTTPError: 401 Client Error: Unauthorized for url: {url}",
            "Invalid credentials in Authorization header",
        ]
        steps += [LogStep(1.2 if i == 0 else 0.0, line) for i, line in enumerate(lines)]
        return StartupScript(steps, exit_code=1)
    count = len(_HF_FILES)
    total = sum(size for _, size in _HF_FILES)
    steps.append(LogStep(0.8, f"Fetching {count} files:   0%|          | 0/{count} [00:00<?, ?it/s]"))
    for name, size in _HF_FILES:
        seconds = size / _DOWNLOAD_BYTES_PER_S
        parts = (25, 50, 75, 100) if size > 1e9 else (100,)
        for percent in parts:
            bar = "█" * (percent // 10)
            done = _tqdm_size(size * percent / 100)
            line = f"{name}: {percent:3d}%|{bar:<10}| {done}/{_tqdm_size(size)}"
            steps.append(LogStep(seconds / len(parts), line))
    elapsed = total / _DOWNLOAD_BYTES_PER_S
    steps.append(
        LogStep(0.2, f"Fetching {count} files: 100%|██████████| {count}/{count} [00:{elapsed:02.0f}<00:00]")
    )
    steps.append(_kserve(0.3, "storage.py:download():107", f"Successfully copied {uri} to {dest}"))
    return StartupScript(steps, exit_code=0)


def _vllm_flags(args: list[str]) -> dict[str, str | bool]:
    """The ``--flag value`` pairs of a vLLM command line, even when given as one shell string."""
    words: list[str] = []
    for arg in args:
        words += shlex.split(arg) if " " in arg else [arg]
    flags: dict[str, str | bool] = {}
    for index, word in enumerate(words):
        if not word.startswith("--"):
            continue
        key, _, inline = word[2:].partition("=")
        following = words[index + 1] if index + 1 < len(words) else ""
        if inline:
            flags[key] = inline
        elif following and not following.startswith("--"):
            flags[key] = following
        else:
            flags[key] = True
    return flags


def vllm_startup_script(
    model_name: str,
    args: list[str],
    *,
    kv_cache_tokens: int = 3_145_728,
    block_size: int = 128,
    compile_factor: float = 1.0,
    seed: int = 0,
) -> StartupScript:
    """vLLM's OpenAI server starting on a TPU v6e host: load weights, size the KV cache, compile, serve.

    ``args`` is the container's command line (``command`` + ``args``); ``compile_factor`` stretches
    XLA compilation (scenario ``slow-compile`` uses 4).
    """
    rng = random.Random(seed)
    flags = _vllm_flags(args)
    max_len = int(flags.get("max-model-len") or 2048)
    tp = int(flags.get("tensor-parallel-size") or 1)
    scheme = "https" if flags.get("ssl-certfile") else "http"
    port = int(flags.get("port") or 8000)
    served = flags.get("served-model-name") or flags.get("model") or "/mnt/models"
    non_default = {key.replace("-", "_"): value for key, value in flags.items()}
    load_s = rng.uniform(10.5, 14.0)
    shards = "Loading safetensors checkpoint shards:"
    half, rest, whole = int(load_s * 0.6), int(load_s * 0.4), int(load_s)
    steps = [
        _vllm(2.0, "__init__.py:241", "Automatically detected platform tpu."),
        _vllm(3.5, "api_server.py:1805", "vLLM API server version 0.10.1.1"),
        _vllm(0.1, "utils.py:326", f"non-default args: {non_default}"),
        _vllm(1.5, "config.py:1604", f"Using max model len {max_len}"),
        _vllm(0.2, "config.py:2434", "Chunked prefill is enabled with max_num_batched_tokens=8192."),
        _vllm(
            2.0,
            "core.py:619",
            f"Initializing a V1 LLM engine (v0.10.1.1) with config: model='/mnt/models', "
            f"dtype={flags.get('dtype', 'auto')}, max_seq_len={max_len}, tensor_parallel_size={tp}, "
            f"device_config=tpu, served_model_name={served}, "
            f"enable_prefix_caching={bool(flags.get('enable-prefix-caching'))}",
        ),
        _vllm(
            4.0,
            "parallel_state.py:1134",
            f"rank 0 in world size {tp} is assigned as DP rank 0, PP rank 0, TP rank 0",
        ),
        _vllm(0.5, "tpu_model_runner.py:1777", "Loading model from scratch..."),
        _vllm(0.3, "tpu_model_runner.py:1780", f"Model {model_name}"),
        LogStep(0.4, f"{shards}   0% Completed | 0/2 [00:00<?, ?it/s]"),
        LogStep(
            load_s * 0.6,
            f"{shards}  50% Completed | 1/2 [00:{half:02d}<00:{rest:02d}, {load_s * 0.6:.2f}s/it]",
        ),
        LogStep(load_s * 0.4, f"{shards} 100% Completed | 2/2 [00:{whole:02d}<00:00, {load_s / 2:.2f}s/it]"),
        LogStep(0.1, ""),
        _vllm(0.1, "default_loader.py:262", f"Loading weights took {load_s:.2f} seconds"),
        _vllm(2.5, "kv_cache_utils.py:849", f"GPU KV cache size: {kv_cache_tokens:,} tokens"),
        _vllm(
            0.0,
            "kv_cache_utils.py:853",
            f"Maximum concurrency for {max_len:,} tokens per request: {kv_cache_tokens / max_len:.2f}x",
        ),
        _vllm(0.0, "tpu_worker.py:262", f"# TPU blocks: {kv_cache_tokens // block_size}, # CPU blocks: 0"),
    ]
    # XLA warm-up: one graph per padded token count (powers of two from 16 up to the batch budget),
    # then the sampler groups; 3–5 minutes in all on a v6e host.
    buckets = [16 * 2**i for i in range(10)]  # 16 … 8192 (max_num_batched_tokens)
    model_compile_s = rng.uniform(150.0, 200.0) * compile_factor
    steps.append(_vllm(1.0, "tpu_model_runner.py:1450", "Compiling the model with different input shapes."))
    steps += [
        _vllm(model_compile_s / len(buckets), "tpu_model_runner.py:1463", f"  -- num_tokens: {b}")
        for b in buckets
    ]
    steps.append(
        _vllm(0.1, "tpu_model_runner.py:1470", f"Compilation finished in {model_compile_s:.2f} [secs].")
    )
    for group in _XLA_GROUPS:
        group_s = rng.uniform(6.0, 12.0) * compile_factor
        steps.append(
            _vllm(0.2, "tpu_model_runner.py:1480", f"Compiling {group} with different input shapes.")
        )
        steps.append(
            _vllm(group_s, "tpu_model_runner.py:1495", f"Compilation finished in {group_s:.2f} [secs].")
        )
    routes = [
        ("/health", "GET"),
        ("/v1/models", "GET"),
        ("/v1/chat/completions", "POST"),
        ("/v1/completions", "POST"),
        ("/metrics", "GET"),
    ]
    steps += [
        _vllm(0.2, "tpu_model_runner.py:1510", "Compiled the model with different input shapes."),
        _vllm(
            1.0,
            "core.py:210",
            f"init engine (profile, create kv cache, warmup model) took {model_compile_s + 45:.2f} seconds",
        ),
        _vllm(2.0, "api_server.py:1873", f"Starting vLLM API server 0 on {scheme}://0.0.0.0:{port}"),
        _vllm(0.2, "launcher.py:36", "Available routes are:", SERVING),
        *[_vllm(0.0, "launcher.py:44", f"Route: {path}, Methods: {method}") for path, method in routes],
        LogStep(0.3, "INFO:     Started server process [1]"),
        LogStep(0.0, "INFO:     Waiting for application startup."),
        LogStep(0.1, "INFO:     Application startup complete."),
        LogStep(0.0, f"INFO:     Uvicorn running on {scheme}://0.0.0.0:{port} (Press CTRL+C to quit)"),
    ]
    return StartupScript(steps)


def generic_startup_script(container: str, image: str) -> StartupScript:
    """A short start-up for containers other than vLLM (operators, EPP, istio-proxy)."""
    if container == "istio-proxy":
        lines = [
            "info\tFIPS mode disabled",
            "info\tVersion 1.27.3",
            "info\tProxy role\tips=[] type=sidecar domain=svc.cluster.local",
            "info\tsds\tSDS server for workload certificates started",
            "info\tcache\tgenerated new workload certificate",
            "info\tstarting Envoy",
            "info\tEnvoy proxy is ready",
        ]
        return StartupScript([LogStep(0.3, line) for line in lines])
    lines = [
        f'{{"level":"info","msg":"starting","container":"{container}","image":"{image}"}}',
        f'{{"level":"info","msg":"serving","container":"{container}"}}',
    ]
    return StartupScript([LogStep(1.0, line) for line in lines])
