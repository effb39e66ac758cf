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

    def chat_bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.body) for r in self.requests if r.path.endswith("/chat/completions")]
