"""OpenAI-compatible /v1 routes on the app's one engine: chat completions (whole or streamed) and the model list.

    app.include_router(server.router(engine, api_key="K"))      # beside the UI (demo/views/blocks.py)
    python -m demo.serve --preset qwen2.5-coder-1.5b            # the routes alone (create_app + uvicorn)

The UI and these routes share one Engine, whose lock runs one generation at a time, so a client and the
browser never compete for the CPU. API requests wait their turn in a short FIFO queue; when it is full the
answer is 429. Fields are OpenAI's chat API; the speculative settings use OVMS's names
(num_assistant_tokens, assistant_confidence_threshold) so a client moves to OpenVINO Model Server by changing
the base URL only; `draft` picks a draft, "prompt-lookup" or "none"; vLLM's continue_final_message, echo and
chat_template_kwargs let a client start the reply itself. Every answer carries `usage` and a `speculative`
object (in a stream, on the final chunk). Errors are OpenAI-style JSON, never a stack trace.

A request's way through, one module each:
    routes.py       the /v1 routes, router() and create_app()
    access.py       the login and the API key: checked at start (check_launch) and on every request
    schema.py       the request body (pydantic)
    plan.py         the body checked against the engine and turned into an engine Run
    gate.py         the FIFO queue in front of the engine
    completions.py  the answer: one JSON body or server-sent events
    replies.py      the reply text (stop strings, hold-back while streaming) and the usage/speculative stats
    tool_calls.py   Qwen's tool-call format, forced and parsed
    errors.py       ApiError and OpenAI's error JSON
    cli.py          python -m demo.serve
"""
from demo.server.access import API_KEY_ENV, api_key_problem, check_launch, own_base_url
from demo.server.cli import main
from demo.server.completions import completion, stream
from demo.server.errors import ApiError
from demo.server.gate import MAX_QUEUE, Gate
from demo.server.plan import Plan, plan
from demo.server.replies import Reply, speculative_stats, usage
from demo.server.routes import create_app, model_list, router
from demo.server.schema import ChatRequest
from demo.server.tool_calls import parse_tool_calls

__all__ = ["API_KEY_ENV", "MAX_QUEUE", "ApiError", "ChatRequest", "Gate", "Plan", "Reply", "api_key_problem",
           "check_launch", "completion", "create_app", "main", "model_list", "own_base_url", "parse_tool_calls", "plan",
           "router", "speculative_stats", "stream", "usage"]
