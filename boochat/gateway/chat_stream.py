"""A host's Chat Completions event stream read piece by piece, for the agent APIs that re-speak it
(boochat.gateway.responses, boochat.gateway.messages).

It copes with what the chat relay copes with (boochat.sse): events split across reads or sharing
one, `: keep-alive` comments, `data: {"error": ...}` and older `error:` lines, a usage chunk with
`choices: []`, `[DONE]`, and llama-swap's loading messages (reasoning deltas in chunks without an
`id`), which are status and never part of the answer.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class Piece:
    """One thing the host said: kind is text / reasoning / tool / finish / usage / error. A text or
    reasoning piece read on the fast path carries its text as the host's JSON string (`raw`)."""

    kind: str
    text: str = ""
    raw: bytes = b""
    index: int = 0  # a tool call's index
    call_id: str = ""
    name: str = ""
    usage: dict[str, Any] | None = None


# A chunk whose only news is one piece of text or reasoning: its one choice's delta holds nothing
# else, and the chunk has no finish, usage or error. Inside JSON strings every `"` is escaped, so
# these markers only match keys. (llama-swap's loading messages carry no "id": they are not matched.)
_NOT_PLAIN = re.compile(rb'"(?:usage|error|tool_calls)"|"finish_reason":(?!null)')
_STRING = rb'"[^"\\\x00-\x1f]*(?:\\.[^"\\\x00-\x1f]*)*"'  # a JSON string, unrolled (re is fast on it)
_DELTA = re.compile(rb'"delta":\{"(content|reasoning_content)":(' + _STRING + rb')\}')


# llama-server's own token chunk, exactly (server-task.cpp to_json_oaicompat_chat): one match.
_LLAMA_TOKEN = re.compile(
    rb'\{"choices":\[\{"finish_reason":null,"index":0,"delta":\{"(content|reasoning_content)":(' + _STRING
    + rb')\}\}\],"created":\d+,"id":"[^"\\]*","model":"[^"\\]*","system_fingerprint":"[^"\\]*",'
    rb'"object":"chat\.completion\.chunk"\}')

_LLAMA_EVENT = re.compile(b"data: " + _LLAMA_TOKEN.pattern + b"\n\n")


def _plain_text(data: bytes) -> tuple[str, bytes] | None:
    """The kind (text or reasoning) and JSON string of an ordinary token chunk, read without parsing
    the chunk (most of a stream)."""
    if (match := _LLAMA_TOKEN.fullmatch(data)) is not None:
        return ("text" if match.group(1) == b"content" else "reasoning", match.group(2)) if match.group(2) != b'""' else None
    if b'"id"' not in data or _NOT_PLAIN.search(data) or data.count(b'"delta"') != 1:
        return None
    match = _DELTA.search(data)
    if match is None or match.group(2) == b'""':
        return None
    return "text" if match.group(1) == b"content" else "reasoning", match.group(2)


def joined_text(pieces: list[Piece]) -> str:
    """The text of text or reasoning pieces, those read on the fast path decoded in one call."""
    if not any(piece.raw for piece in pieces):
        return "".join(piece.text for piece in pieces)
    literals = b",".join(piece.raw or json.dumps(piece.text).encode() for piece in pieces)
    return "".join(json.loads(b"[" + literals + b"]"))


def error_text(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error.get("type") or json.dumps(error))
    return str(error)


class ChatPieces:
    """Feed the host's bytes, get the pieces of every complete event."""

    def __init__(self) -> None:
        self._pending = b""
        self.done = False  # [DONE] arrived
        self.finished = False  # a finish_reason arrived

    def feed(self, data: bytes) -> list[Piece]:
        buffer = (self._pending + data).replace(b"\r\n", b"\n")
        cut = buffer.rfind(b"\n\n") + 2
        complete, self._pending = buffer[:cut], buffer[cut:]
        # A read of nothing but llama-server token events (most of a fast stream): matched in one call.
        # No JSON string holds a raw newline, so each blank line ends one event.
        tokens = _LLAMA_EVENT.findall(complete)
        if tokens and len(tokens) == complete.count(b"\n\n") and len({kind for kind, _ in tokens}) == 1:
            kind = "text" if tokens[0][0] == b"content" else "reasoning"
            return [Piece(kind, raw=b'"' + b"".join(literal[1:-1] for _, literal in tokens) + b'"')]
        blocks = complete.split(b"\n\n")
        blocks.pop()
        pieces: list[Piece] = []
        run: list[bytes] = []  # consecutive events of one line of JSON each: parsed in one call
        for block in blocks:
            if block.startswith(b"data: {") and b"\n" not in block:
                run.append(block[6:])
                continue
            pieces += self._run(run)
            run = []
            pieces += self._event(block)
        return pieces + self._run(run)

    def _run(self, run: list[bytes]) -> list[Piece]:
        """The pieces of consecutive one-line events. Ordinary token chunks that arrived in the same
        read are one piece: their texts joined as one JSON string (each literal's escapes are its
        own), so a burst of tokens is passed on as one delta, and nothing waits for it."""
        pieces: list[Piece] = []
        unread: list[bytes] = []
        kind, literals = "", []
        for data in run:
            plain = _plain_text(data)
            if plain is not None and plain[0] == kind:
                literals.append(plain[1])
                continue
            if literals:
                pieces.append(Piece(kind, raw=b'"' + b"".join(literal[1:-1] for literal in literals) + b'"'))
                kind, literals = "", []
            if plain is None:
                unread.append(data)
                continue
            pieces += self._parsed(unread)
            unread = []
            kind, literals = plain[0], [plain[1]]
        if literals:
            pieces.append(Piece(kind, raw=b'"' + b"".join(literal[1:-1] for literal in literals) + b'"'))
        return pieces + self._parsed(unread)

    def _parsed(self, run: list[bytes]) -> list[Piece]:
        if not run:
            return []
        try:
            chunks = json.loads(b"[" + b",".join(run) + b"]")
        except ValueError:  # one of them is broken: read them one by one to say which
            return [piece for data in run for piece in self._event(b"data: " + data)]
        return [piece for chunk in chunks for piece in self._chunk(chunk)]

    def close(self) -> list[Piece]:
        """The stream ended: a last event without its blank line still counts."""
        block, self._pending = self._pending, b""
        return self._event(block) if block.strip() else []

    def _event(self, block: bytes) -> list[Piece]:
        if block.startswith(b"data: {") and b"\n" not in block:  # the usual event: one line of JSON
            try:
                return self._chunk(json.loads(block[6:]))
            except ValueError:
                return [Piece("error", "the host sent an event that is not JSON")]
        data = []
        # Only LF ends a line: str.splitlines() would also split at U+2028 inside a JSON string.
        for line in block.decode("utf-8", errors="replace").split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                data.append(value)
            elif name == "error":  # older llama-server builds
                return [Piece("error", value.strip() or "the host reported an error")]
        if not data:
            return []
        text = "\n".join(data)
        if text.strip() == "[DONE]":
            self.done = True
            return []
        try:
            chunk = json.loads(text)
        except ValueError:
            return [Piece("error", "the host sent an event that is not JSON")]
        return self._chunk(chunk)

    def _chunk(self, chunk: Any) -> list[Piece]:
        pieces = chunk_pieces(chunk)
        if not self.finished:
            self.finished = any(piece.kind == "finish" for piece in pieces)
        return pieces


def chunk_pieces(chunk: Any) -> list[Piece]:
    """The pieces of one parsed chunk."""
    if not isinstance(chunk, dict):
        return [Piece("error", "the host sent an event that is not a JSON object")]
    if "error" in chunk:
        return [Piece("error", error_text(chunk["error"]))]
    pieces = []
    choices = chunk.get("choices")
    for choice in choices if isinstance(choices, list) else []:
        if not isinstance(choice, dict):
            continue
        delta = choice["delta"] if isinstance(choice.get("delta"), dict) else {}
        reasoning = delta.get("reasoning_content")
        # llama-swap's sendLoadingState chunks carry no id: progress, not the model's thought.
        if isinstance(reasoning, str) and reasoning and "id" in chunk:
            pieces.append(Piece("reasoning", reasoning))
        if isinstance(delta.get("content"), str) and delta["content"]:
            pieces.append(Piece("text", delta["content"]))
        for call in delta.get("tool_calls") or []:
            if not isinstance(call, dict):
                continue
            function = call["function"] if isinstance(call.get("function"), dict) else {}
            pieces.append(Piece(
                "tool", _str(function.get("arguments")), index=call["index"] if isinstance(call.get("index"), int) else 0,
                call_id=_str(call.get("id")), name=_str(function.get("name"))))
        if isinstance(choice.get("finish_reason"), str):
            pieces.append(Piece("finish", choice["finish_reason"]))
    if isinstance(chunk.get("usage"), dict):
        pieces.append(Piece("usage", usage=chunk["usage"]))
    return pieces


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def usage_numbers(usage: dict[str, Any] | None) -> tuple[int, int, int, int]:
    """(prompt, completion, cached prompt, reasoning) tokens of a Chat Completions usage object."""
    usage = usage or {}

    def number(value: Any) -> int:
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    prompt_details = _mapping(usage.get("prompt_tokens_details"))
    completion_details = _mapping(usage.get("completion_tokens_details"))
    cached = number(prompt_details.get("cached_tokens")) or number(usage.get("prompt_cache_hit_tokens"))
    return (number(usage.get("prompt_tokens")), number(usage.get("completion_tokens")), cached,
            number(completion_details.get("reasoning_tokens")))
