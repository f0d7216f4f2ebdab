"""The decision sets: sizes, the seeded dev/test split, and no test prompt anywhere it could be tuned on."""
from __future__ import annotations

import re

import pytest

from demo import prompt_sets as ps


def norm(text: str) -> str:
    return re.sub(r"\W+", " ", text.lower()).strip()


def records(name: str, half: str) -> list[dict]:
    return ps.load_records(ps.half_path(name, half))


@pytest.mark.parametrize("name", ps.SETS)
def test_each_set_has_at_least_40_distinct_prompts_split_50_50(name):
    dev, test = records(name, "dev"), records(name, "test")
    assert len(dev) + len(test) >= 40 and abs(len(dev) - len(test)) <= 1
    texts = [norm(r["prompt"]) for r in dev + test]
    assert len(set(texts)) == len(texts)
    assert len({r["id"] for r in dev + test}) == len(texts)


@pytest.mark.parametrize("name", ps.SETS)
def test_files_are_the_seeded_split(name):
    dev, test = records(name, "dev"), records(name, "test")
    assert ps.split_halves(dev + test) == (dev, test)
    assert ps.split_halves(test + dev) == (dev, test)  # the order the records come in does not matter


def test_split_keeps_every_kind_in_both_halves():
    for name in ps.SETS:
        dev, test = records(name, "dev"), records(name, "test")
        for kind in {r["kind"] for r in dev + test}:
            n_dev, n_test = (sum(r["kind"] == kind for r in h) for h in (dev, test))
            assert abs(n_dev - n_test) <= 1, (name, kind)


def test_no_test_prompt_in_dev_halves_heal_or_calibration_sets():
    test_prompts = {norm(p) for name in ps.SETS for p in ps.load_half(name, "test")}
    tunable = [p for name in ps.SETS for p in ps.dev_prompts(name)]
    for file in {*ps.CALIBRATION_FILES, *ps.SMOKE_SETS, "heal.jsonl"}:
        tunable += ps.load_prompts(ps.PROMPTS_DIR / file)
    assert len(tunable) > 150
    leaked = [p for p in tunable if norm(p) in test_prompts]
    assert not leaked


def test_new_sets_copy_none_of_the_older_prompts():
    older = {norm(p) for file in {*ps.SMOKE_SETS, "heal.jsonl"} for p in ps.load_prompts(ps.PROMPTS_DIR / file)}
    new = [p for name in ps.SETS for half in ps.HALVES for p in ps.load_half(name, half)]
    assert not [p for p in new if norm(p) in older]


def test_describe_set_names_the_half():
    assert ps.describe_set(ps.half_path("code", "test")) == {"file": "code-test.jsonl", "set": "code", "half": "test"}
    assert ps.describe_set(ps.PROMPTS_DIR / "mixed.jsonl")["half"] == "smoke"
    assert ps.describe_set(ps.PROMPTS_DIR.parent / "elsewhere.jsonl")["half"] is None


def test_bad_names_and_files_get_clear_messages(tmp_path):
    with pytest.raises(ValueError, match="no prompt set 'poems'"):
        ps.half_path("poems", "dev")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": 1}\n')
    with pytest.raises(ValueError, match='bad.jsonl:1: expected a JSON object with a "prompt" field'):
        ps.load_prompts(bad)
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(ValueError, match="holds no prompts"):
        ps.load_prompts(tmp_path / "empty.jsonl")
