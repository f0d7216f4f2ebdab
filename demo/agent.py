"""A smolagents CodeAgent on the local engine: web search and python-pptx slide decks.

python -m demo.agent --preset P --task TEXT --out DIR [--no-draft] [--max-steps N] --json
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from smolagents import CodeAgent, DuckDuckGoSearchTool, PythonInterpreterTool, Tool, ToolCallingAgent
from smolagents.models import ChatMessage, ChatMessageStreamDelta, MessageRole, Model, TokenUsage, get_clean_message_list

from demo.agent_prompts import CODE_INSTRUCTIONS, TOOL_INSTRUCTIONS, prompt_templates
from demo.engine import Engine, EngineError, Request

AUTHORIZED_IMPORTS = ["pptx", "pptx.*"]
MAX_STEPS = 6
AGENT_KINDS = ("code", "tool")  # smolagents CodeAgent or ToolCallingAgent with a python_interpreter tool
DEFAULT_KIND = "code"
EXAMPLE_TASKS = [
    "Summarize the key features of the Qwen3 model series and present them in a slide deck",
    "Make a three-slide deck introducing speculative decoding: the idea, how verification works, and when it pays off",
    "Create a short slide deck with tips for giving a talk at a technical conference",
]
def cut_at_stop(text: str, stops: list[str] | None) -> str:
    """Cut the text before the earliest occurrence of any stop sequence."""
    cut = len(text)
    for stop in stops or []:
        i = text.find(stop)
        if stop and i != -1:
            cut = min(cut, i)
    return text[:cut]


def is_looping(text: str, repeats: int = 8) -> bool:
    """A small model under greedy decoding can repeat the same lines until max_new_tokens; a line of
    some length seen `repeats` times is that loop (an unrolled deck repeats its lines once per slide)."""
    counts: dict[str, int] = {}
    for line in text.splitlines():
        line = line.strip()
        if len(line) > 10:
            counts[line] = counts.get(line, 0) + 1
            if counts[line] >= repeats:
                return True
    return False


def code_reply_prefix(stops: list[str] | None) -> str:
    """A CodeAgent step (it stops at "</code>") starts the reply inside a code block. Everything a
    CodeAgent does, searching included, is code; a small model otherwise often answers with the deck as
    prose, or with code it forgot to open with "<code>", and smolagents rejects both (docs/performance.md)."""
    return "<code>\n" if "</code>" in (stops or []) else ""


def _as_parts(message):
    """smolagents cleans messages whose content is a list of parts; accept plain strings too."""
    content = message.content if isinstance(message, ChatMessage) else message.get("content")
    if not isinstance(content, str):
        return message
    role = message.role if isinstance(message, ChatMessage) else message["role"]
    return ChatMessage(role=MessageRole(role), content=[{"type": "text", "text": content}])


class EngineModel(Model):
    """smolagents Model backed by the engine in this process; draft on or off per instance."""

    def __init__(self, engine: Engine, use_draft: bool = True, max_new_tokens: int = 768, **kwargs):
        super().__init__(flatten_messages_as_text=True, model_id=f"local:{engine.prepared.preset}", **kwargs)
        self.engine, self.use_draft, self.max_new_tokens = engine, use_draft, max_new_tokens
        self.generated_tokens = 0
        self.generation_seconds = 0.0
        self.cancel_event = threading.Event()

    @property
    def supports_stop_parameter(self) -> bool:
        return True

    def _request(self, messages, stop_sequences) -> Request:
        messages = [_as_parts(m) for m in messages]
        clean = get_clean_message_list(messages, role_conversions={MessageRole.TOOL_RESPONSE: MessageRole.USER,
                                                                   MessageRole.TOOL_CALL: MessageRole.ASSISTANT},
                                       flatten_messages_as_text=True)
        chat = [{"role": str(getattr(m["role"], "value", m["role"])), "content": m["content"]} for m in clean]
        lane = "speculative" if self.use_draft and self.engine.drafts else "baseline"
        return Request(prompt="", messages=chat, lane=lane, max_new_tokens=self.max_new_tokens,
                       stop=list(stop_sequences or []), enable_thinking=False,
                       reply_prefix=code_reply_prefix(stop_sequences))

    def generate_stream(self, messages, stop_sequences=None, response_format=None, tools_to_call_from=None,
                        **kwargs) -> Iterator[ChatMessageStreamDelta]:
        run = self.engine.start(self._request(messages, stop_sequences))
        text, first = "", True
        if run.request.reply_prefix:
            yield ChatMessageStreamDelta(content=run.request.reply_prefix)
        for event in run:
            # never stream past a stop sequence, even when it arrives split over two steps
            new = cut_at_stop(text + event.text, stop_sequences)[len(text):]
            text += new
            if self.cancel_event.is_set() or ("\n" in new and is_looping(text)):
                run.cancel()
            usage = TokenUsage(input_tokens=run.prompt_tokens if first else 0,
                               output_tokens=len(event.tokens))
            first = False
            if new:
                yield ChatMessageStreamDelta(content=new, token_usage=usage)
        self._account(run.result)

    def generate(self, messages, stop_sequences=None, response_format=None, tools_to_call_from=None,
                 **kwargs) -> ChatMessage:
        run = self.engine.start(self._request(messages, stop_sequences))
        text = ""
        for event in run:
            text += event.text
            if self.cancel_event.is_set() or ("\n" in event.text and is_looping(text)):
                run.cancel()  # a loop ends the step early; the agent sees the cut reply and tries again
        res = run.result
        self._account(res)
        text = run.request.reply_prefix + cut_at_stop(res.text, stop_sequences)
        return ChatMessage(role=MessageRole.ASSISTANT, content=text,
                           token_usage=TokenUsage(input_tokens=res.prompt_tokens, output_tokens=len(res.tokens)),
                           raw={"lane": res.lane, "tokens_per_second": res.tokens_per_second})

    def _account(self, res) -> None:
        self.generated_tokens += len(res.tokens)
        self.generation_seconds += res.seconds


class SearchTool(Tool):
    """DuckDuckGo search that turns a network failure into a short observation instead of an error."""

    name = "web_search"
    description = "Searches the web (DuckDuckGo) and returns the top results with titles, links and snippets."
    inputs = {"query": {"type": "string", "description": "The search query."}}
    output_type = "string"

    def __init__(self, max_results: int = 5):
        super().__init__()
        self.max_results = max_results
        self._inner = None

    def forward(self, query: str) -> str:
        try:
            if self._inner is None:
                self._inner = DuckDuckGoSearchTool(max_results=self.max_results)
            return self._inner.forward(query)
        except Exception as exc:  # no network, rate limit, DNS
            return f"search unavailable (offline): {type(exc).__name__}. Continue from your own knowledge."


# ---------------------------------------------------------------- the run folder guard

# The folder of the agent run in progress; a module global rather than a thread-local because smolagents
# may execute code on a worker thread. Runs are serialised by the app's queue and by _run_lock.
_run_dir: Path | None = None
_run_lock = threading.Lock()


def _guarded_save(original):
    def save(self, file):
        folder = _run_dir
        if folder is None or not isinstance(file, (str, Path)):
            return original(self, file)
        target = (folder / Path(file)).resolve() if not Path(file).is_absolute() else Path(file).resolve()
        if folder.resolve() not in target.parents:
            raise PermissionError(f"writing outside the run folder is not allowed: {file}")
        return original(self, str(target))
    save.specdemo_guard = True
    return save


def _install_save_guard() -> None:
    from pptx.presentation import Presentation

    if not getattr(Presentation.save, "specdemo_guard", False):
        Presentation.save = _guarded_save(Presentation.save)


@contextlib.contextmanager
def run_folder(path: Path):
    """python-pptx saves from agent code land in `path`; paths outside it are refused."""
    global _run_dir
    _install_save_guard()
    path.mkdir(parents=True, exist_ok=True)
    with _run_lock:
        _run_dir = path
        try:
            yield path
        finally:
            _run_dir = None


# ---------------------------------------------------------------- running the agent

PLACEHOLDER_TITLES = ("slide title", "title 1", "title here", "coffee")


def deck_check(out_dir: Path):
    """A smolagents final-answer check: a deck exists in the run folder and its slides have real titles.
    A failed check goes back to the model as an error, so it can fix the deck instead of stopping."""
    def deck_saved_with_real_titles(final_answer, memory, agent=None) -> bool:
        from demo.slides import slide_texts

        decks = sorted(out_dir.rglob("*.pptx"))
        if not decks:
            raise ValueError("no .pptx was saved in the run folder: build the deck, call prs.save('deck.pptx'), "
                             "then final_answer")
        titles = [t for deck in decks for t, _ in slide_texts(deck)]
        if not titles or any(not t.strip() for t in titles):
            raise ValueError("every slide needs a title: set slide.shapes.title.text")
        copied = [t for t in titles if any(p in t.lower() for p in PLACEHOLDER_TITLES)]
        if copied:
            raise ValueError(f"the slide titles {copied} come from the example: write real titles and points "
                             f"about the task's topic and save again")
        return True
    return deck_saved_with_real_titles


def build_agent(model: Model, max_steps: int = MAX_STEPS, search: bool = True, out_dir: Path | None = None,
                kind: str = DEFAULT_KIND, short_prompt: bool = True):
    from rich.console import Console

    if kind not in AGENT_KINDS:
        raise EngineError(f"unknown agent kind {kind!r}; use one of {', '.join(AGENT_KINDS)}")
    tools = [SearchTool()] if search else []
    # not streamed: the trace shows whole steps, and a reply in a loop is cut (EngineModel.generate)
    common = dict(model=model, max_steps=max_steps, stream_outputs=False, verbosity_level=0,
                  prompt_templates=prompt_templates(kind) if short_prompt else None,
                  final_answer_checks=[deck_check(out_dir)] if out_dir is not None else [])
    if kind == "code":
        agent = CodeAgent(tools=tools, additional_authorized_imports=AUTHORIZED_IMPORTS,
                          instructions=CODE_INSTRUCTIONS, **common)
    else:
        tools.append(PythonInterpreterTool(authorized_imports=AUTHORIZED_IMPORTS))
        agent = ToolCallingAgent(tools=tools, instructions=TOOL_INSTRUCTIONS, **common)
    agent.logger.console = Console(file=sys.stderr)  # stdout is the CLI's JSON line
    return agent


@dataclass
class TraceItem:
    kind: str  # "thought", "code", "observation", "error", "final", "stream"
    text: str
    step: int


@dataclass
class AgentResult:
    final_answer: str | None
    files: list[str]
    steps: int
    seconds: float
    speculative: bool
    tokens: int
    tokens_per_second: float | None
    reached_max_steps: bool
    trace: list[TraceItem] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"final_answer": self.final_answer, "files": self.files, "steps": self.steps,
                "seconds": round(self.seconds, 2), "speculative": self.speculative, "tokens": self.tokens}


def trace_items(step) -> list[TraceItem]:
    """The parts of a smolagents step worth showing: thoughts, code, observations, errors."""
    from smolagents.memory import ActionStep

    if not isinstance(step, ActionStep):
        return []
    n = step.step_number
    items = []
    out = step.model_output if isinstance(step.model_output, str) else ""
    thought = out.split("```")[0].split("<code>")[0].strip()
    if thought:
        items.append(TraceItem("thought", thought, n))
    if step.code_action:
        items.append(TraceItem("code", step.code_action, n))
    else:  # a ToolCallingAgent step: show python_interpreter's code as code, other calls as they are
        for call in step.tool_calls or []:
            args = call.arguments if isinstance(call.arguments, dict) else {}
            if call.name == "python_interpreter" and isinstance(args.get("code"), str):
                items.append(TraceItem("code", args["code"], n))
            elif call.name != "final_answer":
                items.append(TraceItem("thought", f"calls {call.name}({json.dumps(call.arguments)[:300]})", n))
    if step.observations:
        items.append(TraceItem("observation", step.observations, n))
    if step.error is not None:
        items.append(TraceItem("error", str(step.error), n))
    return items


def _steps(agent, model: Model, task: str, max_steps: int, stop: threading.Event | None,
           trace: list[TraceItem], state: dict) -> Iterator[TraceItem]:
    from smolagents.memory import ActionStep, FinalAnswerStep

    for step in agent.run(task, stream=True, max_steps=max_steps):
        if stop is not None and stop.is_set():
            if isinstance(model, EngineModel):
                model.cancel_event.set()
            agent.interrupt()
        if isinstance(step, ActionStep):
            state["steps"], state["answered"] = step.step_number, step.is_final_answer
            for item in trace_items(step):
                trace.append(item)
                yield item
        elif isinstance(step, FinalAnswerStep):
            state["final"] = None if step.output is None else str(step.output)


def run_agent(engine: Engine, task: str, out_dir: Path, use_draft: bool = True, max_steps: int = MAX_STEPS,
              search: bool = True, model: Model | None = None, stop: threading.Event | None = None,
              kind: str = DEFAULT_KIND, short_prompt: bool = True) -> Iterator[TraceItem | AgentResult]:
    """Run the agent, yielding trace items as they happen and an AgentResult last."""
    if not task or not task.strip():
        raise EngineError("the task is empty: describe the deck you want")
    model = model or EngineModel(engine, use_draft=use_draft)
    agent = build_agent(model, max_steps=max_steps, search=search, out_dir=out_dir, kind=kind,
                        short_prompt=short_prompt)
    t0, trace = time.monotonic(), []
    state = {"steps": 0, "answered": False, "final": None}
    with run_folder(out_dir):
        try:
            yield from _steps(agent, model, task, max_steps, stop, trace, state)
        except Exception as exc:  # a generation failure (e.g. the context is full) ends the run, not the app
            trace.append(TraceItem("error", f"the agent stopped: {exc}", state["steps"]))
            yield trace[-1]
    final, steps = state["final"], state["steps"]
    reached_max = not state["answered"] and steps >= max_steps
    files = sorted(str(p) for p in out_dir.rglob("*.pptx"))
    if reached_max:
        trace.append(TraceItem("error", f"reached the limit of {max_steps} steps; showing what was produced", steps))
        yield trace[-1]
    seconds = time.monotonic() - t0
    tokens = getattr(model, "generated_tokens", 0)
    gen_s = getattr(model, "generation_seconds", 0.0)
    yield AgentResult(final, files, steps, seconds, bool(use_draft and engine.drafts), tokens,
                      tokens / gen_s if gen_s else None, bool(reached_max), trace)


def main(argv: list[str] | None = None) -> int:
    from demo import prepare

    parser = argparse.ArgumentParser(prog="python -m demo.agent", description=__doc__.splitlines()[0])
    prepare.add_arguments(parser)
    parser.add_argument("--task", required=True)
    parser.add_argument("--out", required=True, type=Path, help="run folder; the deck is written here")
    parser.add_argument("--no-draft", action="store_true", help="run the target alone")
    parser.add_argument("--max-steps", type=int, default=MAX_STEPS)
    parser.add_argument("--no-search", action="store_true", help="do not offer the web search tool")
    parser.add_argument("--agent", choices=AGENT_KINDS, default=DEFAULT_KIND,
                        help="smolagents CodeAgent (code) or ToolCallingAgent with a python_interpreter tool (tool)")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args(argv)
    try:
        engine = Engine(prepare.prepare_from_args(args))
        result = None
        for item in run_agent(engine, args.task, args.out, use_draft=not args.no_draft, max_steps=args.max_steps,
                              search=not args.no_search, kind=args.agent):
            if isinstance(item, TraceItem):
                print(f"[step {item.step}] {item.kind}: {item.text[:2000]}", file=sys.stderr, flush=True)
            else:
                result = item
    except (prepare.PrepareError, EngineError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result.to_json()))
    else:
        print(f"final answer: {result.final_answer}\nfiles: {', '.join(result.files) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
