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

_DECK_EXAMPLE = """from pptx import Presentation
slides = [
    ("Why Coffee Matters", ["Most popular hot drink", "Grown in over 70 countries"]),
    ("From Bean to Cup", ["Harvest and roast", "Grind and brew"]),
    ("Brewing Tips", ["Use fresh beans", "Water at 92-96 C"]),
]
prs = Presentation()
for title, bullets in slides:
    slide = prs.slides.add_slide(prs.slide_layouts[1])  # layout 1: title and content
    slide.shapes.title.text = title
    body = slide.placeholders[1].text_frame
    body.text = bullets[0]
    for bullet in bullets[1:]:
        body.add_paragraph().text = bullet
prs.save("deck.pptx")"""

_DECK_RULES = """Write real titles and points about the task's topic, short and specific. Save with a plain file name
such as "deck.pptx" (it goes into this run's folder). Do not import os, sys or subprocess and do not open
files. If web search is unavailable, write the deck from what you know."""

# A small model succeeds far more often when it sees the exact API it should use.
CODE_INSTRUCTIONS = f"""You build slide decks with python-pptx. Answer with code, never with the deck's content as
prose: the deck exists only once your code saves it. Write the whole deck in one short code block, one
(title, bullets) entry per slide, 3 to 6 slides of 2 to 4 short bullets. This example deck is about coffee; yours must be about the task:
<code>
{_DECK_EXAMPLE}
final_answer(f"Saved deck.pptx with {{len(prs.slides)}} slides: " + ", ".join(t for t, _ in slides))
</code>
{_DECK_RULES}"""

TOOL_INSTRUCTIONS = f"""You build slide decks with python-pptx: call python_interpreter with the whole deck's code as
one JSON string (newlines as \\n), one (title, bullets) entry per slide, then final_answer naming the file.
This example deck is about coffee; yours must be about the task:
{_DECK_EXAMPLE}
{_DECK_RULES}"""


def prompt_templates(kind: str) -> dict:
    """smolagents' prompt templates for an agent kind ("code" or "tool"), with our short system prompt."""
    name = {"code": "code_agent.yaml", "tool": "toolcalling_agent.yaml"}[kind]
    templates = yaml.safe_load(importlib.resources.files("smolagents.prompts").joinpath(name).read_text())
    templates["system_prompt"] = CODE_SYSTEM_PROMPT if kind == "code" else TOOL_SYSTEM_PROMPT
    return templates
