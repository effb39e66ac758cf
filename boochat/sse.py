"""Reading OpenAI-style SSE chat streams as they pass through, to know what to save.

The bytes are relayed untouched; this only watches them. It copes with every shape in DESIGN.md:
several events in one read and events split across reads, `: keep-alive` comments, `data:
{"error": ...}` and the older `error:` lines, a final usage chunk with `choices: []`, `[DONE]`, and
llama-swap's loading messages (reasoning deltas in chunks without an `id`), which are status only.

Reading the events costs more than relaying them: 12 µs of a 5,000-chunk relay's 80 µs a chunk, a
quarter of a worker's time with 500 chat streams (bench/streams_load.py, py-spy). A relay therefore
reads lazily (`lazy=True`): until the first token everything is read as it arrives (its time is
the answer's time to first token), then the bytes wait until `read()`, which a relay calls once a
second and at the end. Read together, the common event (one `data:` line of JSON) is decoded in one
go and parsed where it lies, without a call to json.loads for each, with the same result, event for
event (one that is not one whole JSON object by itself is read line by line, as every event once
was, and counted if malformed).
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
        """Linear in the bytes fed, however many events they carry (a relay that fell behind gets
        thousands at once): each separator is searched for from where the last one was."""
        buffer = self._buffer + data
        start = 0
        found = [buffer.find(sep) for sep in _SEPARATORS]  # -1: none left in the buffer
        simple: list[bytes] = []  # consecutive events that are one `data: {...}` line each
        while True:
            best = -1
            for i, sep in enumerate(_SEPARATORS):
                if 0 <= found[i] < start:
                    found[i] = buffer.find(sep, start)
                if found[i] >= 0 and (best < 0 or found[i] < found[best]):
                    best = i
            if best < 0:
                break
            block = buffer[start:found[best]]
            if block.startswith(b"data: {") and block.endswith(b"}") and b"\n" not in block and b"\r" not in block:
                simple.append(block)
            else:
                self._simple(simple)
                self._event(block)
            start = found[best] + len(_SEPARATORS[best])
        self._simple(simple)
        self._buffer = buffer[start:]

    def _simple(self, blocks: list[bytes]) -> None:
        """Read events that are one `data: {...}` line each, in order: their JSON decoded together
        and parsed in place. Any that is not one whole JSON object by itself, or holds a character
        that ends a line for str.splitlines(), is read line by line (_event), as every event once was."""
        if len(blocks) == 1 and self.first_token_at is None:
            self._event(blocks.pop())
            return
        texts = [block[6:].decode("utf-8", errors="replace") for block in blocks]
        joined, start = "\n".join(texts), 0
        odd = any(char in joined for char in _OTHER_LINE_BREAKS)
        for block, text in zip(blocks, texts, strict=True):
            end = start + len(text)
            try:
                chunk, parsed_to = _parse_object(joined, start)
            except ValueError:
                parsed_to = -1
            if parsed_to == end and not (odd and any(char in text for char in _OTHER_LINE_BREAKS)):
                self._chunk(chunk)
            else:
                self._event(block)
            start = end + 1
        blocks.clear()

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
        for raw in block.decode("utf-8", errors="replace").splitlines():
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
            delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
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
        function = delta.get("function") if isinstance(delta.get("function"), dict) else {}
        for key in ("name", "arguments"):
            if isinstance(function.get(key), str):
                call["function"][key] += function[key]


# An event ends at a blank line, whatever the line ending (the SSE spec allows all three).
_SEPARATORS = (b"\n\n", b"\r\n\r\n", b"\r\r")
# Where str.splitlines() ends a line besides \n and \r. The other ASCII ones (\v, \f, \x1c-\x1e) cannot
# stand in valid JSON, so an event holding them fails to parse in place and is read line by line.
_OTHER_LINE_BREAKS = ("\x85", "\u2028", "\u2029")
_parse_object = json.JSONDecoder().raw_decode
