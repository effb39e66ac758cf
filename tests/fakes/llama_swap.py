"""A fake llama-swap host (and the llama-server behind it) that answers like the captures.

Shapes follow tests/fixtures: `llama-swap/` for the proxy's own endpoints (per version) and the
real `llama-server/` captures for chat, completions and props.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from tests.fakes import agent_apis
from tests.fakes.fixtures import fixture_bytes, json_fixture, sse_events
from tests.fakes.server import FakeHost, Raw, RecordedRequest, Response, Stream
from tests.fakes.slots import Slots, prompt_digest, rendered, tokens

_STREAM = [json.loads(e[len(b"data: "):]) for e in sse_events("llama-server/12-a-chat-stream-usage.http")[:-1]]
_STREAM_NO_USAGE = [json.loads(e[len(b"data: "):]) for e in sse_events("llama-server/11-a-chat-stream.http")[:-1]]
# The captured answer, piece by piece: what the fake streams unless told to say something else.
CAPTURED_PIECES = [chunk["choices"][0]["delta"]["content"] for chunk in _STREAM[1:-2]]
DONE = b"data: [DONE]\n\n"
AGENT_PATHS = ("/v1/messages", "/v1/messages/count_tokens", "/v1/responses")


def sse(data: Any) -> bytes:
    """One SSE event as llama-server writes it: compact JSON, raw UTF-8."""
    return b"data: " + json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n"


def _with(template: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {key: changes.get(key, value) for key, value in template.items()}


@dataclass
class FakeModel:
    id: str
    n_ctx: int = 2048
    loaded: bool = False
    name: str | None = None
    description: str | None = None
    context_length: int | None = None  # set when the host's config declares it (then also meta.n_ctx)
    peer: str | None = None  # served by a llama-swap peer (listed `peer/id` since v242)
    aliases: tuple[str, ...] = ()
    vision: bool = False  # what /props says in modalities.vision (a model started with an mmproj)
    extra: dict[str, Any] = field(default_factory=dict)  # more /v1/models fields (capabilities, ...)
    template_caps: dict[str, bool] = field(default_factory=dict)  # changes to /props' chat_template_caps


def estimate_tokens(body: dict[str, Any]) -> int:
    """The fake's tokenizer, fitted to the captures: 1,800 characters in one message gave 1,212
    tokens and 3,600 gave 2,412 (the captured model's vocabulary is tiny), plus template tokens."""
    messages = body.get("messages") or []
    chars = sum(len(m["content"]) for m in messages if isinstance(m, dict) and isinstance(m.get("content"), str))
    return math.ceil(chars * 2 / 3) + 10 + 2 * len(messages)


class FakeLlamaSwap(FakeHost):
    """llama-swap `version` in {"v150", "v226", "v250", "head"}; `swap`: one model loaded at a time."""

    def __init__(
        self,
        models: list[FakeModel] | None = None,
        *,
        version: str = "v250",
        swap: bool = True,
        send_loading_state: bool = False,
        reply: list[str] | None = None,
        stream_delay: float = 0.0,
        agent_apis: bool = False,
    ) -> None:
        # Faults, set by tests: answer 429 (concurrency limit), send an error event or drop the
        # connection after this many stream events.
        self.busy = False
        self.error_after: int | None = None
        self.drop_after: int | None = None
        # Streams send this many events, then wait until `released` is set: what a reader gets in
        # between it got while the answer was being written, whatever stands between it and the host.
        self.hold_after: int | None = None
        self.released = threading.Event()
        # A fault from FAULTS answers every request (or only those to `fault_paths`).
        self.fault: str | None = None
        self.fault_paths: set[str] | None = None
        # Loading through /upstream/<model>/health takes this long (shown as "starting" in /running);
        # `refuse_control` answers the load and unload endpoints with 500.
        self.load_seconds = 0.0
        self.refuse_control = False
        # A host that hangs on loads, on demand: /upstream/<model>/health waits while this is set.
        self.hold_loads = False
        self.starting: set[str] = set()
        # What happens elsewhere while the host works on a request (a chat deleted meanwhile): called
        # in a thread with each request once it has arrived, and the request is answered after it.
        self.while_answering: Callable[[RecordedRequest], None] | None = None
        # Slots and a prompt cache (tests.fakes.slots): chat requests wait for a slot and take
        # prefill and decode time; None answers at once, any number at a time.
        self.slots: Slots | None = None
        # Tool calls scripted by a test: each request offering `tools` takes the next round, a list of
        # (function name, arguments) the model calls; once they are used up it answers in text
        # ("Tool result: ..." after a tool's result). None: the first tool offered, called once.
        self.tool_rounds: list[list[tuple[str, dict[str, Any]]]] | None = None
        self.calls_made = 1
        super().__init__()
        self.models = models if models is not None else [FakeModel("qwen3-8b")]
        self.version = version
        self.swap = swap
        self.send_loading_state = send_loading_state
        self.reply = reply if reply is not None else CAPTURED_PIECES
        self.stream_delay = stream_delay
        # Serve /v1/messages, /v1/messages/count_tokens and /v1/responses as recent llama.cpp builds
        # do (llama-swap forwards them); without, they are 404 as on older hosts.
        self.agent_apis = agent_apis

    # -- what llama-swap lists ------------------------------------------------------------------
    def listed_id(self, model: FakeModel) -> str:
        return f"{model.peer}/{model.id}" if model.peer and self.version in ("v250", "head") else model.id

    def find(self, model_id: str) -> FakeModel | None:
        return next((m for m in self.models if model_id == self.listed_id(m) or model_id in m.aliases), None)

    def model_entry(self, model: FakeModel) -> dict[str, Any]:
        entry: dict[str, Any] = {"id": self.listed_id(model), "object": "model", "created": 1787700000, "owned_by": "llama-swap"}
        if model.peer:
            entry["name"] = f"{model.peer}: {model.id}"
        elif model.name:
            entry["name"] = model.name
        if model.description:
            entry["description"] = model.description
        if self.version == "v150":
            return entry
        entry.update(model.extra)
        if model.context_length:
            entry["context_length"] = model.context_length
        meta: dict[str, Any] = {"llamaswap": {"peerID": model.peer}} if model.peer else {}
        if self.version in ("v250", "head"):
            if model.aliases:
                meta.setdefault("llamaswap", {})["aliases"] = list(model.aliases)
            meta.setdefault("llamaswap", {})["type"] = "peer" if model.peer else "model"
            if model.context_length:
                meta["n_ctx"] = model.context_length
            entry["status"] = {"value": "loaded" if model.loaded else "unloaded"}
        if meta:
            entry["meta"] = meta
        return entry

    def load(self, model: FakeModel) -> None:
        if self.swap:
            for other in self.models:
                other.loaded = False
        model.loaded = True

    def unknown_model(self, model_id: str) -> Response:
        if self.version == "v150":
            return Response(400, f"could not find suitable inference handler for {model_id}".encode(), "text/plain; charset=utf-8")
        if self.version == "head":
            return Response(404, fixture_bytes("llama-swap/head-unknown-model-404.json"))
        return Response(404, fixture_bytes("llama-swap/v226-unknown-model-404.json"))

    # -- dispatch ---------------------------------------------------------------------------------
    async def handle(self, request: RecordedRequest) -> Response | Stream | Raw:
        path = request.path
        if self.while_answering is not None:
            await asyncio.to_thread(self.while_answering, request)
        if self.fault and (self.fault_paths is None or path in self.fault_paths):
            return self.faulty(request)
        if request.method == "GET":
            if path == "/health":
                return Response(200, b"OK", "text/plain; charset=utf-8")
            if path == "/api/version":
                return Response.json({"version": self.version, "commit": "0bdb372", "build_date": "2026-08-14T00:00:00Z"})
            if path == "/v1/models":
                return Response.json({"object": "list", "data": [self.model_entry(m) for m in self.models]})
            if path == "/running":
                return Response.json({"running": [
                    {"model": self.listed_id(m), "state": "starting" if m.id in self.starting else "ready"}
                    for m in self.models if m.loaded or m.id in self.starting]})
            if path == "/unload":
                return self.unload(None)
            if path.startswith("/upstream/") and path.endswith("/health"):
                # Go's router matches the decoded path: percent-encoded segments name the same model.
                return await self.load_ahead(unquote(path[len("/upstream/"):-len("/health")]))
            if path.startswith("/upstream/") and path.endswith("/props"):
                return self.props(path[len("/upstream/") : -len("/props")])
            if path == "/slots" and self.slots is not None:
                return Response.json(self.slots.slots_listing(self.models[0].n_ctx))
        if request.method == "POST" and path == "/v1/chat/completions" and self.slots is not None:
            return await self.inference_in_slot(request)
        if request.method == "POST" and path in ("/v1/chat/completions", "/v1/completions", "/v1/embeddings"):
            return self.inference(request)
        if request.method == "POST" and self.agent_apis and path in AGENT_PATHS:
            return self.agent_api(request)
        if request.method == "POST" and path.startswith("/upstream/") and path.endswith("/tokenize"):
            return self.tokenize(request)
        if request.method == "POST" and path.startswith("/api/models/unload"):
            return self.unload(unquote(path.removeprefix("/api/models/unload").removeprefix("/")) or None)
        return Response(404, b"404 page not found", "text/plain; charset=utf-8")

    def agent_api(self, request: RecordedRequest) -> Response | Stream:
        """llama.cpp's own /v1/messages, /v1/messages/count_tokens and /v1/responses."""
        try:
            body = request.json()
        except ValueError:
            return Response.json({"error": {"code": 500, "message": "invalid JSON", "type": "server_error"}}, 500)
        if request.path == "/v1/responses":
            text = body["input"] if isinstance(body.get("input"), str) else json.dumps(body.get("input"))
            chat = {"model": body.get("model"), "messages": [{"role": "user", "content": text}]}
        else:
            chat = agent_apis.anthropic_to_chat(body)
        if request.path == "/v1/messages/count_tokens":
            return Response.json({"input_tokens": estimate_tokens(chat)})
        as_chat = RecordedRequest("POST", "/v1/chat/completions", request.headers, json.dumps(chat).encode())
        answer = self.inference(as_chat)
        return agent_apis.as_response(answer) if request.path == "/v1/responses" else agent_apis.as_message(answer)

    def tokenize(self, request: RecordedRequest) -> Response:
        """llama-server's /tokenize (fixture 06): the fake's tokenizer gives a token per 3 characters."""
        content = request.json().get("content", "")
        return Response.json({"tokens": list(range(len(content) // 3 + 1))})

    # -- fleet control (llama-swap's /api/models/unload, /unload, /upstream/<model>/health) --------------
    def unload(self, model_id: str | None) -> Response:
        if self.refuse_control:
            return Response(500, b"failed to stop process", "text/plain; charset=utf-8")
        targets = self.models if model_id is None else [m for m in [self.find(model_id)] if m]
        if model_id is not None and not targets:
            return Response(404, f"model {model_id} not found".encode(), "text/plain; charset=utf-8")
        for model in targets:
            model.loaded = False
        return Response(200, b"OK", "text/plain; charset=utf-8")

    async def load_ahead(self, model_id: str) -> Response:
        model = self.find(model_id)
        if model is None:
            return self.unknown_model(model_id)
        if self.refuse_control:
            return Response(502, b"upstream command exited prematurely", "text/plain; charset=utf-8")
        self.starting.add(model.id)
        await asyncio.sleep(self.load_seconds)
        while self.hold_loads:
            await asyncio.sleep(0.01)
        self.starting.discard(model.id)
        self.load(model)
        return Response(200, b"OK", "text/plain; charset=utf-8")

    def faulty(self, request: RecordedRequest) -> Response | Stream:
        """Every way a host has been seen to fail (docs/wire.md and the captures)."""
        fault = self.fault
        events = self.stream_events("qwen3-8b", include_usage=True)
        if fault == "500":  # llama-server's own error shape
            return Response(500, fixture_bytes("llama-server/23-a-invalid-json.http").partition(b"\r\n\r\n")[2])
        if fault == "502":  # llama-swap's reverse proxy when the model's server died: no body
            return Response(502, b"", "text/plain; charset=utf-8")
        if fault == "503":  # llama-server still loading
            return Response(503, b'{"error":{"message":"Loading model","type":"unavailable_error","code":503}}')
        if fault == "429":
            return Response(429, fixture_bytes("llama-swap/v250-concurrency-429.json"), headers={"Retry-After": "7"})
        if fault == "404":
            return Response(404, fixture_bytes("llama-swap/head-unknown-model-404.json"))
        if fault == "404-text":  # llama-swap before v218
            return Response(400, b"could not find suitable inference handler for x", "text/plain; charset=utf-8")
        if fault == "invalid-json":
            return Response(200, b'{"object":"list","data":[{"id":"qwen3-8b"')
        if fault == "truncated-sse":  # the stream ends cleanly, but in the middle of an event
            return Stream(events[:5] + [events[5][:40]])
        if fault == "non-json-sse":
            return Stream(events[:3] + [b"data: this is not json\n\n", b"data: {\"half\": \n\n"] + events[3:])
        if fault == "huge-models":  # a 10 MB model list
            entry = {"id": "m", "object": "model", "owned_by": "llama-swap", "description": "x" * 1000}
            return Response.json({"object": "list", "data": [{**entry, "id": f"m{i}"} for i in range(10_000)]})
        raise ValueError(f"unknown fault {fault!r}")

    def props(self, model_id: str) -> Response:
        model = self.find(model_id)
        if model is None:
            return self.unknown_model(model_id)
        self.load(model)  # through llama-swap, /upstream/<id>/... starts the model
        props = json_fixture("llama-server/02-a-props.http")
        props["default_generation_settings"]["n_ctx"] = model.n_ctx
        props["model_alias"] = model.id
        props["chat_template_caps"].update(model.template_caps)
        props["modalities"]["vision"] = model.vision
        if self.slots is not None:
            props["total_slots"] = self.slots.count
        return Response.json(props)

    def inference(self, request: RecordedRequest) -> Response | Stream:
        # llama-swap reads `model` from the body only when the request says it is JSON.
        if "application/json" not in request.headers.get("content-type", ""):
            return Response(400, b"missing or invalid 'model' key", "text/plain; charset=utf-8")
        try:
            body = request.json()
            model_id = body["model"]
        except (ValueError, KeyError, TypeError):
            return Response(400, b"missing or invalid 'model' key", "text/plain; charset=utf-8")
        model = self.find(model_id)
        if model is None:
            return self.unknown_model(model_id)
        if self.busy:
            return Response(429, fixture_bytes("llama-swap/v250-concurrency-429.json"), headers={"Retry-After": "7"})
        was_loaded = model.loaded
        self.load(model)
        if request.path == "/v1/embeddings":
            return Response.json(self.embeddings(model, body))
        if request.path == "/v1/completions":
            return Response.json(_with(json_fixture("llama-server/27-a-completions.http"), model=model.id))
        prompt_tokens = estimate_tokens(body)
        if prompt_tokens > model.n_ctx:
            # As llama-server answers, also for stream:true (fixtures 20 and 21).
            return Response.json({"error": {
                "code": 400,
                "message": f"request ({prompt_tokens} tokens) exceeds the available context size ({model.n_ctx} tokens), try increasing it",
                "type": "exceed_context_size_error", "n_prompt_tokens": prompt_tokens, "n_ctx": model.n_ctx,
            }}, status=400)
        tools = body.get("tools") or []
        messages = body.get("messages") or [{}]
        if tools and self.tool_rounds:
            return self.tool_call(model.id, self.tool_rounds.pop(0), body)
        if tools and self.tool_rounds is None and messages[-1].get("role") != "tool":
            return self.tool_call(model.id, [(tools[0]["function"]["name"], {"city": "Oslo"})], body)
        reply = [f"Tool result: {messages[-1].get('content')}"] if messages[-1].get("role") == "tool" else self.reply
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            loading = [] if was_loaded or not self.send_loading_state else loading_events(model.id)
            events = loading + self.stream_events(model.id, include_usage, reply)
            if self.error_after is not None:
                error = {"error": {"code": 500, "message": "slot crashed", "type": "server_error"}}
                events = events[: self.error_after] + [sse(error), DONE]
            return Stream(events, delay=self.stream_delay, drop_after=self.drop_after, hold_after=self.hold_after,
                          released=self.released)
        answer = json_fixture("llama-server/10-a-chat.http")
        answer["choices"][0]["message"]["content"] = "".join(reply)
        return Response.json(_with(answer, model=model.id))

    async def inference_in_slot(self, request: RecordedRequest) -> Response | Stream:
        """A chat answer from one of the host's slots: wait for one, prefill what its cache lacks,
        then decode the reply a token (piece) at a time, reporting the reuse as llama-server does."""
        slots = self.slots
        assert slots is not None
        answer = self.inference(request)  # every refusal as before; its timings are replaced below
        if answer.status != 200:
            return answer
        body = request.json()
        prompt = rendered(body.get("messages") or [])
        arrived = time.perf_counter()
        slot, cached_chars = await slots.take(prompt)
        slotted = time.perf_counter()
        prompt_tokens, cached = tokens(len(prompt)), tokens(cached_chars)
        await asyncio.sleep((prompt_tokens - cached) * slots.prefill_seconds)
        slots.journal.append({"prompt": prompt_digest(prompt), "arrived": arrived, "slotted": slotted,
                              "prefilled": time.perf_counter()})
        reply = list(self.reply)
        text = prompt + "<|assistant|>" + "".join(reply) + "<|end|>"
        timings = {"cache_n": cached, "prompt_n": prompt_tokens - cached,
                   "prompt_ms": (prompt_tokens - cached) * slots.prefill_seconds * 1000,
                   "predicted_n": len(reply), "predicted_ms": len(reply) * slots.decode_seconds * 1000}
        usage = {"completion_tokens": len(reply), "prompt_tokens": prompt_tokens,
                 "total_tokens": prompt_tokens + len(reply), "prompt_tokens_details": {"cached_tokens": cached}}
        if not body.get("stream"):
            await asyncio.sleep(len(reply) * slots.decode_seconds)
            slots.give_back(slot, text)
            answered = json.loads(answer.body)
            answered.update(usage=usage, timings=timings)
            return Response.json(answered)
        events = list(answer.chunks)  # type: ignore[union-attr, arg-type]
        if b'"usage"' in events[-2]:
            final = json.loads(events[-2][len(b"data: "):])
            final.update(usage=usage, timings=timings)
            events[-2] = sse(final)

        async def decode() -> AsyncIterator[bytes]:
            try:
                for index, event in enumerate(events):
                    if 0 < index <= len(reply):
                        await asyncio.sleep(slots.decode_seconds)
                    yield event
            finally:
                slots.give_back(slot, text)  # also when the client left mid-answer

        return Stream(decode(), drop_after=self.drop_after)

    def tool_call(self, model_id: str, calls: list[tuple[str, dict[str, Any]]], body: dict[str, Any]) -> Response | Stream:
        """The model calls these tools (llama-server's shapes with --jinja): streamed as OpenAI does,
        each call's id, type and name first with empty arguments, then its arguments in pieces."""
        listed = [{"id": f"call_fake_{self.calls_made + i}", "type": "function",
                   "function": {"name": name, "arguments": json.dumps(arguments)}} for i, (name, arguments) in enumerate(calls)]
        self.calls_made += len(listed)
        if not body.get("stream"):
            answer = json_fixture("llama-server/10-a-chat.http")
            answer["choices"][0].update(finish_reason="tool_calls", message={"role": "assistant", "content": None, "tool_calls": listed})
            return Response.json(_with(answer, model=model_id))
        role, content, finish = _STREAM[0], _STREAM[1], _STREAM[-2]

        def delta(call: dict[str, Any]) -> bytes:
            return sse(_with(content, model=model_id, choices=[{**content["choices"][0], "delta": {"tool_calls": [call]}}]))

        events = [sse(_with(role, model=model_id))]
        for index, call in enumerate(listed):
            events.append(delta({"index": index, "id": call["id"], "type": "function",
                                 "function": {"name": call["function"]["name"], "arguments": ""}}))
            arguments = call["function"]["arguments"]
            events += [delta({"index": index, "function": {"arguments": arguments[at:at + 7]}})
                       for at in range(0, len(arguments), 7)]
        events.append(sse(_with(finish, model=model_id, choices=[{**finish["choices"][0], "finish_reason": "tool_calls"}])))
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append(sse(_with(_STREAM[-1], model=model_id)))
        return Stream([*events, DONE], delay=self.stream_delay)

    def stream_events(self, model_id: str, include_usage: bool, reply: list[str] | None = None) -> list[bytes]:
        """The captured stream's events (fixtures 11/12) carrying the reply and `model_id`."""
        return list(_stream_events(model_id, include_usage, tuple(self.reply if reply is None else reply)))

    @staticmethod
    def embeddings(model: FakeModel, body: dict[str, Any]) -> dict[str, Any]:
        inputs = body.get("input")
        inputs = inputs if isinstance(inputs, list) else [inputs]
        data = [
            {"object": "embedding", "index": i, "embedding": [round(((len(str(text)) + i + k) % 7) / 7, 4) for k in range(8)]}
            for i, text in enumerate(inputs)
        ]
        tokens = sum(len(str(text)) // 4 + 1 for text in inputs)
        return {"object": "list", "data": data, "model": model.id, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


@functools.lru_cache(maxsize=64)
def _stream_events(model_id: str, include_usage: bool, reply: tuple[str, ...]) -> tuple[bytes, ...]:
    # Cached: load benchmarks ask for hundreds of 200-event streams at once, and the fake shares the
    # machine with the app they measure (building the events took 76 us of its 200 us a request).
    template = _STREAM if include_usage else _STREAM_NO_USAGE
    role, content, finish = template[0], template[1], template[-2 if include_usage else -1]
    events = [sse(_with(role, model=model_id))]
    events += [sse(_with(content, model=model_id, choices=[{**content["choices"][0], "delta": {"content": piece}}]))
               for piece in reply]
    events.append(sse(_with(finish, model=model_id)))
    if include_usage:
        events.append(sse(_with(template[-1], model=model_id)))
    return (*events, DONE)


def loading_events(model_id: str) -> list[bytes]:
    """llama-swap's sendLoadingState chunks: reasoning deltas without an `id` (v250 fixture)."""
    return [
        sse({"choices": [{"delta": {"reasoning_content": f"llama-swap loading model: {model_id}\n"}}]}),
        sse({"choices": [{"delta": {"reasoning_content": "..."}}]}),
        sse({"choices": [{"delta": {"reasoning_content": "Done! (12.34s)\n"}}]}),
    ]

