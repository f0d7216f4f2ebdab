"""Short system prompts for the agent, and the python-pptx instructions a small model needs.

smolagents' own system prompts are ~2,500 tokens of examples with notional tools. On a 2-core CPU every
agent step prefills the whole prompt, so it dominated a run; these keep the format rules and drop the
examples (measured in docs/performance.md, section 10).
"""
from __future__ import annotations

import importlib.resources

import yaml

# The same Jinja variables as smolagents' code_agent.yaml, a fifth of its length.
CODE_SYSTEM_PROMPT = """You solve a task by writing Python code, step by step. Each step has:
Thought: one or two sentences on what you do next.
{{code_block_opening_tag}}
# Python code
{{code_block_closing_tag}}
What the code prints comes back to you as the observation of that step. End the task by calling
final_answer(...) in your code.

You can call these tools as Python functions:
{{code_block_opening_tag}}
{%- for tool in tools.values() %}
{{ tool.to_code_prompt() }}
{% endfor %}
{{code_block_closing_tag}}

Rules: call tools with keyword arguments; print() what you need in a later step; imports only from
{{authorized_imports}}; variables persist between steps; never name a variable like a tool.
{%- if custom_instructions %}

{{custom_instructions}}
{%- endif %}

Now begin!"""

# The same for smolagents' toolcalling_agent.yaml: one JSON action per step.
TOOL_SYSTEM_PROMPT = """You solve a task by calling tools, one per step. Write each step as:
Action:
{"name": "TOOL_NAME", "arguments": {"ARGUMENT": "VALUE"}}
with real values for the arguments, for example
Action:
{"name": "web_search", "arguments": {"query": "Qwen3 model features"}}
The tool's result comes back to you as the observation of that step. End the task with
Action:
{"name": "final_answer", "arguments": {"answer": "your answer"}}

The tools:
{%- for tool in tools.values() %}
- {{ tool.to_tool_calling_prompt() }}
{%- endfor %}
{%- if custom_instructions %}

{{custom_instructions}}
{%- endif %}

Now begin!"""

# The example deck is about coffee; it is cut to the shape the task asks for (a small model copies the
# example's shape far more reliably than it follows a number written in words).
EXAMPLE_SLIDES = [
    ("Why Coffee Matters", ["Most popular hot drink", "Grown in over 70 countries", "A daily ritual for billions"]),
    ("From Bean to Cup", ["Harvest and roast", "Grind and brew", "Serve it fresh"]),
    ("Brewing Tips", ["Use fresh beans", "Water at 92-96 C", "Weigh the coffee"]),
    ("Popular Drinks", ["Espresso", "Cappuccino", "Cold brew"]),
    ("Coffee and Health", ["Moderate amounts are fine", "Caffeine peaks after 45 minutes", "Avoid it late at night"]),
]
EXAMPLE_TITLES = tuple(t for t, _ in EXAMPLE_SLIDES)


def deck_example(slides: int = 3, bullets: int = 2) -> str:
    """The example deck's code with `slides` entries of `bullets` bullets (at most five of three)."""
    picked = EXAMPLE_SLIDES[:max(1, min(slides, 5))]
    k = max(1, min(bullets, 3))
    rows = [f"    ({title!r}, {points[:k]!r}),".replace("'", '"') for title, points in picked]
    # the count beside the list: the model writes its own list with the same comment and keeps to it
    head = f"slides = [  # {len(picked)} slides, {k} bullet{'s' if k > 1 else ''} each"
    return "\n".join(["from pptx import Presentation", head, *rows, "]", """prs = Presentation()
for title, bullets in slides:
    slide = prs.slides.add_slide(prs.slide_layouts[1])  # layout 1: title and content
    slide.shapes.title.text = title
    body = slide.placeholders[1].text_frame
    body.text = bullets[0]
    for bullet in bullets[1:]:
        body.add_paragraph().text = bullet
prs.save("deck.pptx")"""])


# Three bullets a slide, the most a deck task asks for: with one system prompt for every task (the fixed prompt,
# demo/agent/run.py Speedups) the model copies the example's bullet count, and "at least N bullets" passes with
# more; with two, 4 of the 5 failed decks of the test half's first run with the levers had 2 where 3 were asked.
_DECK_EXAMPLE = deck_example(3, 3)

_DECK_RULES = """Write real titles and points about the task's topic, short and specific. Save with a plain file name
such as "deck.pptx" (it goes into this run's folder). Do not import os, sys or subprocess and do not open
files. If the task asks for a web search, search first with print(web_search(query="...")) and write the
deck in the next step; if search is unavailable, write the deck from what you know."""

_DECK_SHAPE = "3 to 6 slides of 2 to 4 short bullets"

# A small model succeeds far more often when it sees the exact API it should use.
_CODE_DECK = """You build slide decks with python-pptx. Answer with code, never with the deck's content as
prose: the deck exists only once your code saves it. Write the whole deck in one short code block, one
(title, bullets) entry per slide, {shape}. This example deck is about coffee; yours must be about the task:
<code>
{example}
final_answer(f"Saved deck.pptx with {{len(prs.slides)}} slides: " + ", ".join(t for t, _ in slides))
</code>
{rules}"""

_TOOL_DECK = """You build slide decks with python-pptx: call python_interpreter with the whole deck's code as
one JSON string (newlines as \\n), one (title, bullets) entry per slide, {shape}, then final_answer naming
the file. This example deck is about coffee; yours must be about the task:
{example}
{rules}"""

CODE_INSTRUCTIONS = _CODE_DECK.format(shape=_DECK_SHAPE, example=_DECK_EXAMPLE, rules=_DECK_RULES)
TOOL_INSTRUCTIONS = _TOOL_DECK.format(shape=_DECK_SHAPE, example=_DECK_EXAMPLE, rules=_DECK_RULES)

# A task that is not a deck: a concrete step instead of a placeholder (a small model copied "# Python code"
# for six steps), and a plain sentence as the answer.
CODE_PLAIN_INSTRUCTIONS = """Answer the task in plain words. Every step is a Thought line and a code block; print()
what you need and read it in the next step's observation, and give the answer with final_answer("...") as a
sentence. For example, asked what some code prints:
Thought: I run the code and read what it prints.
<code>
print(sum(range(5)))
</code>
Observation: 10
Thought: I have the answer.
<code>
final_answer("It prints 10.")
</code>
A question you can answer from what you know still ends with final_answer:
Thought: I know this.
<code>
final_answer("Paris is the capital of France.")
</code>"""

TOOL_PLAIN_INSTRUCTIONS = """Answer the task in plain words. Use python_interpreter where running code helps, then
call final_answer with the answer as a sentence."""


def instructions(kind: str, shape=None) -> str:
    """The agent's instructions for a task of this shape (demo.agent.deck_shape.DeckShape; None: any deck)."""
    if shape is not None and not shape.deck:
        return CODE_PLAIN_INSTRUCTIONS if kind == "code" else TOOL_PLAIN_INSTRUCTIONS
    if shape is None or (not shape.slides and not shape.bullets):
        return CODE_INSTRUCTIONS if kind == "code" else TOOL_INSTRUCTIONS
    slides, bullets = shape.slides or 3, shape.bullets or 2
    words = (f"exactly {slides} slide{'s' if slides != 1 else ''} of at least {bullets} short "
             f"bullet{'s' if bullets != 1 else ''}, every title different")
    template = _CODE_DECK if kind == "code" else _TOOL_DECK
    return template.format(shape=words, example=deck_example(slides, bullets), rules=_DECK_RULES)


def prompt_templates(kind: str) -> dict:
    """smolagents' prompt templates for an agent kind ("code" or "tool"), with our short system prompt."""
    name = {"code": "code_agent.yaml", "tool": "toolcalling_agent.yaml"}[kind]
    templates = yaml.safe_load(importlib.resources.files("smolagents.prompts").joinpath(name).read_text())
    templates["system_prompt"] = CODE_SYSTEM_PROMPT if kind == "code" else TOOL_SYSTEM_PROMPT
    return templates
