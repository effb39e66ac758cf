"""OpenAI's Responses API (`POST /v1/responses`) spoken over any host's Chat Completions.

The request becomes a chat request (instructions → a system message; input items → messages; function
tools → chat tools); the answer, whole or streamed, becomes a Responses object or the Responses
event sequence with sequence numbers. `previous_response_id` names an earlier response of the same
key: responses are kept (unless `store` is false) for BOOCHAT_RESPONSES_TTL seconds in Django's cache
(Redis when configured, so every instance finds them) and the conversation they ended is sent
again before the new input; an unknown or expired id is a 400.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.cache import cache

from boochat import database
from boochat.gateway.agent_apis import (
    BadRequest,
    Body,
    TranslatedStream,
    bad_request,
    read_json,
    send,
)
from boochat.gateway.app import Reply, StreamReply, error, json_reply, presented_key, route_of, served_by
from boochat.gateway.keys import hash_key
from boochat.gateway.response_output import ResponseEvents, new_id, response_object, skeleton_of
from providers.capabilities import reasoning_for
from providers.routing import Route, RoutingError

# Tools OpenAI runs on its own servers: no host here can, so they are left out and named in the reply.
_HOSTED_TOOLS = {"web_search", "web_search_preview", "file_search", "code_interpreter", "image_generation",
                 "computer_use_preview", "mcp"}
_EFFORTS = {"none", "minimal", "low", "medium", "high", "xhigh"}
# The nearest effort a host takes, for each one it does not.
_NEAREST = {"minimal": ("low",), "medium": ("high", "low"), "xhigh": ("max", "high"), "low": ("low",),
            "high": ("high",)}


# -- the request ----------------------------------------------------------------------------------


def _text_parts(content: Any, where: str) -> list[dict[str, Any]] | str:
    """A message's content as chat content: a string, or text and image_url parts."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise BadRequest(f"{where}.content must be a string or a list of content parts.", where)
    parts: list[dict[str, Any]] = []
    for index, part in enumerate(content):
        at = f"{where}.content[{index}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text", "summary_text", "refusal") and isinstance(
                part.get("text", part.get("refusal")), str):
            parts.append({"type": "text", "text": part.get("text", part.get("refusal"))})
        elif kind == "input_image":
            url = part.get("image_url")
            if not isinstance(url, str) or not url:
                raise BadRequest(f"{at}: an input_image needs an image_url (an https or data: URL); "
                                 f"file_id is not supported.", at)
            image: dict[str, Any] = {"url": url}
            if isinstance(part.get("detail"), str):
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
        else:
            raise BadRequest(f"{at}: content parts of type {kind!r} are not supported (input_text and "
                             f"input_image are).", at)
    return parts


def _plain(content: list[dict[str, Any]] | str) -> list[dict[str, Any]] | str:
    """Content of text parts only as one string (what every host takes for system and assistant turns)."""
    if isinstance(content, str) or any(part["type"] != "text" for part in content):
        return content
    return "".join(part["text"] for part in content)


def input_messages(items: Any) -> list[dict[str, Any]]:
    """The Responses `input` as chat messages."""
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    if not isinstance(items, list):
        raise BadRequest("'input' must be a string or a list of input items.", "input")
    messages: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        where = f"input[{index}]"
        if not isinstance(item, dict):
            raise BadRequest(f"{where} must be an object.", where)
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "assistant", "system", "developer"):
                raise BadRequest(f"{where}.role must be user, assistant, system or developer, not {role!r}.", where)
            content = _text_parts(item.get("content"), where)
            if role != "user":
                content = _plain(content)
                if not isinstance(content, str):
                    raise BadRequest(f"{where}: images are taken in user messages only.", where)
            messages.append({"role": "system" if role == "developer" else role, "content": content})
        elif kind == "function_call":
            call_id, name, arguments = item.get("call_id"), item.get("name"), item.get("arguments", "")
            if not isinstance(call_id, str) or not isinstance(name, str) or not isinstance(arguments, str):
                raise BadRequest(f"{where}: a function_call needs call_id, name and arguments as strings.", where)
            call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)
            elif last is not None and last["role"] == "assistant":
                last["tool_calls"] = [call]
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            call_id, output = item.get("call_id"), item.get("output")
            if not isinstance(call_id, str):
                raise BadRequest(f"{where}: a function_call_output needs its call_id.", where)
            if isinstance(output, list):
                output = _plain(_text_parts(output, where))
            if not isinstance(output, str):
                raise BadRequest(f"{where}.output must be a string or text parts.", where)
            messages.append({"role": "tool", "tool_call_id": call_id, "content": output})
        elif kind == "reasoning":
            continue  # the model's earlier thought: hosts take no reasoning back in Chat Completions
        else:
            raise BadRequest(f"{where}: input items of type {kind!r} are not supported (message, "
                             f"function_call, function_call_output and reasoning are).", where)
    return messages


@dataclass
class Tools:
    """A request's tools as chat tools, the namespace of each namespaced function, and the hosted
    tools left out (no host runs them; the reply names them in X-BooChat-Tools-Left-Out)."""

    chat: list[dict[str, Any]] = field(default_factory=list)
    namespaces: dict[str, str] = field(default_factory=dict)
    left_out: list[str] = field(default_factory=list)


def _function(tool: Any, where: str) -> dict[str, Any]:
    if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(tool.get("name"), str):
        kind = tool.get("type") if isinstance(tool, dict) else None
        raise BadRequest(f"{where}: only function tools with a name (and namespaces of them) are supported, not "
                         f"{kind!r}.", where)
    function = {key: tool[key] for key in ("name", "description", "parameters", "strict") if tool.get(key) is not None}
    return {"type": "function", "function": function}


def _tools(tools: Any) -> Tools:
    if not isinstance(tools, list):
        raise BadRequest("'tools' must be a list.", "tools")
    found = Tools()
    for index, tool in enumerate(tools):
        where = f"tools[{index}]"
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind in _HOSTED_TOOLS:
            found.left_out.append(str(kind))
        elif kind == "namespace" and isinstance(tool.get("name"), str) and isinstance(tool.get("tools"), list):
            for number, member in enumerate(tool["tools"]):
                found.chat.append(_function(member, f"{where}.tools[{number}]"))
                found.namespaces[member["name"]] = tool["name"]
        else:
            found.chat.append(_function(tool, where))
    return found


def _tool_choice(choice: Any) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise BadRequest("'tool_choice' must be auto, none, required or {\"type\": \"function\", \"name\": ...}.",
                     "tool_choice")


def _text_format(text: Any) -> dict[str, Any] | None:
    fmt = text.get("format") if isinstance(text, dict) else None
    if not isinstance(fmt, dict) or fmt.get("type") in (None, "text"):
        return None
    if fmt.get("type") == "json_object":
        return {"type": "json_object"}
    if fmt.get("type") == "json_schema" and isinstance(fmt.get("schema"), dict):
        schema = {key: fmt[key] for key in ("name", "schema", "strict", "description") if key in fmt}
        return {"type": "json_schema", "json_schema": schema}
    raise BadRequest("text.format must be text, json_object or json_schema with a schema.", "text.format")


def _number(body: Body, name: str, *, integer: bool = False) -> Any:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        raise BadRequest(f"'{name}' must be {'an integer' if integer else 'a number'}.", name)
    return value


def chat_request(body: Body, history: list[dict[str, Any]]) -> tuple[Body, list[dict[str, Any]], Tools]:
    """The chat request for a Responses request, and the conversation to keep for a follow-up
    (without the instructions, which a follow-up does not inherit)."""
    conversation = history + input_messages(body.get("input", []))
    if not conversation:
        raise BadRequest("'input' is required: a string or a list of input items.", "input")
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise BadRequest("'instructions' must be a string.", "instructions")
    chat: Body = {"messages": ([{"role": "system", "content": instructions}] if instructions else []) + conversation}
    tools = _tools(body["tools"]) if body.get("tools") else Tools()
    if tools.chat:
        chat["tools"] = tools.chat
    if body.get("tool_choice") is not None:
        chat["tool_choice"] = _tool_choice(body["tool_choice"])
    if isinstance(body.get("parallel_tool_calls"), bool):
        chat["parallel_tool_calls"] = body["parallel_tool_calls"]
    for name, chat_name in (("temperature", "temperature"), ("top_p", "top_p")):
        if (value := _number(body, name)) is not None:
            chat[chat_name] = value
    if (limit := _number(body, "max_output_tokens", integer=True)) is not None:
        chat["max_tokens"] = limit
    if (response_format := _text_format(body.get("text"))) is not None:
        chat["response_format"] = response_format
    if body.get("stream") is True:
        chat.update(stream=True, stream_options={"include_usage": True})
    return chat, conversation, tools


def _effort(body: Body) -> str | None:
    reasoning = body.get("reasoning")
    if reasoning is None:
        return None
    effort = reasoning.get("effort") if isinstance(reasoning, dict) else "?"
    if effort is None:
        return None
    if effort not in _EFFORTS:
        raise BadRequest(f"reasoning.effort must be one of {', '.join(sorted(_EFFORTS))}.", "reasoning.effort")
    return str(effort)


def reasoning_fields(model: str, effort: str) -> dict[str, Any]:
    """The host's own reasoning controls for an effort; nothing where the host has none."""
    try:
        controls = reasoning_for(model)
    except RoutingError:
        return {}
    if effort == "none":
        return controls.wire({"thinking": "off"})
    nearest = next((e for e in (effort, *_NEAREST.get(effort, ())) if e in controls.efforts), None)
    return controls.wire({"reasoning_effort": nearest, "thinking": "on"})


# -- kept responses ---------------------------------------------------------------------------------


def _kept_key(headers: dict[bytes, bytes], response_id: str) -> str:
    return f"responses:1:{hash_key(presented_key(headers))[:32]}:{response_id}"


async def _history(body: Body, headers: dict[bytes, bytes]) -> list[dict[str, Any]] | Reply:
    previous = body.get("previous_response_id")
    if previous is None:
        return []
    if not isinstance(previous, str) or not previous:
        return error(400, "'previous_response_id' must be a response id.", param="previous_response_id")
    if not settings.BOOCHAT_RESPONSES_TTL:
        return error(400, "'previous_response_id' is not supported here (BOOCHAT_RESPONSES_TTL is 0): send the "
                          "whole conversation in 'input'.", param="previous_response_id")
    kept = await cache.aget(_kept_key(headers, previous))
    if not isinstance(kept, list):
        return error(400, f"Previous response {previous!r} is unknown or expired (responses are kept "
                          f"{settings.BOOCHAT_RESPONSES_TTL} s, per key, unless sent with store false): send the "
                          f"whole conversation in 'input'.", param="previous_response_id",
                     code="previous_response_not_found")
    return kept


async def _keep(body: Body, headers: dict[bytes, bytes], response_id: str, conversation: list[dict[str, Any]],
                reply: dict[str, Any]) -> None:
    if body.get("store") is False or not settings.BOOCHAT_RESPONSES_TTL:
        return
    await cache.aset(_kept_key(headers, response_id), conversation + [reply], settings.BOOCHAT_RESPONSES_TTL)


async def answer(body: Body, headers: dict[bytes, bytes], *, session: str = "") -> Reply | StreamReply:
    """The reply to `POST /v1/responses` (`session`: the client's key for a pool's prefix affinity)."""
    history = await _history(body, headers)
    if isinstance(history, Reply):
        return history
    try:
        chat, conversation, tools = chat_request(body, history)
        effort = _effort(body)
    except BadRequest as exc:
        return bad_request(exc)
    route = await route_of(body.get("model"))
    if isinstance(route, Reply):
        return route
    model = str(body["model"])
    if effort is not None:
        chat.update(await database.run(lambda: reasoning_fields(model, effort)))
    sent = await send(route, "chat/completions", chat, session=session)
    if sent is None or isinstance(sent, Reply):
        return sent or error(502, "The host has no chat completions endpoint.", type="upstream_error")
    route, response = sent
    response_id = new_id("resp")
    skeleton = skeleton_of(body, response_id, model, int(time.time()))
    if chat.get("stream"):
        kept: list[dict[str, Any]] = []

        async def keep_answer() -> None:
            if kept:
                await _keep(body, headers, response_id, conversation, kept[0])

        return TranslatedStream(response, route, "text/event-stream", _headers(route, tools), model,
                                transcoder=ResponseEvents(skeleton, kept.append, tools.namespaces), after=keep_answer)
    answer_json = await read_json(route, response)
    if isinstance(answer_json, Reply):
        return answer_json
    result, assistant = response_object(answer_json, skeleton, tools.namespaces)
    await _keep(body, headers, response_id, conversation, assistant)
    return json_reply(result, headers=_headers(route, tools))


def _headers(route: Route, tools: Tools) -> dict[str, str]:
    left_out = {"X-BooChat-Tools-Left-Out": ", ".join(tools.left_out)} if tools.left_out else {}
    return {**served_by(route), **left_out}

