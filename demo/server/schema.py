"""The chat request body: OpenAI's fields, OVMS's speculative ones, vLLM's for continuing a reply. Pydantic
checks types and ranges (a failure answers 400, see errors.py); plan.py checks what needs the engine."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_ASSISTANT_TOKENS = 32  # a longer draft only costs: acceptance decays with position (docs/performance.md)
NO_DRAFT, PROMPT_LOOKUP = "none", "prompt-lookup"  # the `draft` field's values besides a draft's name


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")  # unknown OpenAI fields (user, metadata, ...) are ignored


class FunctionDef(_Body):
    name: str = Field(min_length=1)
    description: str | None = None
    parameters: dict | None = None


class ToolDef(_Body):
    type: Literal["function"]
    function: FunctionDef


class CalledFunction(_Body):
    name: str
    arguments: str | dict = ""


class ToolCall(_Body):
    id: str | None = None
    type: Literal["function"] = "function"
    function: CalledFunction


class Message(_Body):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict] | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None


class NamedToolChoice(_Body):
    type: Literal["function"]
    function: dict


class StreamOptions(_Body):
    include_usage: bool = False


class ChatRequest(_Body):
    model: str
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)  # 0 or absent: greedy
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int | None = Field(None, ge=1, le=1)
    logprobs: bool | None = None
    response_format: dict | None = None
    tools: list[ToolDef] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    # OVMS's names, so a client moves between the two servers unchanged
    num_assistant_tokens: int | None = Field(None, le=MAX_ASSISTANT_TOKENS)
    assistant_confidence_threshold: float | None = None
    # this server's: a draft name, "prompt-lookup" or "none"; absent: the preset's default draft
    draft: str | None = None
    # vLLM's names: the last (assistant) message is continued instead of answered; echo returns it too
    continue_final_message: bool = False
    add_generation_prompt: bool = True
    echo: bool = False
    chat_template_kwargs: dict | None = None
