"""Running the agent: build a smolagents CodeAgent (or ToolCallingAgent) on a model, run it in a run folder,
and yield its trace and result."""
from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from smolagents import CodeAgent, PythonInterpreterTool, ToolCallingAgent
from smolagents.models import Model

from demo.agent.model import EngineModel
from demo.agent.prompts import CODE_INSTRUCTIONS, TOOL_INSTRUCTIONS, prompt_templates
from demo.agent.tools import SearchTool
from demo.engine import Engine, EngineError

AUTHORIZED_IMPORTS = ["pptx", "pptx.*"]
MAX_STEPS = 6
AGENT_KINDS = ("code", "tool")  # smolagents CodeAgent or ToolCallingAgent with a python_interpreter tool
DEFAULT_KIND = "code"
EXAMPLE_TASKS = [
    "Summarize the key features of the Qwen3 model series and present them in a slide deck",
    "Make a three-slide deck introducing speculative decoding: the idea, how verification works, and when it pays off",
    "Create a short slide deck with tips for giving a talk at a technical conference",
]
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
        from demo.agent.slides import slide_texts

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


