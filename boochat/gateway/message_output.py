"""A Message built from a host's chat completion: whole, or Anthropic's event sequence (message_start,
ping, content_block_start/delta/stop, message_delta, message_stop) as the chat stream's pieces arrive."""

from __future__ import annotations

import json
import secrets
from typing import Any

from boochat.gateway.agent_apis import sse_event
from boochat.gateway.chat_stream import Piece, usage_numbers

_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use",
                 "content_filter": "refusal"}


def _new_id() -> str:
    return f"msg_{secrets.token_hex(12)}"


def _usage(usage: dict[str, Any] | None) -> dict[str, Any]:
    prompt, completion, cached, _ = usage_numbers(usage)
    return {"input_tokens": prompt - cached, "output_tokens": completion, "cache_read_input_tokens": cached,
            "cache_creation_input_tokens": 0}


def message_object(answer: Any, model: str) -> dict[str, Any]:
    """A chat completion as a Message."""
    choice = (answer.get("choices") or [{}])[0] if isinstance(answer, dict) else {}
    message: dict[str, Any] = choice["message"] if isinstance(choice, dict) and isinstance(choice.get("message"), dict) else {}
    content: list[dict[str, Any]] = []
    if isinstance(message.get("reasoning_content"), str) and message["reasoning_content"]:
        content.append({"type": "thinking", "thinking": message["reasoning_content"], "signature": ""})
    if isinstance(message.get("content"), str) and message["content"]:
        content.append({"type": "text", "text": message["content"]})
    for call in [call for call in message.get("tool_calls") or [] if isinstance(call, dict)]:
        function: dict[str, Any] = (call["function"] if isinstance(call, dict) and isinstance(call.get("function"), dict)
                                    else {})
        content.append({"type": "tool_use", "id": str(call.get("id") or f"toolu_{secrets.token_hex(12)}"),
                        "name": str(function.get("name", "")), "input": _arguments(function.get("arguments"))})
    finish = str(choice.get("finish_reason") or "stop")
    return {"id": _new_id(), "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": _STOP_REASONS.get(finish, "end_turn"), "stop_sequence": None,
            "usage": _usage(answer.get("usage") if isinstance(answer, dict) else None)}


def _arguments(arguments: Any) -> Any:
    try:
        parsed = json.loads(arguments) if isinstance(arguments, str) and arguments else {}
    except ValueError:
        return {}  # what llama.cpp's own /v1/messages sends for arguments that are not JSON
    return parsed if isinstance(parsed, dict) else {}


class MessageEvents:
    """A chat stream's pieces as Anthropic's event sequence."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.blocks = 0  # blocks started so far
        self.open: tuple[str, int] | None = None  # the open block: its kind and index
        self.calls: dict[int, int] = {}  # tool call index -> its block
        self.finish_reason = ""
        self.usage: dict[str, Any] | None = None
        self.failure = ""

    def start(self) -> bytes:
        message: dict[str, Any] = {"id": _new_id(), "type": "message", "role": "assistant", "model": self.model, "content": [],
                   "stop_reason": None, "stop_sequence": None, "usage": _usage(None)}
        return sse_event("message_start", {"type": "message_start", "message": message}) + sse_event("ping", {"type": "ping"})

    def _close(self) -> bytes:
        if self.open is None:
            return b""
        kind, index = self.open
        self.open = None
        out = b""
        if kind == "thinking":  # Anthropic's clients expect a signature before a thinking block ends
            out = sse_event("content_block_delta", {"type": "content_block_delta", "index": index,
                                                    "delta": {"type": "signature_delta", "signature": ""}})
        return out + sse_event("content_block_stop", {"type": "content_block_stop", "index": index})

    def _start(self, kind: str, block: dict[str, Any]) -> bytes:
        out = self._close()
        self.open = (kind, self.blocks)
        self.blocks += 1
        return out + sse_event("content_block_start", {"type": "content_block_start", "index": self.open[1],
                                                       "content_block": block})

    def _delta(self, index: int, delta: dict[str, Any]) -> bytes:
        return sse_event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})

    @staticmethod
    def _text_delta(index: int, kind: bytes, name: bytes, piece: Piece) -> bytes:
        """A text or thinking delta, written without building its dict: the one event of every token."""
        text = piece.raw or json.dumps(piece.text, ensure_ascii=False).encode()
        return (b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,'
                b'"delta":{"type":"%s","%s":%s}}\n\n') % (index, kind, name, text)

    def feed(self, pieces: list[Piece]) -> bytes:
        out: list[bytes] = []
        for piece in pieces:
            if self.failure:
                break
            if piece.kind == "reasoning":
                if self.open is None or self.open[0] != "thinking":
                    out.append(self._start("thinking", {"type": "thinking", "thinking": "", "signature": ""}))
                assert self.open is not None
                out.append(self._text_delta(self.open[1], b"thinking_delta", b"thinking", piece))
            elif piece.kind == "text":
                if self.open is None or self.open[0] != "text":
                    out.append(self._start("text", {"type": "text", "text": ""}))
                assert self.open is not None
                out.append(self._text_delta(self.open[1], b"text_delta", b"text", piece))
            elif piece.kind == "tool":
                if piece.index not in self.calls:
                    call_id = piece.call_id or f"toolu_{secrets.token_hex(12)}"
                    out.append(self._start("tool", {"type": "tool_use", "id": call_id, "name": piece.name, "input": {}}))
                    assert self.open is not None
                    self.calls[piece.index] = self.open[1]
                if piece.text:
                    out.append(self._delta(self.calls[piece.index], {"type": "input_json_delta", "partial_json": piece.text}))
            elif piece.kind == "finish":
                self.finish_reason = piece.text
            elif piece.kind == "usage":
                self.usage = piece.usage
            elif piece.kind == "error":
                self.failure = piece.text
        return b"".join(out)

    def finish(self, failure: str) -> bytes:
        out = self._close()
        failure = self.failure or failure
        if failure:
            return out + sse_event("error", {"type": "error", "error": {"type": "api_error", "message": failure}})
        stop = _STOP_REASONS.get(self.finish_reason or "stop", "end_turn")
        return (out + sse_event("message_delta", {"type": "message_delta", "usage": _usage(self.usage),
                                                  "delta": {"stop_reason": stop, "stop_sequence": None}})
                + sse_event("message_stop", {"type": "message_stop"}))
