"""The /v1 routes on one engine: GET /v1/models, GET /v1/models/{id}, POST /v1/chat/completions; `router`
for the app beside the UI, `create_app` for the routes alone."""
from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import JSONResponse, StreamingResponse

from demo.engine import Engine, EngineError
from demo.server.access import api_key_check
from demo.server.completions import completion, stream
from demo.server.errors import ApiError, OpenAIRoute
from demo.server.gate import MAX_QUEUE, Gate
from demo.server.plan import plan
from demo.server.schema import NO_DRAFT, PROMPT_LOOKUP, ChatRequest


def model_list(engine: Engine) -> list[dict]:
    """The target, under the preset's name, and its drafts (vLLM's `parent` and `max_model_len` fields)."""
    p = engine.prepared
    created = int(p.target.stat().st_mtime) if p.target.exists() else 0
    target = {"id": p.preset, "object": "model", "created": created, "owned_by": "specdemo", "root": p.target.name,
              "parent": None, "max_model_len": engine.max_context, "drafts": list(engine.drafts),
              "default_draft": engine.drafts[0] if engine.drafts else NO_DRAFT,
              "draft_values": [*engine.drafts, PROMPT_LOOKUP, NO_DRAFT]}
    drafts = [{"id": name, "object": "model", "created": created, "owned_by": "specdemo", "root": path.name,
               "parent": p.preset, "role": "draft"} for name, path in p.drafts.items()]
    return [target, *drafts]


def router(engine: Engine, api_key: str | None = None, max_queue: int = MAX_QUEUE) -> APIRouter:
    """The /v1 routes on `engine`; with `api_key`, every request must carry it."""
    api = APIRouter(prefix="/v1", route_class=OpenAIRoute, dependencies=[Depends(api_key_check(api_key))])
    gate = Gate(max_queue)

    @api.get("/models")
    def list_models():
        return JSONResponse({"object": "list", "data": model_list(engine)})

    @api.get("/models/{model_id:path}")
    def get_model(model_id: str):
        for m in model_list(engine):
            if m["id"] == model_id:
                return JSONResponse(m)
        raise ApiError(404, f"the model {model_id!r} does not exist here", param="model", code="model_not_found")

    @api.post("/chat/completions")
    def chat_completions(body: ChatRequest):  # sync: FastAPI runs it in a worker thread
        p = plan(engine, body)
        ticket = gate.reserve()
        if body.stream:
            return StreamingResponse(stream(p, gate, ticket), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        try:
            gate.wait(ticket)
            try:
                return JSONResponse(completion(p))
            except EngineError as exc:
                raise ApiError(500, str(exc)) from exc
        finally:
            gate.release(ticket)

    return api


def create_app(engine: Engine, api_key: str | None = None, max_queue: int = MAX_QUEUE) -> FastAPI:
    """A FastAPI app with only the /v1 routes (python -m demo.serve, tests)."""
    app = FastAPI(title="specdemo: OpenAI-compatible speculative decoding", docs_url=None, redoc_url=None)
    app.include_router(router(engine, api_key, max_queue))
    return app
