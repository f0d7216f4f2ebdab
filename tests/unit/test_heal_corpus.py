"""Healing prompts made from Python sources: what becomes a code or a chat task, and the shipped file."""
from __future__ import annotations

import textwrap

from demo.models.prune import corpus
from demo.prompt_sets import PROMPTS_DIR, load_records

MODULE = textwrap.dedent('''
    """A module about ducks. It explains, at some length, how ducks are counted, fed and kept dry, so that its
    docstring is long enough to be summarized, rewritten and planned around by the chat templates of the corpus."""

    def count_ducks(pond, *, wet=False):
        """Return how many ducks swim in the pond, counting wet ones only when asked."""
        return sum(1 for d in pond if wet or not d.wet)

    def _private(x):
        """Helpers that start with an underscore are not what users ask about, so they are skipped."""
        return x

    def undocumented(x):
        return x

    class Pond:
        def feed(self, crumbs):
            """Give every duck in the pond an equal share of the crumbs."""
            return crumbs
    ''')


def test_functions_become_code_tasks_and_module_docs_chat_tasks(tmp_path):
    (tmp_path / "argparse.py").write_text(MODULE)
    tasks = corpus.tasks(tmp_path)
    sources = {t["source"] for t in tasks}
    assert sources == {"argparse (module docstring)", "argparse.count_ducks", "argparse.feed"}
    assert len([t for t in tasks if t["kind"].startswith("chat")]) == len(corpus.CHAT)
    implement = next(t["prompt"] for t in tasks if t["kind"] == "code-0" and t["source"] == "argparse.count_ducks")
    assert implement.startswith("Write a Python function `count_ducks(pond)`") and "wet ones only" in implement
    quoted = next(t["prompt"] for t in tasks if t["kind"] == "code-1" and t["source"] == "argparse.feed")
    assert "\ndef feed(self, crumbs):" in quoted  # a method is quoted dedented, as a user would paste it


def test_sample_is_fixed_by_its_seed_and_mixes_code_and_chat(tmp_path):
    (tmp_path / "argparse.py").write_text(MODULE)
    (tmp_path / "csv.py").write_text(MODULE.replace("ducks", "geese"))
    one, two = corpus.sample(8, seed=1, root=tmp_path), corpus.sample(8, seed=1, root=tmp_path)
    assert one == two and len(one) == 8
    assert sum(t["kind"].startswith("chat") for t in one) == 4


def test_the_shipped_stdlib_prompts_are_distinct_tasks_with_their_source():
    rows = load_records(PROMPTS_DIR / "heal-stdlib.jsonl")
    assert len(rows) == 480 and all(r["source"] and r["kind"] for r in rows)
    assert len({r["prompt"] for r in rows}) >= 470
    assert {r["kind"][:4] for r in rows} == {"code", "chat"}
