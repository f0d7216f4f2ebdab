"""Reading a request's deck shape (parser and model reply), and comparing a deck with it."""
import json

import pytest

from demo.agent import deck_shape as ds, prompts
from demo.prompt_sets import PROMPTS_DIR

TASKS = [json.loads(line) for line in (PROMPTS_DIR / "deck_tasks.jsonl").read_text().splitlines() if line.strip()]


def test_task_file_is_varied_and_split():
    assert len(TASKS) >= 20
    halves = [t["split"] for t in TASKS]
    assert set(halves) == {"dev", "test"} and abs(halves.count("dev") - halves.count("test")) <= 2
    for half in ("dev", "test"):
        sel = [t for t in TASKS if t["split"] == half]
        assert {t["slides"] for t in sel} == {2, 3, 4, 5} and {t["bullets"] for t in sel} == {2, 3}
        assert 2 <= sum(t["search"] for t in sel) < len(sel) / 2
    assert len({t["task"] for t in TASKS}) == len(TASKS) and all(t["keywords"] for t in TASKS)


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t["task"][:40])
def test_parser_reads_every_task_in_the_file(task):
    shape = ds.parse_request(task["task"])
    assert (shape.deck, shape.slides, shape.bullets, shape.search) == (True, task["slides"], task["bullets"],
                                                                      task["search"])
    assert shape.topic and not {"slide", "slides", "deck", "bullets", "three", "web"} & set(shape.topic)


@pytest.mark.parametrize("text, slides, bullets, search", [
    ("A 4-slide deck on tides", 4, None, False),
    ("slides: 2, about tides, 3 key points each", 2, 3, False),
    ("Make a presentation of 5 slides about owls with two to three bullets", 5, 2, False),
    ("Give me a couple of slides on owls", 2, None, False),
    ("Look it up online and make a deck about owls", None, None, True),
    ("Search for owl facts, then make a two slide deck", 2, None, True),
    ("Make a deck explaining binary search for beginners, 3 slides", 3, None, False),
    ("Build six slides, each with 4 bullet points, about the phone market", 6, 4, False),
])
def test_parser_phrasings(text, slides, bullets, search):
    shape = ds.parse_request(text)
    assert (shape.deck, shape.slides, shape.bullets, shape.search) == (True, slides, bullets, search)


def test_binary_search_is_a_topic_not_a_web_search():
    shape = ds.parse_request("Make a deck explaining binary search for beginners, 3 slides")
    assert "binary" in shape.topic and "search" in shape.topic


@pytest.mark.parametrize("text", ["Run this code and report what it prints: print(sum(range(5)))",
                                  "What is the capital of France?", "Write a haiku about autumn"])
def test_requests_that_are_not_decks(text):
    shape = ds.parse_request(text)
    assert not shape.deck and shape.summary() == "not a deck: a plain answer"


def test_model_reply_is_read_leniently_and_checked():
    got = ds.parse_model_reply('Sure!\n```json\n{"deck": true, "slides": "3", "bullets": 2, "search": true, '
                               '"topic": ["Honey bees", "pollination"]}\n```')
    assert (got.deck, got.slides, got.bullets, got.search, got.source) == (True, 3, 2, True, "model")
    assert got.topic == ("honey", "bees", "pollination")
    odd = ds.parse_model_reply('{"deck": false, "slides": 0, "bullets": true, "topic": "tea"}')
    assert (odd.deck, odd.slides, odd.bullets, odd.search, odd.topic) == (False, None, None, False, ("tea",))
    for bad in ("no json here", "{not json}", "[1, 2]", ""):
        assert ds.parse_model_reply(bad) is None


def test_merge_keeps_the_parsers_numbers_and_fills_the_rest():
    parsed = ds.parse_request("Make a three-slide deck about the tea ceremony")
    asked = ds.DeckShape(slides=5, bullets=2, topic=("japan",), search=False, source="model")
    merged = ds.merge(parsed, asked)
    assert (merged.slides, merged.bullets, merged.source) == (3, 2, "parser+model")
    assert "tea" in merged.topic and "japan" in merged.topic
    assert ds.merge(parsed, None) == parsed


GOOD = [("Why Tides Happen", ["The Moon pulls the oceans", "The Sun adds a smaller pull"]),
        ("Spring and Neap Tides", ["Aligned pulls: big tides", "Crossed pulls: small tides"]),
        ("Tides and People", ["Harbours plan around them", "Tidal power plants"])]


def test_a_deck_of_the_asked_shape_has_no_problems():
    shape = ds.DeckShape(slides=3, bullets=2, topic=("tides",))
    assert ds.problems(shape, GOOD) == []


@pytest.mark.parametrize("deck, expect", [
    (GOOD[:2], "the deck has 2 slides but the task asks for exactly 3"),
    (GOOD + [("Extra", ["a", "b"])], "the deck has 4 slides but the task asks for exactly 3"),
    ([GOOD[0], ("Why Tides Happen", ["x", "y"]), GOOD[2]], "slides 1 and 2 have the same title 'Why Tides Happen'"),
    ([GOOD[0], ("", ["x", "y"]), GOOD[2]], "slide 2 has no title"),
    ([GOOD[0], (GOOD[1][0], ["only one"]), GOOD[2]], "every slide needs at least 2 bullets, but slide 2 has 1"),
    ([("Why Coffee Matters", ["tides", "x"]), *GOOD[1:]], "come from the example"),
    ([("Cats", ["Purr", "Sleep"]), ("Dogs", ["Bark", "Run"]), ("Birds", ["Sing", "Fly"])],
     "does not mention the task's topic (tides)"),
    ([], "the deck has no slides"),
])
def test_problems_say_what_to_fix(deck, expect):
    found = ds.problems(ds.DeckShape(slides=3, bullets=2, topic=("tides",)), deck)
    assert len(found) == 1 and expect in found[0], found
    assert ds.describe(found).startswith("The saved deck does not match the task yet: ")
    assert "prs.save" in ds.describe(found)


def test_topic_matches_by_stem():
    shape = ds.parse_request("Make a 2-slide deck introducing Python list comprehensions")
    assert ds.on_topic(shape, "A comprehension builds a list") and not ds.on_topic(shape, "Cats purr")
    assert ds.stem("comprehensions") == "comprehens" and ds.stem("cpu") == "cpu"


def test_requirements_and_summary():
    shape = ds.parse_request("Search the web, then make a 4-slide deck about owls with 2 bullets per slide")
    assert shape.requirements() == ("The deck needs exactly 4 slides, each slide with its own title, at least 2 "
                                    "bullets on every slide.")
    assert shape.summary() == "a deck (parser): 4 slides; at least 2 bullets each; topic: owls; web search first"
    assert ds.DeckShape().requirements() == "The deck needs each slide with its own title."


@pytest.mark.parametrize("slides, bullets", [(2, 3), (5, 2), (4, 3)])
def test_instructions_show_an_example_of_the_asked_shape(slides, bullets):
    shape = ds.DeckShape(slides=slides, bullets=bullets)
    text = prompts.instructions("code", shape)
    example = text.split(f"slides = [  # {slides} slides, {bullets} bullets each\n")[1].split("]\nprs")[0]
    rows = example.strip().splitlines()
    assert len(rows) == slides and all(row.count('", "') == bullets - 1 for row in rows)
    assert f"exactly {slides} slides of at least {bullets} short bullets" in text
    assert prompts.instructions("code", ds.DeckShape(deck=False)) == prompts.CODE_PLAIN_INSTRUCTIONS
    assert prompts.instructions("tool", None) == prompts.TOOL_INSTRUCTIONS


def test_verdict_for_the_user():
    shape = ds.DeckShape(slides=3, bullets=2, topic=("tides",))
    assert ds.verdict(shape, GOOD) == "✅ the deck matches the request (3 slides, at least 2 bullets each)"
    assert ds.verdict(shape, GOOD[:2]).startswith("⚠️ the deck differs from the request: the deck has 2 slides")
