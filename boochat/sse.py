"""Reading OpenAI-style SSE chat streams as they pass through, to know what to save.

The bytes are relayed untouched; this only watches them. It copes with every shape in docs/wire.md:
several events in one read and events split across reads, `: keep-alive` comments, `data:
{"error": ...}` and the older `error:` lines, a final usage chunk with `choices: []`, `[DONE]`, and
llama-swap's loading messages (reasoning deltas in chunks without an `id`), which are status only.

Reading events costs more than relaying them (docs/performance.md), so a relay reads lazily
(`lazy=True`): until the first token as the bytes arrive (that is the time to first token), then
only when `read()` is called, once a second and at the end.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error.get("type") or json.dumps(error))
    return str(error)


@dataclass
class StreamAccumulator:
    content: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    status: list[str] = field(default_factory=list)  # llama-swap loading messages: shown, not stored
    tool_calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    usage: dict[str, Any] | None = None
    timings: dict[str, Any] | None = None
    finish_reason: str = ""
    error: str = ""
    done: bool = False
    malformed: int = 0
    first_token_at: float | None = None  # time.monotonic() of the first text or reasoning
    lazy: bool = False  # after the first token, read what is fed only when read() is called
    _buffer: bytes = b""
    _unread: list[bytes] = field(default_factory=list)

    def feed(self, data: bytes) -> None:
        """Take the next bytes of the stream; complete events are read (lazily: see the module
        docstring), the rest waits."""
        if self.lazy and self.first_token_at is not None:
            self._unread.append(data)
        else:
            self._read(data)

    def read(self) -> None:
        """Read the complete events fed so far (a lazy accumulator's fields are up to date after)."""
        if self._unread:
            data = b"".join(self._unread)
            self._unread.clear()
            self._read(data)

    def close(self) -> None:
        """The stream ended: read what is left (a last event without its blank line)."""
        self.read()
        if self._buffer.strip():
            self._event(self._buffer)
        self._buffer = b""

    def _read(self, data: bytes) -> None:
        """Read every complete event in the buffer, in one pass however many there are; the rest
        waits for more bytes. Events end at a blank line; CRLF and CR line endings (the SSE spec
        allows both) become LF first."""
        buffer, held = self._buffer + data, b""
        if buffer.endswith(b"\r"):  # perhaps the first half of a \r\n
            buffer, held = buffer[:-1], b"\r"
        *events, rest = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n\n")
        self._buffer = rest + held
        for block in events:
            self._event(block)

    @property
    def text(self) -> str:
        return "".join(self.content)

    @property
    def reasoning_text(self) -> str:
        return "".join(self.reasoning)

    @property
    def tokens_per_second(self) -> float | None:
        value = (self.timings or {}).get("predicted_per_second")
        return round(float(value), 2) if isinstance(value, (int, float)) and value > 0 else None

    def tool_call_list(self) -> list[dict[str, Any]] | None:
        return [self.tool_calls[i] for i in sorted(self.tool_calls)] or None

    def _event(self, block: bytes) -> None:
        data_lines = []
        # Only LF ends a line here: str.splitlines() would also split at U+2028 inside a JSON string.
        for raw in block.decode("utf-8", errors="replace").split("\n"):
            if not raw or raw.startswith(":"):
                continue  # blank, or a comment such as DeepSeek's `: keep-alive`
            name, _, value = raw.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                data_lines.append(value)
            elif name == "error":  # older llama-server builds
                self.error = self.error or value.strip() or "the host reported an error"
        if data_lines:
            self._data("\n".join(data_lines))

    def _data(self, data: str) -> None:
        if data.strip() == "[DONE]":
            self.done = True
            return
        try:
            chunk = json.loads(data)
        except ValueError:
            self.malformed += 1
            return
        self._chunk(chunk)

    def _chunk(self, chunk: Any) -> None:
        if not isinstance(chunk, dict):
            self.malformed += 1
            return
        if "error" in chunk:
            self.error = _error_text(chunk["error"])
            return
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        if isinstance(chunk.get("timings"), dict):
            self.timings = chunk["timings"]
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            return
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            delta: dict[str, Any] = choice["delta"] if isinstance(choice.get("delta"), dict) else {}
            if isinstance(choice.get("finish_reason"), str):
                self.finish_reason = choice["finish_reason"]
            reasoning = delta.get("reasoning_content")
            if isinstance(reasoning, str) and reasoning:
                # llama-swap's sendLoadingState chunks carry no id: progress, not the model's thought.
                if "id" in chunk:
                    self._first_token()
                    self.reasoning.append(reasoning)
                else:
                    self.status.append(reasoning)
            if isinstance(delta.get("content"), str):
                if delta["content"]:
                    self._first_token()
                self.content.append(delta["content"])
            for call in delta.get("tool_calls") or []:
                if isinstance(call, dict):
                    self._tool_call(call)

    def _first_token(self) -> None:
        if self.first_token_at is None:
            self.first_token_at = time.monotonic()

    def _tool_call(self, delta: dict[str, Any]) -> None:
        index = delta.get("index", 0) if isinstance(delta.get("index"), int) else 0
        call = self.tool_calls.setdefault(index, {"id": "", "type": "function", "function": {"name": "", "arguments": ""}})
        if isinstance(delta.get("id"), str):
            call["id"] = delta["id"]
        function: dict[str, Any] = delta["function"] if isinstance(delta.get("function"), dict) else {}
        for key in ("name", "arguments"):
            if isinstance(function.get(key), str):
                call["function"][key] += function[key]
