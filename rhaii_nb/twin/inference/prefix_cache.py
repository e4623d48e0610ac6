"""vLLM-style automatic prefix caching (APC) over a bounded pool of KV blocks.

What it reproduces from vLLM V1 (``kv_cache_utils.py``, ``block_pool.py``, ``kv_cache_manager.py``):

- a prompt is cut into full blocks of ``block_size`` tokens; only full blocks are hashed or cached;
- ``hash_i = H(hash_{i-1}, tokens of block i, extra keys)``; the root hash is seeded (like
  ``PYTHONHASHSEED``) and includes the model name, the first block also takes a ``cache_salt``;
- a lookup walks the hashes in order, stops at the first miss and is capped at
  ``floor((n - 1) / block_size)`` blocks: at least one prompt token is always computed;
- all blocks live in a pool; free blocks (including cached, unreferenced ones) sit in an LRU free
  queue; allocation pops from its head and evicts the hash the popped block held;
- a request's blocks are freed in reverse order to the queue's tail, so a chain's tail block is
  evicted before its parents; blocks referenced by running requests are never evicted;
- ``queries`` and ``hits`` count tokens (``vllm:prefix_cache_queries`` / ``_hits``).

One simplification: only prompt blocks are cached; blocks filled by generated tokens are reserved
for the request and freed unhashed.
"""

from __future__ import annotations

import hashlib
from array import array
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

BlockHash = bytes


@dataclass(eq=False)
class KVBlock:
    """One KV block of the pool."""

    block_id: int
    ref_cnt: int = 0
    block_hash: BlockHash | None = None


@dataclass(eq=False)
class Allocation:
    """The blocks one request holds: its cache hits first, then newly allocated blocks."""

    blocks: list[KVBlock]
    block_hashes: list[BlockHash]  # hashes of the prompt's full blocks
    num_prompt_tokens: int
    num_cached_blocks: int
    block_size: int
    committed: bool = False
    freed: bool = False
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def cached_tokens(self) -> int:
        """Prompt tokens served from the cache."""
        return self.num_cached_blocks * self.block_size

    @property
    def uncached_tokens(self) -> int:
        """Prompt tokens that must be computed (prefilled)."""
        return self.num_prompt_tokens - self.cached_tokens


class PrefixCache:
    """A bounded KV block pool with vLLM's prefix-cache bookkeeping (one per replica)."""

    def __init__(
        self, num_blocks: int, block_size: int, *, hash_seed: int | str = 0, model: str = ""
    ) -> None:
        if num_blocks < 1 or block_size < 1:
            raise ValueError(f"num_blocks ({num_blocks}) and block_size ({block_size}) must be at least 1")
        self.num_blocks = num_blocks
        self.block_size = block_size
        self._root = hashlib.blake2b(f"{hash_seed}\x00{model}".encode(), digest_size=16).digest()
        self._blocks = [KVBlock(i) for i in range(num_blocks)]
        self._free: OrderedDict[int, KVBlock] = OrderedDict((b.block_id, b) for b in self._blocks)
        self._cached: dict[BlockHash, KVBlock] = {}
        self.queries = 0  # prompt tokens looked up
        self.hits = 0  # prompt tokens found in the cache
        self.requests = 0
        self.evictions = 0  # cached blocks whose hash was dropped to reuse the block

    # ---- hashing -------------------------------------------------------------------------------
    def hash_blocks(self, token_ids: Sequence[int], cache_salt: str | None = None) -> list[BlockHash]:
        """Chained hashes of the full blocks of ``token_ids`` (a trailing partial block is not hashed)."""
        hashes: list[BlockHash] = []
        parent = self._root
        size = self.block_size
        for index in range(len(token_ids) // size):
            chunk = array("I", token_ids[index * size : (index + 1) * size]).tobytes()
            hasher = hashlib.blake2b(parent, digest_size=16)
            hasher.update(chunk)
            if index == 0 and cache_salt:
                hasher.update(b"\x00salt\x00" + cache_salt.encode())
            parent = hasher.digest()
            hashes.append(parent)
        return hashes

    # ---- lookup --------------------------------------------------------------------------------
    def _longest_hit(self, block_hashes: Sequence[BlockHash], num_tokens: int) -> list[KVBlock]:
        limit = max(0, (num_tokens - 1) // self.block_size)  # the n-1 rule
        hit: list[KVBlock] = []
        for block_hash in block_hashes[:limit]:
            block = self._cached.get(block_hash)
            if block is None:
                break
            hit.append(block)
        return hit

    def cached_prefix_tokens(self, block_hashes: Sequence[BlockHash], num_tokens: int) -> int:
        """Tokens of a prompt the cache would serve right now (no side effects, no stats)."""
        return len(self._longest_hit(block_hashes, num_tokens)) * self.block_size

    def blocks_for(self, num_tokens: int) -> int:
        """KV blocks ``num_tokens`` tokens occupy."""
        return -(-num_tokens // self.block_size)

    # ---- allocation ----------------------------------------------------------------------------
    def allocate(
        self, block_hashes: Sequence[BlockHash], num_prompt_tokens: int, total_tokens: int
    ) -> Allocation | None:
        """Take the cache hits and enough new blocks for ``total_tokens`` (prompt + output).

        Returns ``None`` — changing nothing — when the free blocks do not suffice; the caller waits.
        """
        hit = self._longest_hit(block_hashes, num_prompt_tokens)
        needed = self.blocks_for(total_tokens) - len(hit)
        free_hits = sum(1 for block in hit if block.ref_cnt == 0)
        if needed > len(self._free) - free_hits:
            return None
        for block in hit:
            if block.ref_cnt == 0:
                del self._free[block.block_id]
            block.ref_cnt += 1
        new_blocks = [self._pop_free() for _ in range(max(0, needed))]
        self.requests += 1
        self.queries += num_prompt_tokens
        self.hits += len(hit) * self.block_size
        return Allocation(
            blocks=hit + new_blocks,
            block_hashes=list(block_hashes),
            num_prompt_tokens=num_prompt_tokens,
            num_cached_blocks=len(hit),
            block_size=self.block_size,
        )

    def _pop_free(self) -> KVBlock:
        _, block = self._free.popitem(last=False)
        if block.block_hash is not None:
            if self._cached.get(block.block_hash) is block:
                del self._cached[block.block_hash]
                self.evictions += 1
            block.block_hash = None
        block.ref_cnt = 1
        return block

    def commit(self, allocation: Allocation) -> None:
        """After prefill: the request's newly computed full prompt blocks become cache entries."""
        if allocation.committed or allocation.freed:
            return
        allocation.committed = True
        for index in range(allocation.num_cached_blocks, len(allocation.block_hashes)):
            block = allocation.blocks[index]
            block_hash = allocation.block_hashes[index]
            if block_hash not in self._cached:  # a concurrent request may have cached it first
                block.block_hash = block_hash
                self._cached[block_hash] = block

    def free(self, allocation: Allocation) -> None:
        """Release a request's blocks; unreferenced ones join the free queue's tail, chain tail first."""
        if allocation.freed:
            return
        allocation.freed = True
        for block in reversed(allocation.blocks):
            block.ref_cnt -= 1
            if block.ref_cnt == 0:
                self._free[block.block_id] = block
                self._free.move_to_end(block.block_id)

    def reset(self) -> None:
        """Drop every cache entry (like a restart of the pod); blocks in use stay allocated."""
        for block in self._cached.values():
            block.block_hash = None
        self._cached.clear()

    # ---- introspection -------------------------------------------------------------------------
    @property
    def num_free_blocks(self) -> int:
        """Blocks not referenced by any request (cached or empty)."""
        return len(self._free)

    @property
    def num_cached_blocks(self) -> int:
        """Blocks holding a cache entry (referenced or not)."""
        return len(self._cached)

    @property
    def usage(self) -> float:
        """Share of blocks referenced by running requests (``vllm:kv_cache_usage_perc``, 0–1)."""
        return 1.0 - len(self._free) / self.num_blocks

    @property
    def hit_rate(self) -> float:
        """Hit tokens / queried tokens so far (0 when nothing was queried)."""
        return self.hits / self.queries if self.queries else 0.0

    def contains(self, block_hash: BlockHash) -> bool:
        """Whether a block hash is cached right now."""
        return block_hash in self._cached

    def free_queue_order(self) -> list[int]:
        """Block ids in eviction order (head first) — for tests and teaching."""
        return list(self._free)
