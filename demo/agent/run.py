"""Running the agent: build a smolagents CodeAgent (or ToolCallingAgent) on a model, run it in a run folder,
and yield its trace and result."""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Iterator

from smolagents import CodeAgent, ToolCallingAgent
from smolagents.models import Model

from demo.agent import deck_shape, runfolder, sandbox, timing
from demo.agent.deck_shape import DeckShape
from demo.agent.model import BudgetSpent, EngineModel, make_model
from demo.agent.prompts import instructions, prompt_templates
from demo.agent.tools import SearchTool
from demo.engine import Engine, EngineError

AUTHORIZED_IMPORTS = ["pptx", "pptx.*"]
MAX_STEPS = 6
# Wall-clock seconds one agent run may take on this 2-core machine before it stops and reports a failure (a looping
# run with the draft once took over 12 minutes); a passing deck task takes 10-30 s here (docs/performance.md).
BUDGET_SECONDS = 120.0


@dataclass(frozen=True)
class Speedups:
    """The agent's speed levers, each measured on the dev half (docs/performance.md, section 19); each can be
    turned off (agent_bench --without NAME) to measure it again."""

    # one system prompt for every deck task, the asked shape going with the task instead: the prefix cache then
    # holds the whole system prompt for every task, and start-up reads it into both lanes (prewarm)
    fixed_prompt: bool = True
    # smolagents repeats each step's code in the next prompt as a "Calling tools:" message; a CodeAgent's reply
    # already holds the code, so the copy only adds prompt tokens to read
    slim_history: bool = True


LEVERS = tuple(f.name for f in fields(Speedups))


def speedups_without(names: str) -> Speedups:
    """Speedups with the comma-listed levers (or "all") turned off."""
    off = [n.strip() for n in names.split(",") if n.strip()]
    off = list(LEVERS) if off == ["all"] else off
    unknown = [n for n in off if n not in LEVERS]
    if unknown:
        raise EngineError(f"unknown lever {', '.join(unknown)}; use all or some of {', '.join(LEVERS)}")
    return replace(Speedups(), **{n: False for n in off})
AGENT_KINDS = ("code", "tool")  # smolagents CodeAgent or ToolCallingAgent with a python_interpreter tool
DEFAULT_KIND = "code"
SHAPE_FROM = ("parser", "model")  # how the request's deck shape is read (demo/agent/deck_shape.py)
SEARCH_CHARS = 3000  # of the results of a search the request asked for, handed to the model with the task
# The shape (slides, bullets per slide) is read from the request and checked before the final answer.
EXAMPLE_TASKS = [
    "Summarize the key features of the Qwen3 model series in a four-slide deck with three bullets per slide",
    "Make a three-slide deck introducing speculative decoding: the idea, how verification works, and when it pays "
    "off, two bullets per slide",
    "Search the web for tips on giving a talk at a technical conference, then make a 3-slide deck with 2 bullets each",
    "Run this code and report what it prints: print(sum(i * i for i in range(10)))",
]
# ---------------------------------------------------------------- running the agent

def decks(out_dir: Path) -> list[Path]:
    """The decks of a run: the server's own copies of what its code saved (never the run's work folder itself,
    which the code controls: demo/agent/runfolder.py), newest first."""
    return runfolder.decks(out_dir)


def deck_check(out_dir: Path, shape: DeckShape | None = None):
    """A smolagents final-answer check: the newest deck in the run folder has the shape the request asked for
    (any deck with titled, distinct, non-empty slides when `shape` is None). A failed check goes back to the
    model as the step's error, so it fixes the deck within the step limit instead of stopping. The server
    copies the deck out and reads the copy in the jail (demo/agent/slides.py)."""
    shape = shape or DeckShape()

    def deck_matches_the_request(final_answer, memory, agent=None) -> bool:
        from demo.agent.slides import DeckError, slide_texts

        folder = runfolder.RunFolder(out_dir)
        saved = folder.newest_deck()
        if saved is None:
            raise ValueError("no .pptx was saved in the run folder: build the deck, call prs.save('deck.pptx'), "
                             "then final_answer")
        try:
            texts = slide_texts(saved, uid=folder.tool_uid)
        except DeckError as exc:
            raise ValueError(f"{exc}: build the deck again with python-pptx, save it with prs.save('deck.pptx'), "
                             "then final_answer") from exc
        found = deck_shape.problems(shape, texts)
        if found:
            raise ValueError(deck_shape.describe(found))
        return True
    return deck_matches_the_request


def build_agent(model: Model, max_steps: int = MAX_STEPS, search: bool = True, out_dir: Path | None = None,
                kind: str = DEFAULT_KIND, short_prompt: bool = True, shape: DeckShape | None = None,
                stop: threading.Event | None = None, public: bool = False, ledger: timing.Ledger | None = None,
                repairs: dict | None = None, speedups: Speedups = Speedups()):
    """A smolagents agent for a task of this shape (None: a deck of any shape); decks are checked in out_dir.
    Its code runs in a confined process with out_dir as the only writable place (demo/agent/sandbox.py);
    `agent.sandbox.cleanup()` ends that process."""
    from rich.console import Console

    if kind not in AGENT_KINDS:
        raise EngineError(f"unknown agent kind {kind!r}; use one of {', '.join(AGENT_KINDS)}")
    ledger = ledger or timing.Ledger()
    tools = [SearchTool(ledger=ledger)] if search else []
    is_deck = shape is None or shape.deck
    checks = []
    if out_dir is not None and is_deck:
        check = repair_guard(deck_check(out_dir, shape), out_dir, shape or DeckShape(),
                             repairs if repairs is not None else {})
        checks = [ledger.wrap("shape_s", check)]
    # not streamed: the trace shows whole steps, and a reply in a loop is cut (EngineModel.generate)
    common = dict(model=model, max_steps=max_steps, stream_outputs=False, verbosity_level=0,
                  prompt_templates=prompt_templates(kind) if short_prompt else None,
                  final_answer_checks=checks)
    executor = sandbox.SandboxExecutor(out_dir, AUTHORIZED_IMPORTS, stop=stop, public=public)
    time_executor(executor, ledger)
    if kind == "code":
        agent = CodeAgent(tools=tools, additional_authorized_imports=AUTHORIZED_IMPORTS, executor=executor,
                          instructions=instructions(kind, prompt_shape(shape, speedups)), **common)
    else:  # the python_interpreter tool runs each call in the same sandbox, with empty variables
        tools.append(sandbox.SandboxedPythonInterpreterTool(executor, AUTHORIZED_IMPORTS))
        agent = ToolCallingAgent(tools=tools, instructions=instructions(kind, prompt_shape(shape, speedups)),
                                 **common)
    agent.sandbox = executor
    agent.logger.console = Console(file=sys.stderr)  # stdout is the CLI's JSON line
    ledger.step_of = lambda: agent.step_number
    return agent


def prompt_shape(shape: DeckShape | None, speedups: Speedups) -> DeckShape | None:
    """The shape the system prompt is written for: with fixed_prompt any deck (None) whatever the task asks, so
    every deck task shares one system prompt; the asked shape then goes with the task (task_text)."""
    if speedups.fixed_prompt and (shape is None or shape.deck):
        return None
    return shape


def task_text(task: str, shape: DeckShape, speedups: Speedups = Speedups()) -> str:
    """The task as the model gets it: the request, and for a deck the asked shape beside it (a small model
    follows it there more often than in the system prompt), with the start of its slides list when the system
    prompt's example has another shape (fixed_prompt): the model copies the count written beside the list."""
    if not shape.deck:
        return task
    text = f"{task.strip()}\n\n{shape.requirements()}"
    if speedups.fixed_prompt and shape.slides:
        k = shape.bullets or 2
        # the import too: told only the list's start, the model began with the list and left the import out
        text += (f" Begin your code with these two lines:\nfrom pptx import Presentation\nslides = [  # {shape.slides} "
                 f"slide{'s' if shape.slides != 1 else ''}, {k} bullet{'s' if k != 1 else ''} each")
    return text


def prewarm(engine: Engine, lanes: tuple[str, ...] = ("baseline", "speculative"), search: bool = True,
            log=None) -> None:
    """Read the deck agent's fixed prompt (system prompt, tools, example: Speedups.fixed_prompt) into each lane's
    prefix cache at start-up, so that no visitor's first step pays for it."""
    tmp = Path(tempfile.mkdtemp(prefix="specdemo-prewarm-"))
    try:
        for lane in lanes:
            if lane == "speculative" and not engine.drafts:
                continue
            model = EngineModel(engine, use_draft=lane == "speculative", max_new_tokens=1)
            agent = build_agent(model, out_dir=tmp, shape=DeckShape(), search=search)
            agent.sandbox.cleanup()
            req = model._request([{"role": "system", "content": agent.system_prompt},
                                  {"role": "user", "content": "New task:\n"}], ["</code>"])
            req.max_new_tokens, req.reply_prefix = 1, ""
            t = time.monotonic()
            res = engine.generate(req)
            if log:
                log(f"agent prompt read into the {lane} lane's prefix cache: {res.prompt_tokens} tokens, "
                    f"{time.monotonic() - t:.1f} s")
    except EngineError as exc:
        if log:
            log(f"agent prompt not prewarmed: {exc}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def time_executor(executor, ledger: timing.Ledger) -> None:
    """Time the confined process where the agent calls it: every code block under code_s, and of that the
    starts of the process (code_start_s)."""
    run = executor.run
    executor.run = ledger.wrap("code_s", run)
    start = getattr(executor, "_ensure_child", None)
    if start is not None:
        def timed_start(*args, **kwargs):
            t = time.monotonic()
            try:
                return start(*args, **kwargs)
            finally:
                ledger.code_start_s += time.monotonic() - t
        executor._ensure_child = timed_start


REPAIR_TRIES = 3  # the same shape-check failure: sent back, then sent back with the deck's outline, then accepted


def repair_guard(check, out_dir: Path, shape: DeckShape, repairs: dict):
    """The deck check, with repairs that do not converge cut short. The first time a failure comes back it goes to
    the model as it is; the second time the same failure comes back, the model also gets the deck's current
    outline and is asked for the corrected slides list only (a small model fixes a list it sees far more often
    than one it must recall); the third time the run ends with the closest deck, and `repairs["closest"]` says
    how it differs."""
    seen: dict[str, int] = {}

    def deck_matches_the_request(final_answer, memory, agent=None) -> bool:
        try:
            return check(final_answer, memory, agent=agent)
        except ValueError as exc:
            why = str(exc)
            seen[why] = seen.get(why, 0) + 1
            repairs["failures"] = repairs.get("failures", 0) + 1
            if seen[why] >= REPAIR_TRIES and decks(out_dir):
                repairs["closest"] = why
                return True
            if seen[why] == REPAIR_TRIES - 1:
                repairs["outlines"] = repairs.get("outlines", 0) + 1
                raise ValueError(why + outline_request(out_dir, shape)) from exc
            raise
    return deck_matches_the_request


def outline_request(out_dir: Path, shape: DeckShape) -> str:
    """The saved deck's outline as the slides list the model wrote, and a request for that list corrected."""
    from demo.agent.slides import DeckError, slide_texts

    saved = decks(out_dir)
    try:
        outline = slide_texts(saved[0]) if saved else []
    except DeckError:  # a deck that cannot be read: the check's own message says so
        outline = []
    if not outline:
        return ""
    rows = "\n".join(f"    ({t!r}, {b!r})," for t, b in outline)
    want = f"exactly {shape.slides} entries" if shape.slides else "one entry per slide"
    return (f"\nThe same problem came back. The saved deck holds:\nslides = [\n{rows}\n]\nWrite this slides "
            f"list corrected ({want}), then the same loop that builds the deck, prs.save('deck.pptx') and "
            "final_answer. Change nothing else.")


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
    shape: DeckShape | None = None  # what the request asked for
    breakdown: dict = field(default_factory=dict)  # where the time went (timing.Ledger.breakdown)
    calls: list[dict] = field(default_factory=list)  # every model call: tokens, cache, prefill, decode
    budget_seconds: float | None = None
    budget_spent: bool = False  # stopped because the run's wall-clock budget was spent: a failure
    loops: int = 0  # replies cut as degenerate repetition
    repairs: dict = field(default_factory=dict)  # shape-check failures, outlines handed back, closest deck
    outputs: list[str] = field(default_factory=list)  # the model's replies, to tell identical runs apart

    def to_json(self) -> dict:
        return {"final_answer": self.final_answer, "files": self.files, "steps": self.steps,
                "seconds": round(self.seconds, 2), "speculative": self.speculative, "tokens": self.tokens,
                "budget_seconds": self.budget_seconds, "budget_spent": self.budget_spent, "loops": self.loops,
                "breakdown": self.breakdown}


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


class RepeatedFailure(Exception):
    """The model wrote the same failing code as in its previous step: under greedy decoding it would go on."""


def _steps(agent, model: Model, task: str, max_steps: int, stop: threading.Event | None,
           trace: list[TraceItem], state: dict, ledger: timing.Ledger | None = None,
           deadline: float | None = None) -> Iterator[TraceItem]:
    from smolagents.memory import ActionStep, FinalAnswerStep

    shown: set[int] = set()
    last_failure = None
    for step in agent.run(task, stream=True, max_steps=max_steps):
        if stop is not None and stop.is_set():
            if isinstance(model, EngineModel):
                model.cancel_event.set()
            agent.interrupt()
        if isinstance(step, ActionStep) and id(step) not in shown:  # at the step limit smolagents yields it twice
            shown.add(id(step))
            state["steps"], state["answered"] = step.step_number, step.is_final_answer
            if isinstance(step.model_output, str):
                state.setdefault("outputs", []).append(step.model_output)
            for item in trace_items(step):
                trace.append(item)
                yield item
            if ledger is not None:
                trace.append(TraceItem("timing", ledger.step_line(step.step_number), step.step_number))
                yield trace[-1]
            if deadline is not None and time.monotonic() >= deadline and not step.is_final_answer:
                raise BudgetSpent("the run's time budget is spent")
            failure = (step.code_action, str(step.error)) if step.error is not None and step.code_action else None
            if failure is not None and failure == last_failure:
                raise RepeatedFailure(f"the model wrote the same failing code twice ({str(step.error)[:200]}); "
                                      "stopped instead of repeating it until the step limit")
            last_failure = failure
        elif isinstance(step, FinalAnswerStep):
            state["final"] = None if step.output is None else str(step.output)


def search_note(shape: DeckShape, search_offered: bool, trace: list[TraceItem]) -> str | None:
    """What the final answer must say when the request asked for a web search that did not happen."""
    if not shape.search:
        return None
    if not search_offered:
        return "web search is turned off for this run, so this is written from the model's own knowledge"
    if any("search unavailable" in it.text for it in trace if it.kind in ("observation", "error")):
        return "web search was unavailable (offline), so this is written from the model's own knowledge"
    if not any("web_search" in it.text for it in trace if it.kind in ("code", "thought")):
        return "no web search was made, so this is written from the model's own knowledge"
    return None


def run_agent(engine: Engine, task: str, out_dir: Path, use_draft: bool = True, max_steps: int = MAX_STEPS,
              search: bool = True, model: Model | None = None, stop: threading.Event | None = None,
              kind: str = DEFAULT_KIND, short_prompt: bool = True, shape_from: str = "parser",
              public: bool = False, budget: float | None = BUDGET_SECONDS,
              speedups: Speedups = Speedups()) -> Iterator[TraceItem | AgentResult]:
    """Run the agent, yielding trace items as they happen and an AgentResult last. The request's deck shape
    is read first (by the parser, or by the model with the parser's numbers winning) and checked before the
    final answer. A run stops when `budget` seconds are spent (None: no budget) and reports it as a failure."""
    if not task or not task.strip():
        raise EngineError("the task is empty: describe the deck you want")
    if shape_from not in SHAPE_FROM:
        raise EngineError(f"unknown shape reader {shape_from!r}; use one of {', '.join(SHAPE_FROM)}")
    refused = sandbox.refusal(public)  # no confinement on a shared or non-loopback app: no agent code at all
    if refused:
        raise EngineError(refused)
    model = model or make_model(engine, use_draft=use_draft)  # the engine here, or an endpoint (--agent-backend)
    if stop is not None and hasattr(model, "cancel_event"):
        model.cancel_event = stop  # Stop ends the generation in progress at the next token
    t0, trace = time.monotonic(), []
    ledger = timing.Ledger()
    deadline = t0 + budget if budget else None
    if hasattr(model, "ledger"):
        model.ledger, model.deadline = ledger, deadline
    if hasattr(model, "slim_history"):
        model.slim_history = speedups.slim_history
    with ledger.timed("shape_s"):
        shape = deck_shape.extract(task, model if shape_from == "model" else None)
    trace.append(TraceItem("shape", f"the request asks for {shape.summary()}", 0))
    yield trace[-1]
    if hasattr(model, "code_prefix"):
        model.code_prefix = shape.deck
    repairs: dict = {}
    agent = build_agent(model, max_steps=max_steps, search=search, out_dir=out_dir, kind=kind,
                        short_prompt=short_prompt, shape=shape, stop=stop, public=public, ledger=ledger,
                        repairs=repairs, speedups=speedups)
    agent.sandbox.deadline = deadline  # a code block ends with the budget too
    agent_task = task_text(task, shape, speedups)
    if shape.deck and shape.search and "web_search" in agent.tools:
        # the asked search is made before the first step: a small model otherwise goes straight to the deck
        query = " ".join(shape.topic[:6]) or task.strip()[:200]
        trace.append(TraceItem("code", f"web_search(query={query!r})", 0))
        yield trace[-1]
        found = str(agent.tools["web_search"](query=query))[:SEARCH_CHARS]
        trace.append(TraceItem("observation", found, 0))
        yield trace[-1]
        # results go to the model; a failed search does not (told "offline", the small model leaned on the
        # example deck's titles in our dev runs): the final answer says it instead (search_note)
        if "search unavailable" not in found:
            agent_task += f"\n\nWeb search results for {query!r}:\n{found}\nUse them in the deck."
    state = {"steps": 0, "answered": False, "final": None}
    out_dir.mkdir(parents=True, exist_ok=True)
    spent = False
    try:
        yield from _steps(agent, model, agent_task, max_steps, stop, trace, state, ledger, deadline)
    except Exception as exc:  # a generation failure (e.g. the context is full) ends the run, not the app
        spent = isinstance(exc, BudgetSpent) or isinstance(exc.__cause__, BudgetSpent)
        why = (f"the run used its {budget:.0f} s budget after {time.monotonic() - t0:.0f} s and was stopped"
               if spent else f"the agent stopped: {exc}")
        trace.append(TraceItem("error", why, state["steps"]))
        yield trace[-1]
    finally:  # also when the caller drops this generator (Stop in the app): no confined process outlives its run
        agent.sandbox.cleanup()
    final, steps = state["final"], state["steps"]
    if spent:
        state["answered"] = False
        final = f"stopped: the run used its {budget:.0f} s time budget" + (f" ({final})" if final else "")
    elif repairs.get("closest"):
        final = (f"{final or 'the deck'} (the closest deck after {repairs['failures']} checks; it still differs "
                 f"from the request: {repairs['closest'].split(': ', 1)[-1]})")
    reached_max = not state["answered"] and steps >= max_steps and not spent
    note = search_note(shape, search, trace)
    if note and not any(w in (final or "").lower() for w in ("unavailable", "offline", "turned off")):
        final = f"{final} ({note})" if final else note
    files = [str(p) for p in decks(out_dir)] if out_dir.exists() else []
    if reached_max:
        trace.append(TraceItem("error", f"reached the limit of {max_steps} steps; showing what was produced", steps))
        yield trace[-1]
    seconds = time.monotonic() - t0
    tokens = getattr(model, "generated_tokens", 0)
    gen_s = getattr(model, "generation_seconds", 0.0)
    yield AgentResult(final, files, steps, seconds, bool(use_draft and engine.drafts), tokens,
                      tokens / gen_s if gen_s else None, bool(reached_max), trace, shape,
                      breakdown=ledger.breakdown(seconds), calls=timing.calls_json(ledger.calls),
                      budget_seconds=budget, budget_spent=spent, loops=getattr(model, "loops", 0),
                      repairs=dict(repairs), outputs=state.get("outputs", []))


