"""A Responses answer built from a host's chat completion: the Response object, whole, or the
Responses event sequence (numbered from 0) as the chat stream's pieces arrive."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import Any

from boochat.gateway.agent_apis import Body, sse_event
from boochat.gateway.chat_stream import Piece, joined_text, usage_numbers


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(16)}"


def skeleton_of(body: Body, response_id: str, model: str, created: int) -> dict[str, Any]:
    """A Response object's fields that echo the request."""
    reasoning: dict[str, Any] = body["reasoning"] if isinstance(body.get("reasoning"), dict) else {}
    return {
        "id": response_id, "object": "response", "created_at": created, "status": "in_progress", "model": model,
        "output": [], "error": None, "incomplete_details": None, "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"), "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"), "temperature": body.get("temperature"),
        "top_p": body.get("top_p"), "tool_choice": body.get("tool_choice", "auto"), "tools": body.get("tools") or [],
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "text": body.get("text") or {"format": {"type": "text"}}, "store": body.get("store", True),
        "metadata": body.get("metadata") or {}, "usage": None,
    }


def _usage(usage: dict[str, Any] | None) -> dict[str, Any]:
    prompt, completion, cached, reasoning = usage_numbers(usage)
    return {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": cached}, "output_tokens": completion,
            "output_tokens_details": {"reasoning_tokens": reasoning}, "total_tokens": prompt + completion}


def _finished(response: dict[str, Any], finish: str, usage: dict[str, Any] | None) -> dict[str, Any]:
    if finish == "length":
        response.update(status="incomplete", incomplete_details={"reason": "max_output_tokens"})
    else:
        response["status"] = "completed"
    response["usage"] = _usage(usage)
    return response


def _reasoning_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    return {"id": item_id, "type": "reasoning", "summary": [], "status": status,
            "content": [{"type": "reasoning_text", "text": text}] if text else []}


def _message_item(item_id: str, text: str | None, status: str = "completed") -> dict[str, Any]:
    content = [] if text is None else [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
    return {"id": item_id, "type": "message", "status": status, "role": "assistant", "content": content}


def _call_item(item_id: str, call_id: str, name: str, arguments: str, status: str = "completed",
               namespace: str | None = None) -> dict[str, Any]:
    item = {"id": item_id, "type": "function_call", "status": status, "call_id": call_id, "name": name,
            "arguments": arguments}
    return {**item, "namespace": namespace} if namespace else item


def response_object(answer: Any, skeleton: dict[str, Any], namespaces: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A chat completion as a Response object, and the assistant message to keep."""
    choice = (answer.get("choices") or [{}])[0] if isinstance(answer, dict) else {}
    message: dict[str, Any] = choice["message"] if isinstance(choice, dict) and isinstance(choice.get("message"), dict) else {}
    output = []
    if isinstance(message.get("reasoning_content"), str) and message["reasoning_content"]:
        output.append(_reasoning_item(new_id("rs"), message["reasoning_content"]))
    if isinstance(message.get("content"), str) and message["content"]:
        output.append(_message_item(new_id("msg"), message["content"]))
    calls = [call for call in message.get("tool_calls") or [] if isinstance(call, dict)]
    for call in calls:
        function: dict[str, Any] = call["function"] if isinstance(call.get("function"), dict) else {}
        name = str(function.get("name", ""))
        output.append(_call_item(new_id("fc"), str(call.get("id") or new_id("call")), name,
                                 str(function.get("arguments") or ""), namespace=namespaces.get(name)))
    response = _finished({**skeleton, "output": output}, str(choice.get("finish_reason") or ""),
                         answer.get("usage") if isinstance(answer, dict) else None)
    kept: dict[str, Any] = {"role": "assistant", "content": message.get("content")}
    if calls:
        kept["tool_calls"] = [{"id": item["call_id"], "type": "function",
                               "function": {"name": item["name"], "arguments": item["arguments"]}}
                              for item in output if item["type"] == "function_call"]
    return response, kept


class ResponseEvents:
    """A chat stream's pieces as the Responses event sequence."""

    def __init__(self, skeleton: dict[str, Any], keep: Callable[[dict[str, Any]], None], namespaces: dict[str, str]) -> None:
        self.response = skeleton
        self.namespaces = namespaces
        self.sequence = 0
        self.output: list[dict[str, Any]] = []
        self.open: dict[str, Any] | None = None  # the reasoning or message item being written
        self.open_index = 0  # its place in the output
        self.calls: dict[int, dict[str, Any]] = {}  # tool call index -> its open function_call item
        self.finish_reason = ""
        self.usage: dict[str, Any] | None = None
        self.failure = ""
        self.keep = keep  # called with the assistant message when the answer is complete

    def _event(self, kind: str, **data: Any) -> bytes:
        event = sse_event(kind, {"type": kind, "sequence_number": self.sequence, **data})
        self.sequence += 1
        return event

    def _text_delta(self, piece: Piece) -> bytes:
        """A text or reasoning delta, written without building its dict: the one event of every token."""
        assert self.open is not None
        kind = b"response.reasoning_text.delta" if piece.kind == "reasoning" else b"response.output_text.delta"
        logprobs = b"" if piece.kind == "reasoning" else b',"logprobs":[]'
        self.sequence += 1
        return (b'event: %s\ndata: {"type":"%s","sequence_number":%d,"item_id":"%s","output_index":%d,'
                b'"content_index":0,"delta":%s%s}\n\n') % (
            kind, kind, self.sequence - 1, self.open["id"].encode(), self.open_index,
            piece.raw or json.dumps(piece.text, ensure_ascii=False).encode(), logprobs)

    def start(self) -> bytes:
        return (self._event("response.created", response=self.response)
                + self._event("response.in_progress", response=self.response))

    def _add(self, item: dict[str, Any]) -> bytes:
        self.output.append(item)
        return self._event("response.output_item.added", output_index=len(self.output) - 1, item=dict(item, content=[])
                           if item["type"] != "function_call" else item)

    def _close_open(self) -> bytes:
        item, self.open = self.open, None
        if item is None:
            return b""
        index = self.output.index(item)
        text = joined_text(item.pop("pieces"))
        item["status"] = "completed"
        if item["type"] == "reasoning":
            item["content"] = [{"type": "reasoning_text", "text": text}]
            out = self._event("response.reasoning_text.done", item_id=item["id"], output_index=index, content_index=0,
                              text=text)
        else:
            part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
            item["content"] = [part]
            out = (self._event("response.output_text.done", item_id=item["id"], output_index=index, content_index=0,
                               text=text, logprobs=[])
                   + self._event("response.content_part.done", item_id=item["id"], output_index=index,
                                 content_index=0, part=part))
        return out + self._event("response.output_item.done", output_index=index, item=item)

    def _open_item(self, kind: str) -> bytes:
        if self.open is not None and self.open["type"] == kind:
            return b""
        out = self._close_open()
        if kind == "reasoning":
            self.open = {**_reasoning_item(new_id("rs"), "", "in_progress"), "pieces": []}
            out += self._add({k: v for k, v in self.open.items() if k != "pieces"})
            self.output[-1], self.open_index = self.open, len(self.output) - 1
            out += self._event("response.content_part.added", item_id=self.open["id"], output_index=self.open_index,
                               content_index=0, part={"type": "reasoning_text", "text": ""})
        else:
            self.open = {**_message_item(new_id("msg"), None, "in_progress"), "pieces": []}
            out += self._add({k: v for k, v in self.open.items() if k != "pieces"})
            self.output[-1], self.open_index = self.open, len(self.output) - 1
            out += self._event("response.content_part.added", item_id=self.open["id"], output_index=self.open_index,
                               content_index=0, part={"type": "output_text", "text": "", "annotations": [], "logprobs": []})
        return out

    def feed(self, pieces: list[Piece]) -> bytes:
        out: list[bytes] = []
        for piece in pieces:
            if self.failure:
                break
            if piece.kind in ("reasoning", "text"):
                if self.open is None or self.open["type"] != ("reasoning" if piece.kind == "reasoning" else "message"):
                    out.append(self._open_item("reasoning" if piece.kind == "reasoning" else "message"))
                assert self.open is not None
                self.open["pieces"].append(piece)
                out.append(self._text_delta(piece))
            elif piece.kind == "tool":
                call = self.calls.get(piece.index)
                if call is None:
                    out.append(self._close_open())
                    call = _call_item(new_id("fc"), piece.call_id or new_id("call"), piece.name, "", "in_progress",
                                      namespace=self.namespaces.get(piece.name))
                    self.calls[piece.index] = call
                    out.append(self._add(call))
                elif piece.name and not call["name"]:
                    call["name"] = piece.name
                if piece.text:
                    call["arguments"] += piece.text
                    out.append(self._event("response.function_call_arguments.delta", item_id=call["id"],
                                           output_index=self.output.index(call), delta=piece.text))
            elif piece.kind == "finish":
                self.finish_reason = piece.text
            elif piece.kind == "usage":
                self.usage = piece.usage
            elif piece.kind == "error":
                self.failure = piece.text
        return b"".join(out)

    def finish(self, failure: str) -> bytes:
        failure = self.failure or failure
        out = self._close_open()
        for call in self.calls.values():
            call["status"] = "completed"
            index = self.output.index(call)
            out += self._event("response.function_call_arguments.done", item_id=call["id"], output_index=index,
                               name=call["name"], arguments=call["arguments"])
            out += self._event("response.output_item.done", output_index=index, item=call)
        self.response["output"] = self.output
        if failure:
            self.response.update(status="failed", error={"code": "server_error", "message": failure},
                                 usage=_usage(self.usage))
            return out + self._event("response.failed", response=self.response)
        response = _finished(self.response, self.finish_reason, self.usage)
        kind = "response.incomplete" if response["status"] == "incomplete" else "response.completed"
        text = "".join(part["text"] for item in self.output if item["type"] == "message" for part in item["content"])
        calls = [{"id": c["call_id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
                 for c in self.calls.values()]
        self.keep({"role": "assistant", "content": text or None, **({"tool_calls": calls} if calls else {})})
        return out + self._event(kind, response=response)
