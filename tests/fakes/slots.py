"""A llama-server's slots and prompt cache, as llama.cpp's server behaves (docs/wire.md, "Slots and
prompt caching"): `total_slots` requests at once, the others wait in the host's own queue; each slot keeps the
KV cache of the last prompt it processed (and its answer), a new request takes the idle slot whose
cache shares the longest prefix with its prompt, and a host-wide prompt cache (`--cache-ram`) holds
the prompts slots gave up. Prefill takes `prefill_seconds` per uncached prompt token, each answer
token `decode_seconds`; what was reused is reported as `timings.cache_n` and
`usage.prompt_tokens_details.cached_tokens`. Timings are parameters: tests use tiny ones."""

from __future__ import annotations

import asyncio
import json
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any


def rendered(messages: list[Any]) -> str:
    """The prompt text a chat template would make of the messages (what the KV cache holds)."""
    parts = []
    for message in messages:
        if isinstance(message, dict):
            content = message.get("content")
            text = content if isinstance(content, str) else json.dumps(content)
            parts.append(f"<|{message.get('role')}|>{text}<|end|>")
    return "".join(parts)


def tokens(chars: int) -> int:
    """The fakes' tokenizer (tests.fakes.llama_swap.estimate_tokens): two tokens per three characters."""
    return math.ceil(chars * 2 / 3)


def common_prefix(a: str, b: str) -> int:
    """Characters `a` and `b` share from their start (a binary search of slice comparisons)."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    return low


@dataclass
class Slots:
    """The slots of one host; `cache_tokens`: the host-wide prompt cache's size (0: none)."""

    count: int
    prefill_seconds: float = 0.0
    decode_seconds: float = 0.0
    cache_tokens: int = 0
    held: list[str] = field(default_factory=list)  # each slot's cached text
    busy: list[bool] = field(default_factory=list)
    host_cache: OrderedDict[str, None] = field(default_factory=OrderedDict)
    active: int = 0
    most_active: int = 0  # the most requests processed at once
    _free: asyncio.Semaphore | None = None

    def __post_init__(self) -> None:
        self.held = [""] * self.count
        self.busy = [False] * self.count

    async def take(self, prompt: str) -> tuple[int, int]:
        """Wait for a slot (FIFO), then pick the idle one holding the longest prefix of `prompt`;
        returns (slot, cached characters), the prefill not done yet."""
        if self._free is None:
            self._free = asyncio.Semaphore(self.count)
        await self._free.acquire()
        idle = [i for i in range(self.count) if not self.busy[i]]
        shared = {i: common_prefix(self.held[i], prompt) for i in idle}
        slot = max(idle, key=lambda i: (shared[i], -i))
        cached = shared[slot]
        if self.cache_tokens:  # the host's prompt cache restores a longer prefix into the slot
            cached = max(cached, max((common_prefix(text, prompt) for text in self.host_cache), default=0))
        self.busy[slot] = True
        self.active += 1
        self.most_active = max(self.most_active, self.active)
        return slot, cached

    def _keep(self, text: str) -> None:
        self.host_cache.pop(text, None)
        self.host_cache[text] = None
        while sum(tokens(len(t)) for t in self.host_cache) > self.cache_tokens and self.host_cache:
            self.host_cache.popitem(last=False)

    def give_back(self, slot: int, text: str) -> None:
        """The slot's request ended; its cache now holds `text` (prompt and answer)."""
        if not self.busy[slot]:
            return
        self.held[slot] = text
        if self.cache_tokens:
            self._keep(text)
        self.busy[slot] = False
        self.active -= 1
        assert self._free is not None
        self._free.release()

    def slots_listing(self, n_ctx: int) -> list[dict[str, Any]]:
        """`GET /slots` as fixture 05-a-slots, with `is_processing` as it stands."""
        return [{"id": i, "n_ctx": n_ctx, "speculative": False, "is_processing": self.busy[i]} for i in range(self.count)]
