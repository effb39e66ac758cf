"""A llama-server in router mode (started without -m): several models, each loaded on demand or with
`POST /models/load`, listed with `status.value` at `GET /models` and `/v1/models` (docs/wire.md)."""

from __future__ import annotations

import asyncio
import json

from tests.fakes.llama_swap import FakeLlamaSwap
from tests.fakes.server import RecordedRequest, Response


class FakeLlamaServerRouter(FakeLlamaSwap):
    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, swap=False, **kwargs)

    def status(self, model_id: str) -> str:
        model = self.find(model_id)
        return "loading" if model_id in self.starting else "loaded" if model and model.loaded else "unloaded"

    async def handle(self, request: RecordedRequest):  # noqa: ANN201
        path = request.path
        if request.method == "GET" and path in ("/models", "/v1/models"):
            return Response.json({"object": "list", "data": [
                {"id": m.id, "object": "model", "owned_by": "llamacpp", "status": {"value": self.status(m.id)}}
                for m in self.models]})
        if request.method == "POST" and path in ("/models/load", "/models/unload"):
            model = self.find(str(json.loads(request.body or b"{}").get("model")))
            if model is None:
                return Response.json({"error": {"code": 400, "message": "model not found", "type": "invalid_request_error"}}, 400)
            if self.refuse_control:
                return Response.json({"error": {"code": 500, "message": "failed to spawn", "type": "server_error"}}, 500)
            if path == "/models/unload":
                model.loaded = False
            else:
                self.starting.add(model.id)
                await asyncio.sleep(self.load_seconds)
                self.starting.discard(model.id)
                model.loaded = True
            return Response.json({"success": True})
        return await super().handle(request)
