"""The agent APIs of recent llama.cpp `llama-server` builds (server.cpp: `/v1/messages`,
`/v1/messages/count_tokens`, `/v1/responses`), as the fakes serve them when told to.

Like the real server, a request is converted to Chat Completions (server-chat.cpp,
`server_chat_convert_anthropic_to_oai` / `..._responses_to_chatcmpl`), answered as a chat request,
and the answer written in the API's shapes (server-task.cpp `to_json_anthropic*`,
`to_json_oaicompat_resp*`): a Message with `thinking`/`text`/`tool_use` blocks; streams with
message_start, content_block_start/delta/stop, message_delta and message_stop, and no ping; Responses
events without sequence numbers or output indexes.
"""

from __future__ import annotations

import json
from typing import Any

from tests.fakes.server import Response, Stream


def anthropic_to_chat(body: dict[str, Any]) -> dict[str, Any]:
    """llama.cpp's conversion, for what the fakes need: text, tool_use, tool_result, tools."""
    messages = []
    system = body.get("system")
    if isinstance(system, list):
        system = "\n".join(block.get("text", "") for block in system)
    if system:
        messages.append({"role": "system", "content": system})
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, str):
            messages.append({"role": message["role"], "content": content})
            continue
        text, calls, results = "", [], []
        for block in content:
            if block["type"] == "text":
                text += block["text"]
            elif block["type"] == "tool_use":
                calls.append({"id": block["id"], "type": "function",
                              "function": {"name": block["name"], "arguments": json.dumps(block.get("input", {}))}})
            elif block["type"] == "tool_result":
                result = block.get("content", "")
                if isinstance(result, list):
                    result = "".join(part.get("text", "") for part in result)
                results.append({"role": "tool", "tool_call_id": block["tool_use_id"], "content": result})
        if text or calls:
            messages.append({"role": message["role"], "content": text, **({"tool_calls": calls} if calls else {})})
        messages += results
    chat: dict[str, Any] = {"model": body.get("model"), "messages": messages,
                            "max_tokens": body.get("max_tokens", 4096)}
    if body.get("tools"):
        chat["tools"] = [{"type": "function", "function": {"name": t["name"], "description": t.get("description", ""),
                                                           "parameters": t.get("input_schema", {})}}
                         for t in body["tools"]]
    if body.get("stream"):
        chat["stream"] = True
    return chat


def message_from_chat(answer: dict[str, Any]) -> dict[str, Any]:
    choice = answer["choices"][0]
    message = choice["message"]
    blocks: list[dict[str, Any]] = []
    if message.get("content"):
        blocks.append({"type": "text", "text": message["content"]})
    for call in message.get("tool_calls") or []:
        blocks.append({"type": "tool_use", "id": call["id"], "name": call["function"]["name"],
                       "input": json.loads(call["function"]["arguments"])})
    usage = answer.get("usage", {})
    return {"id": answer.get("id", "chatcmpl-fake"), "type": "message", "role": "assistant", "content": blocks,
            "model": answer["model"], "stop_reason": "tool_use" if message.get("tool_calls") else "end_turn",
            "stop_sequence": None, "usage": {"cache_read_input_tokens": 0, "input_tokens": usage.get("prompt_tokens", 0),
                                             "output_tokens": usage.get("completion_tokens", 0)}}


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def message_stream_from_chat(events: list[bytes]) -> list[bytes]:
    """A chat stream's events re-written as llama.cpp writes Anthropic's (text and tool calls)."""
    out: list[bytes] = []
    started = text_started = False
    tool_blocks: dict[int, int] = {}
    model, stop, output_tokens = "", "end_turn", 0
    for event in events:
        data = event.decode().removeprefix("data: ").strip()
        if data == "[DONE]":
            continue
        chunk = json.loads(data)
        model = chunk.get("model", model)
        if not started:
            out.append(_event("message_start", {"type": "message_start", "message": {
                "id": chunk.get("id", "chatcmpl-fake"), "type": "message", "role": "assistant", "content": [],
                "model": model, "stop_reason": None, "stop_sequence": None,
                "usage": {"cache_read_input_tokens": 0, "input_tokens": 12, "output_tokens": 0}}}))
            started = True
        for choice in chunk.get("choices", []):
            delta = choice.get("delta", {})
            if delta.get("content"):
                if not text_started:
                    out.append(_event("content_block_start", {"type": "content_block_start", "index": 0,
                                                              "content_block": {"type": "text", "text": ""}}))
                    text_started = True
                out.append(_event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                          "delta": {"type": "text_delta", "text": delta["content"]}}))
                output_tokens += 1
            for call in delta.get("tool_calls") or []:
                index = tool_blocks.setdefault(call["index"], (1 if text_started else 0) + call["index"])
                out.append(_event("content_block_start", {"type": "content_block_start", "index": index, "content_block": {
                    "type": "tool_use", "id": call["id"], "name": call["function"]["name"]}}))
                out.append(_event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": {
                    "type": "input_json_delta", "partial_json": call["function"]["arguments"]}}))
            if choice.get("finish_reason") == "tool_calls":
                stop = "tool_use"
    if text_started:
        out.append(_event("content_block_stop", {"type": "content_block_stop", "index": 0}))
    for index in tool_blocks.values():
        out.append(_event("content_block_stop", {"type": "content_block_stop", "index": index}))
    out.append(_event("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                                        "usage": {"output_tokens": output_tokens}}))
    out.append(_event("message_stop", {"type": "message_stop"}))
    return out


def as_message(reply: Response | Stream) -> Response | Stream:
    """A chat answer (whole, streamed, or an error) as llama.cpp's /v1/messages answers it."""
    if isinstance(reply, Stream):
        return Stream(message_stream_from_chat(list(reply.chunks)))  # type: ignore[arg-type]
    if reply.status != 200:
        return reply
    return Response.json(message_from_chat(json.loads(reply.body)))


def as_response(reply: Response | Stream) -> Response:
    """llama.cpp's /v1/responses answer (not streamed here): no sequence numbers anywhere."""
    if isinstance(reply, Stream) or reply.status != 200:
        return reply  # type: ignore[return-value]
    answer = json.loads(reply.body)
    text = answer["choices"][0]["message"].get("content") or ""
    return Response.json({"id": "resp_native", "object": "response", "model": answer["model"], "status": "completed",
                          "output": [{"type": "message", "id": "msg_native", "role": "assistant", "status": "completed",
                                      "content": [{"type": "output_text", "text": text, "annotations": []}]}]})
