"""`POST /v1/messages/count_tokens`: the host's own count where it serves one, else the tokens of the
request's text by the host's `/tokenize`, else an estimate marked as one (`"estimated": true`,
`X-BooChat-Token-Count: estimate`)."""

from __future__ import annotations

import json
import math
from urllib.parse import quote

from boochat.gateway.agent_apis import BadRequest, Body, bad_request, can_pass_through, read_json, send
from boochat.gateway.app import Reply, json_reply, route_of, served_by
from boochat.gateway.messages import chat_request
from boochat.proxy import UpstreamError, send_to
from providers.http import TransportError
from providers.models import ProviderKind
from providers.routing import Route


def _counted_text(chat: Body) -> str:
    """What a host's tokenizer is given: the text of every turn, call and tool definition."""
    pieces = []
    for message in chat["messages"]:
        content = message.get("content")
        if isinstance(content, str):
            pieces.append(content)
        elif isinstance(content, list):
            pieces += [part["text"] for part in content if part.get("type") == "text"]
        pieces += [json.dumps(call["function"], ensure_ascii=False) for call in message.get("tool_calls", [])]
    pieces += [json.dumps(tool["function"], ensure_ascii=False) for tool in chat.get("tools", [])]
    return "\n".join(pieces)


def _tokenize_url(route: Route) -> str | None:
    if route.kind == ProviderKind.LLAMA_SWAP:
        return f"{route.base_url}/upstream/{quote(route.wire_model, safe='/')}/tokenize"
    if route.kind == ProviderKind.LLAMA_SERVER:
        return f"{route.base_url}/tokenize"
    return None


async def _tokenized(route: Route, text: str) -> int | None:
    url = _tokenize_url(route)
    if url is None:
        return None
    try:
        response = await send_to(route, url, json.dumps({"content": text}).encode())
    except UpstreamError:
        return None
    try:
        if response.status != 200:
            return None
        tokens = json.loads(await response.read()).get("tokens")
    except (TransportError, ValueError, AttributeError):
        return None
    finally:
        response.close()
    return len(tokens) if isinstance(tokens, list) else None


async def count_tokens(body: Body) -> Reply:
    """The reply to `POST /v1/messages/count_tokens`."""
    try:
        chat = chat_request({**body, "stream": False}, counting=True)
    except BadRequest as exc:
        return bad_request(exc)
    route = await route_of(body.get("model"))
    if isinstance(route, Reply):
        return route
    if can_pass_through(route, "messages/count_tokens"):
        sent = await send(route, "messages/count_tokens", body)
        if isinstance(sent, Reply):
            return sent
        if sent is not None:
            answered, response = sent
            counted = await read_json(answered, response)
            if isinstance(counted, Reply):
                return counted
            if isinstance(counted, dict) and isinstance(counted.get("input_tokens"), int):
                return json_reply({"input_tokens": counted["input_tokens"]},
                                  headers={**served_by(answered), "X-BooChat-Token-Count": "host"})
    text = _counted_text(chat)
    tokens = await _tokenized(route, text)
    if tokens is not None:
        return json_reply({"input_tokens": tokens}, headers={**served_by(route), "X-BooChat-Token-Count": "tokenizer"})
    # About four characters a token in English text: an estimate, said to be one.
    return json_reply({"input_tokens": math.ceil(len(text) / 4), "estimated": True},
                      headers={**served_by(route), "X-BooChat-Token-Count": "estimate"})
