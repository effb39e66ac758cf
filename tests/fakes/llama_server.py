"""Fakes of llama.cpp's llama-server as the recordings show it (tests/fixtures/llama-server/ and
tests/fixtures/llama-server-router/session.http): a plain one (started with -m: one model, always loaded,
whatever model a request names) and one in router mode (started without -m): several models, each
listed with `status` at `GET /models` and `/v1/models`, loaded and unloaded in the background after
`POST /models/load` / `POST /models/unload` answered `{"success":true}`."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.fixtures import http_fixture, json_fixture, recorded_answer
from tests.fakes.llama_swap import AGENT_PATHS, FakeLlamaSwap, FakeModel
from tests.fakes.server import RecordedRequest, Response

ROUTER_SESSION = "llama-server-router/session.http"
INFERENCE = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings")


def _query(request: RecordedRequest, name: str) -> str:
    return parse_qs(urlsplit(request.target).query).get(name, [""])[0]


def _not_found() -> Response:
    """llama-server's 404 (fixture 25-a-404)."""
    return Response(404, http_fixture("llama-server/25-a-404.http")[2])


def _error(status: int, message: str, kind: str = "invalid_request_error") -> Response:
    return Response.json({"error": {"code": status, "message": message, "type": kind}}, status)


class FakeLlamaServer(FakeLlamaSwap):
    """A plain llama-server serving `model`. Whatever `model` a request names, the loaded one answers
    (fixture 15-a-chat-unknown-model), and `/props` ignores `?model=`."""

    def __init__(self, model: FakeModel | None = None, **kwargs: Any) -> None:
        served = model or FakeModel("qwen3-8b")
        served.loaded = True
        super().__init__([served], swap=False, **kwargs)

    @property
    def model(self) -> FakeModel:
        return self.models[0]

    def listing(self) -> dict[str, Any]:
        """`/v1/models` (and `/models`) as fixture 03-a-v1-models, for this host's model."""
        listing = json_fixture("llama-server/03-a-v1-models.http")
        listing["models"][0].update(name=self.model.id, model=self.model.id)
        entry = listing["data"][0]
        entry.update(id=self.model.id, aliases=[self.model.id, *self.model.aliases])
        entry["meta"]["n_ctx"] = self.model.n_ctx
        return listing

    async def handle(self, request: RecordedRequest):  # noqa: ANN201
        path = request.path
        if self.fault and (self.fault_paths is None or path in self.fault_paths):
            return self.faulty(request)
        if request.method == "GET" and path == "/health":
            return Response(200, http_fixture("llama-server/01-a-health.http")[2])
        if request.method == "GET" and path in ("/models", "/v1/models"):
            return Response.json(self.listing())
        if request.method == "GET" and path == "/props":
            return self.props(self.model.id)
        if request.method == "POST" and path == "/tokenize":
            return self.tokenize(request)
        if request.method == "POST" and (path in INFERENCE or (self.agent_apis and path in AGENT_PATHS)):
            try:
                body = request.json()
            except ValueError:
                body = None
            if isinstance(body, dict) and "model" in body:  # the model asked for plays no part
                request = replace(request, body=json.dumps({**body, "model": self.model.id}).encode())
            return await super().handle(request)
        return _not_found()


class FakeLlamaServerRouter(FakeLlamaSwap):
    """`broken`: models whose load fails (exit code 1); `sleeping`: models asleep after
    --sleep-idle-seconds; `unload_seconds`: how long a model takes to stop after the answer."""

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, swap=False, **kwargs)
        self.broken: set[str] = set()
        self.sleeping: set[str] = set()
        self.failed: dict[str, int] = {}  # exit codes of the loads that failed
        self.unload_seconds = 0.0
        self._background: set[asyncio.Task[None]] = set()

    def status(self, model_id: str) -> dict[str, Any]:
        model = self.find(model_id)
        if model_id in self.starting:
            return {"value": "loading"}
        if model and model.loaded:
            return {"value": "sleeping" if model_id in self.sleeping else "loaded"}
        if model_id in self.failed:
            return {"value": "unloaded", "exit_code": self.failed[model_id], "failed": True}
        return {"value": "unloaded"}

    def listed(self, model: FakeModel) -> dict[str, Any]:
        """An entry of `/models` and `/v1/models` as the recorded router writes it: `meta` (with the
        model's n_ctx) only while the model is loaded."""
        entry: dict[str, Any] = {
            "id": model.id, "aliases": list(model.aliases), "tags": [], "object": "model", "owned_by": "llamacpp",
            "created": 1796675973, "status": self.status(model.id),
            "architecture": {"input_modalities": ["text"], "output_modalities": ["text"]},
            "source": "models_dir", "can_remove": False}
        if entry["status"]["value"] == "loaded":
            # The recorded router's `meta` has the same fields as a plain server's (fixture 03).
            entry["meta"] = {**json_fixture("llama-server/03-a-v1-models.http")["data"][0]["meta"], "n_ctx": model.n_ctx}
        return entry

    def listing(self) -> dict[str, Any]:
        return {"data": [self.listed(m) for m in self.models], "object": "list"}

    def router_props(self, request: RecordedRequest) -> Response:
        """`/props`: the router's own placeholder without `?model=`, the model's props with it (the
        router loads it first, as for any request naming a model)."""
        model_id = _query(request, "model")
        if not model_id:
            return Response.json(recorded_answer(ROUTER_SESSION, "GET /props"))
        if self.find(model_id) is None:
            return _not_found()  # as the recorded router answers a load of an unknown model
        return self.props(model_id)

    def later(self, seconds: float, change: Any) -> None:  # noqa: ANN401
        async def run() -> None:
            await asyncio.sleep(seconds)
            change()

        task = asyncio.ensure_future(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def handle(self, request: RecordedRequest):  # noqa: ANN201
        path = request.path
        if request.method == "GET" and path == "/props":
            return self.router_props(request)
        if request.method == "GET" and path in ("/models", "/v1/models"):
            return Response.json(self.listing())
        if request.method == "POST" and path in ("/models/load", "/models/unload"):
            try:
                model = self.find(str(json.loads(request.body or b"{}").get("model")))
            except ValueError:
                return _error(400, "invalid JSON")
            if model is None:
                return _not_found()
            if self.refuse_control:
                return _error(500, "failed to spawn", "server_error")
            running = model.loaded or model.id in self.starting
            if path == "/models/unload":
                if not running:
                    return _error(400, "model is not running")

                def stopped() -> None:
                    model.loaded = False
                    self.sleeping.discard(model.id)

                self.later(self.unload_seconds, stopped)
                return Response.json({"success": True})
            if running:
                return _error(400, "model is already running")
            self.failed.pop(model.id, None)
            self.starting.add(model.id)

            def started() -> None:
                self.starting.discard(model.id)
                if model.id in self.broken:
                    self.failed[model.id] = 1
                else:
                    model.loaded = True

            self.later(self.load_seconds, started)
            return Response.json({"success": True})
        return await super().handle(request)
