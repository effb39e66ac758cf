"""A llama-server's slots and prompt cache, as llama.cpp's server behaves (docs/wire.md, "Slots and
prompt caching"; tools/server/server-context.cpp `get_available_slot`, server-task.cpp
`server_prompt_cache`, a host started with `--parallel N`, so without a unified KV cache):
`total_slots` requests at once, the others wait in the host's own queue. Each slot keeps the KV cache
of the last prompt it processed (and its answer). A new request takes the idle slot whose cache
covers the largest share of its prompt (more than `slot_prompt_similarity`, 0.1), else the least
recently used one. The host-wide prompt cache (`--cache-ram`, `cache_tokens` here) is a list of
saved prompts: a slot's prompt is saved there when the slot was taken by LRU or is about to lose more
than half of it, and every idle slot's prompt is copied there when a request starts (`--cache-idle-slots`);
a slot then loads the saved prompt that keeps more of its own and covers more of the new one (one
that would keep less than a quarter of itself is not taken), and that prompt leaves the list.
Prefill takes `prefill_seconds` per uncached prompt token, each answer token `decode_seconds`; what
was reused is reported as `timings.cache_n` and `usage.prompt_tokens_details.cached_tokens`.
Timings are parameters: tests use tiny ones."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
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


def prompt_digest(prompt: str) -> str:
    """A short name of a prompt's text (the slots' journal names requests by it)."""
    return hashlib.blake2b(prompt.encode(), digest_size=8).hexdigest()


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


SIMILARITY = 0.1  # llama-server's --slot-prompt-similarity default


@dataclass
class Slots:
    """The slots of one host; `cache_tokens`: the host-wide prompt cache's size (0: none)."""

    count: int
    prefill_seconds: float = 0.0
    decode_seconds: float = 0.0
    cache_tokens: int = 0
    held: list[str] = field(default_factory=list)  # each slot's cached text
    busy: list[bool] = field(default_factory=list)
    last_used: list[int] = field(default_factory=list)
    host_cache: list[str] = field(default_factory=list)  # saved prompts, oldest first
    active: int = 0
    most_active: int = 0  # the most requests processed at once
    journal: list[dict[str, float]] = field(default_factory=list)  # per request: when it came, got a slot
    _free: asyncio.Semaphore | None = None
    _uses: int = 0

    def __post_init__(self) -> None:
        self.held = [""] * self.count
        self.busy = [False] * self.count
        self.last_used = [-1] * self.count

    async def take(self, prompt: str) -> tuple[int, int]:
        """Wait for a slot (FIFO), then pick one as llama-server does; returns (slot, cached
        characters), the prefill not done yet."""
        if self._free is None:
            self._free = asyncio.Semaphore(self.count)
        await self._free.acquire()
        slot, save = self._pick(prompt)
        if save and self.cache_tokens:
            self._save(self.held[slot])
            self._load(slot, prompt)
        self.busy[slot] = True
        if self.cache_tokens:  # --cache-idle-slots: a copy of every idle slot's prompt
            for other in range(self.count):
                if not self.busy[other]:
                    self._save(self.held[other])
        self.active += 1
        self.most_active = max(self.most_active, self.active)
        return slot, common_prefix(self.held[slot], prompt)

    def _pick(self, prompt: str) -> tuple[int, bool]:
        """The slot a request takes, and whether its prompt goes to the host cache first."""
        best, best_share = -1, 0.0
        for i in range(self.count):
            if self.busy[i] or not self.held[i]:
                continue
            share = common_prefix(self.held[i], prompt) / max(len(prompt), 1)
            if share > best_share and share > SIMILARITY:
                best, best_share = i, share
        if best >= 0:
            return best, best_share * len(prompt) / len(self.held[best]) < 0.5
        idle = [i for i in range(self.count) if not self.busy[i]]
        return min(reversed(idle), key=lambda i: self.last_used[i]), True  # ties: the last one, as the server's `<=`

    def _save(self, text: str) -> None:
        if not text or any(common_prefix(saved, text) == len(text) for saved in self.host_cache):
            return
        self.host_cache = [saved for saved in self.host_cache if common_prefix(saved, text) < len(saved)]
        self.host_cache.append(text)
        while self.host_cache and sum(tokens(len(t)) for t in self.host_cache) > self.cache_tokens:
            self.host_cache.pop(0)

    def _load(self, slot: int, prompt: str) -> None:
        current = self.held[slot]
        shared = common_prefix(current, prompt)
        keep_best = shared / len(current) if current else -1.0
        cover_best, chosen = shared / max(len(prompt), 1), -1
        for index, saved in enumerate(self.host_cache):
            shared = common_prefix(saved, prompt)
            keep, cover = shared / len(saved), shared / max(len(prompt), 1)
            if keep >= 0.25 and keep > keep_best and cover > cover_best:
                keep_best, cover_best, chosen = keep, cover, index
        if chosen >= 0:
            self.held[slot] = self.host_cache.pop(chosen)

    def give_back(self, slot: int, text: str) -> None:
        """The slot's request ended; its cache now holds `text` (prompt and answer)."""
        if not self.busy[slot]:
            return
        self.held[slot] = text
        self._uses += 1
        self.last_used[slot] = self._uses
        self.busy[slot] = False
        self.active -= 1
        assert self._free is not None
        self._free.release()

    def slots_listing(self, n_ctx: int) -> list[dict[str, Any]]:
        """`GET /slots` as fixture 05-a-slots, with `is_processing` as it stands."""
        return [{"id": i, "n_ctx": n_ctx, "speculative": False, "is_processing": self.busy[i]} for i in range(self.count)]
