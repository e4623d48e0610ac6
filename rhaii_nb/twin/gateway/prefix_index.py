"""The EPP's approximate prefix index (GAIE ``prefix-cache-scorer``, as RHAII EA1 configures it).

The EPP never sees a replica's real KV cache. It guesses: it cuts the prompt *text* into 64-character
blocks, chains each block's hash with its parent's (the root hash includes the model name), and
remembers, per endpoint, which block hashes it sent there. A request scores on an endpoint by the
number of consecutive leading blocks that endpoint is believed to hold. After each pick the chosen
endpoint is recorded as holding all of the request's blocks ("optimistic insert"), before the
replica has even answered. Each endpoint's memory is an LRU bounded to ``capacity`` blocks.

Facts (GAIE v1.0.1 ``plugins/multi/prefix/plugin.go``): block size 64 characters, the trailing
partial block ignored, at most 256 blocks per prompt, 31250 blocks per server.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterable, Sequence

DEFAULT_BLOCK_CHARS = 64
DEFAULT_MAX_BLOCKS = 256
DEFAULT_LRU_CAPACITY = 31250


def block_hashes(
    prompt: str,
    model: str = "",
    *,
    block_chars: int = DEFAULT_BLOCK_CHARS,
    max_blocks: int = DEFAULT_MAX_BLOCKS,
) -> list[int]:
    """Chained hashes of the prompt's full ``block_chars``-character blocks (at most ``max_blocks``).

    ``hash(0)`` covers the model name and the first block; ``hash(i)`` covers block ``i`` and
    ``hash(i-1)``, so equal hashes mean equal prefixes. A prompt shorter than one block has none.
    """
    if block_chars < 1:
        raise ValueError(f"block_chars must be >= 1, got {block_chars}")
    data = prompt.encode("utf-8")
    count = min(len(data) // block_chars, max_blocks)
    parent = _hash(b"model:" + model.encode("utf-8"))
    hashes: list[int] = []
    for i in range(count):
        block = data[i * block_chars : (i + 1) * block_chars]
        parent = _hash(parent.to_bytes(8, "little") + block)
        hashes.append(parent)
    return hashes


def _hash(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


class _EndpointLru:
    """The block hashes one endpoint is believed to hold, least recently used first."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.blocks: OrderedDict[int, None] = OrderedDict()

    def add(self, hashes: Iterable[int]) -> None:
        for h in hashes:
            self.blocks[h] = None
            self.blocks.move_to_end(h)
        while len(self.blocks) > self.capacity:
            self.blocks.popitem(last=False)

    def leading_matches(self, hashes: Sequence[int]) -> int:
        matched = 0
        for h in hashes:
            if h not in self.blocks:
                break
            matched += 1
        return matched


class PrefixIndex:
    """Per-endpoint LRU of block hashes: which endpoint probably has which prompt prefix cached."""

    def __init__(self, capacity_per_endpoint: int = DEFAULT_LRU_CAPACITY) -> None:
        if capacity_per_endpoint < 1:
            raise ValueError(f"capacity_per_endpoint must be >= 1, got {capacity_per_endpoint}")
        self.capacity = capacity_per_endpoint
        self._endpoints: dict[str, _EndpointLru] = {}

    def match(self, hashes: Sequence[int], endpoints: Iterable[str]) -> dict[str, int]:
        """Consecutive leading blocks of ``hashes`` each endpoint is believed to hold."""
        result: dict[str, int] = {}
        for name in endpoints:
            lru = self._endpoints.get(name)
            result[name] = lru.leading_matches(hashes) if lru else 0
        return result

    def record(self, endpoint: str, hashes: Iterable[int]) -> None:
        """Remember that ``endpoint`` now holds these blocks (optimistic insert after a pick)."""
        lru = self._endpoints.get(endpoint)
        if lru is None:
            lru = self._endpoints[endpoint] = _EndpointLru(self.capacity)
        lru.add(hashes)

    def forget(self, endpoint: str) -> None:
        """Drop everything known about an endpoint (it left the pool; its cache is gone)."""
        self._endpoints.pop(endpoint, None)

    def endpoints(self) -> list[str]:
        """Endpoints the index holds blocks for."""
        return list(self._endpoints)

    def size(self, endpoint: str) -> int:
        """Number of blocks remembered for ``endpoint``."""
        lru = self._endpoints.get(endpoint)
        return len(lru.blocks) if lru else 0
