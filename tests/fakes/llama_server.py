"""llama-server as the recordings show it (tests/fixtures/llama-server-router/session.http and
tests/fixtures/llama-server/): in router mode (started without -m) several models, each listed with
`status` at `GET /models` and `/v1/models`, loaded and unloaded in the background after `POST
/models/load` / `POST /models/unload` answered `{"success":true}`; and a single-model server, which
lists its one model without a status and has no load or unload."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tests.fakes.fixtures import http_fixture
from tests.fakes.llama_swap import FakeLlamaSwap
from tests.fakes.server import RecordedRequest, Response


def _error(status: int, message: str, kind: str = "invalid_request_error") -> Response:
    return Response.json({"error": {"code": status, "message": message, "type": kind}}, status)


NOT_FOUND = Response.json({"error": {"message": "File Not Found", "type": "not_found_error", "code": 404}}, 404)


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

    def listing(self) -> dict[str, Any]:
        return {"data": [
            {"id": m.id, "aliases": [], "tags": [], "object": "model", "owned_by": "llamacpp", "created": 1796675973,
             "status": self.status(m.id), "architecture": {"input_modalities": ["text"], "output_modalities": ["text"]},
             "source": "models_dir", "can_remove": False}
            for m in self.models], "object": "list"}

    def later(self, seconds: float, change: Any) -> None:  # noqa: ANN401
        async def run() -> None:
            await asyncio.sleep(seconds)
            change()

        task = asyncio.ensure_future(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def handle(self, request: RecordedRequest):  # noqa: ANN201
        path = request.path
        if request.method == "GET" and path in ("/models", "/v1/models"):
            return Response.json(self.listing())
        if request.method == "POST" and path in ("/models/load", "/models/unload"):
            try:
                model = self.find(str(json.loads(request.body or b"{}").get("model")))
            except ValueError:
                return _error(400, "invalid JSON")
            if model is None:
                return NOT_FOUND
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


class FakeLlamaServer(FakeLlamaSwap):
    """A single-model llama-server (started with -m): `/models` as captured, no load or unload."""

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, swap=False, **kwargs)
        for model in self.models:
            model.loaded = True

    async def handle(self, request: RecordedRequest):  # noqa: ANN201
        path = request.path
        if request.method == "GET" and path in ("/models", "/v1/models"):
            listing = json.loads(http_fixture("llama-server/04-a-models.http")[2])
            entry = listing["data"][0]
            listing["data"] = [{**entry, "id": m.id, "aliases": [m.id]} for m in self.models]
            return Response.json(listing)
        if path.startswith("/models/"):
            status, _, body = http_fixture("llama-server/25-a-404.http")
            return Response(status, body)
        return await super().handle(request)
