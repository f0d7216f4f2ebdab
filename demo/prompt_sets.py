"""Prompt sets: JSON-lines files of {"prompt": ...} under assets/prompts/ (assets/prompts/README.md).

The decision sets come in two halves: tune on `dev`, report on `test`. Code that chooses a default (k, draft,
vocabulary corpus, threshold) reads dev_prompts() only; test halves are for the one final report.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "assets" / "prompts"
SETS = ("code", "chat")  # the sets with a dev and a test half: assets/prompts/<set>-<half>.jsonl
HALVES = ("dev", "test")
SPLIT_SEED = 2026  # the halves are split_halves(all prompts of a set, ordered by id), fixed once
SMOKE_SETS = ("code.jsonl", "mixed.jsonl", "chat.jsonl")  # small quick checks; earlier defaults were tuned on them
# Prompts that fit or calibrate models (healing, pruning's layer choice): no test prompt may be among them
CALIBRATION_FILES = ("heal.jsonl", "heal-stdlib.jsonl", "code.jsonl", "chat.jsonl")


def load_records(path: Path) -> list[dict]:
    """The file's JSON objects, each with a "prompt" string; a clear error naming the line otherwise."""
    records = []
    for i, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            record["prompt"] = str(record["prompt"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{i}: expected a JSON object with a \"prompt\" field") from exc
        records.append(record)
    if not records:
        raise ValueError(f"{path} holds no prompts")
    return records


def load_prompts(path: Path) -> list[str]:
    return [r["prompt"] for r in load_records(path)]


def half_path(name: str, half: str) -> Path:
    if name not in SETS or half not in HALVES:
        raise ValueError(f"no prompt set {name!r} half {half!r}; sets: {', '.join(SETS)}, halves: {', '.join(HALVES)}")
    return PROMPTS_DIR / f"{name}-{half}.jsonl"


def load_half(name: str, half: str) -> list[str]:
    return load_prompts(half_path(name, half))


def dev_prompts(name: str) -> list[str]:
    """The half to tune on."""
    return load_half(name, "dev")


def split_halves(records: list[dict], seed: int = SPLIT_SEED) -> tuple[list[dict], list[dict]]:
    """A random 50/50 split, stratified by "kind" so that each half has its share of every kind (a plain
    shuffle put 2 of 10 tool-call prompts in dev): shuffle each kind's records (ordered by "id") with one
    seeded generator, line the kinds up, and deal the records alternately to dev and test."""
    rng = random.Random(seed)
    dealt = []
    for kind in sorted({r.get("kind", "") for r in records}):
        group = sorted((r for r in records if r.get("kind", "") == kind), key=lambda r: r["id"])
        rng.shuffle(group)
        dealt += group
    return dealt[0::2], dealt[1::2]


def describe_set(path: Path) -> dict:
    """What a report says about its prompts: the file, and for a decision set its name and half."""
    path = Path(path)
    name, _, half = path.stem.rpartition("-")
    if name in SETS and half in HALVES:
        return {"file": path.name, "set": name, "half": half}
    smoke = path.name in SMOKE_SETS and path.resolve().parent == PROMPTS_DIR
    return {"file": path.name, "set": path.stem, "half": "smoke" if smoke else None}
