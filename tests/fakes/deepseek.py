"""A fake DeepSeek API (shapes from tests/fixtures/deepseek, written from DeepSeek's docs)."""

from __future__ import annotations

import json
from typing import Any

from tests.fakes.fixtures import fixture_bytes, json_fixture
from tests.fakes.server import FakeHost, RecordedRequest, Response, Stream

_THINKING_STREAM = fixture_bytes("deepseek/chat-stream-thinking.sse")


class FakeDeepSeek(FakeHost):
    def __init__(self, *, api_key: str = "sk-test-deepseek", balance: bool = True) -> None:
        super().__init__()
        self.api_key = api_key
        self.balance = balance
        self.model_ids = [m["id"] for m in json_fixture("deepseek/models.json")["data"]]
        # Tool calls scripted by a test, as FakeLlamaSwap.tool_rounds: each streamed request offering
        # `tools` takes the next round; then the answer is text.
        self.tool_rounds: list[list[tuple[str, dict[str, Any]]]] = []

    async def handle(self, request: RecordedRequest) -> Response | Stream:
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return Response.json({"error": {
                "message": "Authentication Fails, Your api key is invalid",
                "type": "authentication_error", "param": None, "code": "invalid_request_error",
            }}, status=401)
        path = request.path.removeprefix("/v1")  # DeepSeek answers with and without /v1
        if request.method == "GET" and path == "/models":
            return Response(200, fixture_bytes("deepseek/models.json"))
        if request.method == "POST" and path == "/chat/completions":
            return self.chat(request)
        if request.method == "POST" and path == "/beta/chat/completions":  # prefix completion (API docs)
            return self.chat(request, beta=True)
        return Response.json({"error": {"message": "Not Found", "type": "invalid_request_error", "param": None, "code": None}}, status=404)

    def chat(self, request: RecordedRequest, *, beta: bool = False) -> Response | Stream:
        if not self.balance:
            return Response(402, fixture_bytes("deepseek/error-402-insufficient-balance.json"))
        try:
            body = request.json()
        except ValueError:
            return Response.json({"error": {"message": "Failed to deserialize the JSON body", "type": "invalid_request_error", "param": None, "code": "invalid_request_error"}}, status=400)
        last = (body.get("messages") or [{}])[-1]
        if isinstance(last, dict) and last.get("prefix") and (not beta or last.get("role") != "assistant"):
            # The docs: prefix completion needs the beta base URL and the last message an assistant's.
            return Response.json({"error": {"message": "prefix completion needs the beta API and a last assistant message",
                                            "type": "invalid_request_error", "param": None, "code": "invalid_request_error"}}, status=400)
        model = body.get("model")
        if model not in self.model_ids:
            return Response.json({"error": {"message": "Model Not Exist", "type": "invalid_request_error", "param": None, "code": "invalid_request_error"}}, status=400)
        if body.get("stream") and body.get("tools") and self.tool_rounds:
            return self.tool_call_stream(model, self.tool_rounds.pop(0))
        if body.get("stream"):
            stream = _THINKING_STREAM.replace(b'"model":"deepseek-v4-flash"', f'"model":"{model}"'.encode())
            # Keep-alive comments arrive as their own writes, as on the real API.
            return Stream([part + b"\n\n" for part in stream.split(b"\n\n") if part.strip()])
        return Response.json({
            "id": "c1", "object": "chat.completion", "created": 1795000000, "model": model,
            "choices": [{"index": 0, "finish_reason": "stop", "message": {
                "role": "assistant", "content": "Hello!", "reasoning_content": "The user greets.",
            }}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 12, "total_tokens": 22,
                      "completion_tokens_details": {"reasoning_tokens": 5}},
        })

    @staticmethod
    def tool_call_stream(model: str, calls: list[tuple[str, dict[str, Any]]]) -> Stream:
        """Thinking, then the calls: each call's id and name first, its arguments after in pieces (the
        API docs' streamed tool calls)."""
        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            data = {"id": "c2", "object": "chat.completion.chunk", "created": 1795000000, "model": model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            return b"data: " + json.dumps(data).encode() + b"\n\n"

        events = [chunk({"role": "assistant", "content": None, "reasoning_content": ""}),
                  chunk({"reasoning_content": "A tool can tell."})]
        for index, (name, arguments) in enumerate(calls):
            events.append(chunk({"tool_calls": [{"index": index, "id": f"call_0{index}_ds", "type": "function",
                                                 "function": {"name": name, "arguments": ""}}]}))
            text = json.dumps(arguments)
            events += [chunk({"tool_calls": [{"index": index, "function": {"arguments": text[at:at + 5]}}]})
                       for at in range(0, len(text), 5)]
        events += [chunk({"content": ""}, "tool_calls"), b"data: [DONE]\n\n"]
        return Stream(events)

    def chat_bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.body) for r in self.requests if r.path.endswith("/chat/completions")]
