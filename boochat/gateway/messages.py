"""Anthropic's Messages API (`POST /v1/messages`) over every host.

Every request is checked and turned into a chat request first, so a bad block is the same 400 on
every host. llama.cpp hosts that serve `/v1/messages` themselves get the request as it came
(boochat.gateway.agent_apis says when); the others get the chat request, and their answer is
re-spoken by boochat.gateway.message_output. `thinking` maps onto the host's reasoning controls
where it has them. Token counts: boochat.gateway.token_counts.
"""

from __future__ import annotations

import json
from typing import Any

from boochat import database
from boochat.gateway.agent_apis import (
    BadRequest,
    Body,
    TranslatedStream,
    bad_request,
    can_pass_through,
    read_json,
    send,
)
from boochat.gateway.app import Reply, StreamReply, _renamer, error, json_reply, route_of, served_by
from boochat.gateway.message_output import MessageEvents, message_object
from providers.capabilities import LLAMA_KINDS, reasoning_for
from providers.http import TransportError
from providers.routing import Route, RoutingError

# -- the request ----------------------------------------------------------------------------------


def _image(block: dict[str, Any], where: str) -> dict[str, Any]:
    source: dict[str, Any] = block["source"] if isinstance(block.get("source"), dict) else {}
    if source.get("type") == "base64" and isinstance(source.get("data"), str) and isinstance(source.get("media_type"), str):
        return {"type": "image_url", "image_url": {"url": f"data:{source['media_type']};base64,{source['data']}"}}
    if source.get("type") == "url" and isinstance(source.get("url"), str):
        return {"type": "image_url", "image_url": {"url": source["url"]}}
    raise BadRequest(f"{where}.source: an image needs a base64 source (media_type and data) or a url source.", where)


def _text(block: dict[str, Any], where: str) -> str:
    if not isinstance(block.get("text"), str):
        raise BadRequest(f"{where}: a text block needs its text as a string.", where)
    return block["text"]


def _blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise BadRequest(f"{where}.content must be a string or a list of content blocks.", where)
    for index, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise BadRequest(f"{where}.content[{index}] must be a content block with a type.", f"{where}.content[{index}]")
    return content


def _tool_result(block: dict[str, Any], where: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A tool_result as a tool message, and the images it holds (sent after it as a user turn)."""
    if not isinstance(block.get("tool_use_id"), str):
        raise BadRequest(f"{where}: a tool_result needs the tool_use_id it answers.", where)
    texts, images = [], []
    content = block.get("content", "")
    for index, part in enumerate(_blocks(content, where) if content != "" else []):
        at = f"{where}.content[{index}]"
        if part["type"] == "text":
            texts.append(_text(part, at))
        elif part["type"] == "image":
            images.append(_image(part, at))
        else:
            raise BadRequest(f"{at}: a tool_result holds text and image blocks, not {part['type']!r}.", at)
    return {"role": "tool", "tool_call_id": block["tool_use_id"], "content": "\n".join(texts)}, images


def _messages(messages: Any) -> list[dict[str, Any]]:
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' is required: a list of user and assistant messages.", "messages")
    chat: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("user", "assistant", "system"):
            raise BadRequest(f"{where}.role must be user, assistant or system, not {role!r}.", where)
        if role == "system":  # Claude Code sends reminders as system turns between the others
            chat.append({"role": "system", "content": _system(message.get("content"), f"{where}.content")})
            continue
        parts: list[dict[str, Any]] = []
        calls, thinking, results, result_images = [], [], [], []
        for number, block in enumerate(_blocks(message.get("content"), where)):
            at, kind = f"{where}.content[{number}]", block["type"]
            if kind == "text":
                parts.append({"type": "text", "text": _text(block, at)})
            elif kind == "image" and role == "user":
                parts.append(_image(block, at))
            elif kind == "tool_result" and role == "user":
                result, images = _tool_result(block, at)
                results.append(result)
                result_images += images
            elif kind == "tool_use" and role == "assistant":
                if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
                    raise BadRequest(f"{at}: a tool_use needs an id and a name.", at)
                calls.append({"id": block["id"], "type": "function", "function": {
                    "name": block["name"], "arguments": json.dumps(block.get("input", {}), ensure_ascii=False)}})
            elif kind == "thinking" and role == "assistant":
                thinking.append(str(block.get("thinking") or ""))
            elif kind == "redacted_thinking" and role == "assistant":
                continue  # encrypted by Anthropic: no other host can read it
            else:
                raise BadRequest(f"{at}: {role} messages cannot hold {kind!r} blocks (user: text, image, "
                                 f"tool_result; assistant: text, tool_use, thinking).", at)
        chat += results
        if result_images:
            chat.append({"role": "user", "content": result_images})
        if not parts and not calls and not thinking:
            continue
        if role == "assistant" or all(part["type"] == "text" for part in parts):
            content: Any = "".join(part["text"] for part in parts if part["type"] == "text")
        else:
            content = parts
        turn: dict[str, Any] = {"role": role, "content": content if content or not calls else None}
        if calls:
            turn["tool_calls"] = calls
        if thinking:
            turn["reasoning_content"] = "".join(thinking)
        chat.append(turn)
    return chat


def _system(system: Any, where: str = "system") -> str:
    if system is None or isinstance(system, str):
        return system or ""
    if isinstance(system, list) and all(isinstance(b, dict) and b.get("type") == "text" for b in system):
        return "\n\n".join(_text(block, where) for block in system)
    raise BadRequest(f"'{where}' must be a string or a list of text blocks.", where)


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise BadRequest("'tools' must be a list.", "tools")
    chat = []
    for index, tool in enumerate(tools):
        at = f"tools[{index}]"
        if not isinstance(tool, dict) or tool.get("type") not in (None, "custom") or not isinstance(tool.get("name"), str):
            kind = tool.get("type") if isinstance(tool, dict) else None
            raise BadRequest(f"{at}: only custom tools with a name and an input_schema are supported, not {kind!r} "
                             f"(BooChat runs no server tools).", at)
        function = {"name": tool["name"], "parameters": tool.get("input_schema") or {"type": "object"}}
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        chat.append({"type": "function", "function": function})
    return chat


def _tool_choice(choice: Any, chat: Body) -> None:
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "tool" and isinstance(choice.get("name"), str):
        chat["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    elif kind in ("auto", "any", "none"):
        chat["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[kind]
    else:
        raise BadRequest("'tool_choice' must be {\"type\": auto, any, none, or tool with a name}.", "tool_choice")
    if choice.get("disable_parallel_tool_use") is True:
        chat["parallel_tool_calls"] = False


def _number(body: Body, name: str, *, integer: bool = False, required: bool = False) -> Any:
    value = body.get(name)
    if value is None:
        if required:
            raise BadRequest(f"'{name}' is required.", name)
        return None
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        raise BadRequest(f"'{name}' must be {'an integer' if integer else 'a number'}.", name)
    return value


def chat_request(body: Body, *, counting: bool = False) -> Body:
    """The chat request for a Messages request (a count_tokens request needs no max_tokens)."""
    messages = _messages(body.get("messages"))
    system = _system(body.get("system"))
    chat: Body = {"messages": ([{"role": "system", "content": system}] if system else []) + messages}
    if body.get("tools"):
        chat["tools"] = _tools(body["tools"])
    if body.get("tool_choice") is not None:
        _tool_choice(body["tool_choice"], chat)
    limit = _number(body, "max_tokens", integer=True, required=not counting)
    if limit is not None:
        chat["max_tokens"] = limit
    stops = body.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(stop, str) for stop in stops):
            raise BadRequest("'stop_sequences' must be a list of strings.", "stop_sequences")
        chat["stop"] = stops
    for name in ("temperature", "top_p"):
        if (value := _number(body, name)) is not None:
            chat[name] = value
    if (top_k := _number(body, "top_k", integer=True)) is not None:
        chat["top_k"] = top_k  # sent to llama.cpp hosts only (answer())
    thinking = body.get("thinking")
    if thinking is not None and (not isinstance(thinking, dict)
                                 or thinking.get("type") not in ("enabled", "disabled", "adaptive")):
        raise BadRequest("'thinking' must be {\"type\": \"enabled\", \"budget_tokens\": N} or {\"type\": \"disabled\"}.",
                         "thinking")
    if body.get("stream") is True:
        chat.update(stream=True, stream_options={"include_usage": True})
    return chat


def thinking_fields(model: str, thinking: Any) -> dict[str, Any]:
    """The host's reasoning controls for Anthropic's `thinking`; nothing where it has none."""
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind not in ("enabled", "disabled"):
        return {}
    try:
        controls = reasoning_for(model)
    except RoutingError:
        return {}
    return controls.wire({"thinking": "on" if kind == "enabled" else "off"})


def _host_body(route: Route, chat: Body) -> Body:
    if route.kind not in LLAMA_KINDS:
        chat.pop("top_k", None)
    return chat


def _native_ok(body: Body) -> bool:
    """Whether llama.cpp's own conversion keeps the request's meaning (server-chat.cpp turns a
    named tool choice into "required" and ignores "none")."""
    choice = body.get("tool_choice")
    return not (isinstance(choice, dict) and choice.get("type") in ("tool", "none"))


async def answer(body: Body, *, session: str = "") -> Reply | StreamReply:
    """The reply to `POST /v1/messages` (`session`: the client's key for a pool's prefix affinity)."""
    try:
        chat = chat_request(body)
    except BadRequest as exc:
        return bad_request(exc)
    route = await route_of(body.get("model"))
    if isinstance(route, Reply):
        return route
    model = str(body["model"])
    if _native_ok(body) and can_pass_through(route, "messages"):
        sent = await send(route, "messages", body, session=session)
        if sent is not None:
            return await _passed(sent, body, model)
    if body.get("thinking") is not None:
        chat.update(await database.run(lambda: thinking_fields(model, body["thinking"])))
    sent = await send(route, "chat/completions", _host_body(route, chat), session=session)
    if sent is None or isinstance(sent, Reply):
        return sent or error(502, "The host has no chat completions endpoint.", type="upstream_error")
    route, response = sent
    if chat.get("stream"):
        return TranslatedStream(response, route, "text/event-stream", served_by(route), model,
                                transcoder=MessageEvents(model))
    answer_json = await read_json(route, response)
    if isinstance(answer_json, Reply):
        return answer_json
    return json_reply(message_object(answer_json, model), headers=served_by(route))


async def _passed(sent: Any, body: Body, model: str) -> Reply | StreamReply:
    """The host's own answer, its model named as the client named it."""
    if isinstance(sent, Reply):
        return sent
    route, response = sent
    content_type = response.headers.get("content-type", "application/json")
    if body.get("stream") is True and content_type.startswith("text/event-stream"):
        return StreamReply(response, route, content_type, served_by(route), model)
    try:
        raw = await response.read()
    except TransportError as exc:
        return error(502, f"{route.provider_name} ({route.provider}): connection failed ({exc.cause_name}).",
                     type="upstream_error")
    finally:
        response.close()
    rename = _renamer(route.wire_model, model)
    return Reply(200, rename(raw) if rename else raw, content_type, served_by(route))
