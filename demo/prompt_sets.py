"""Prompt sets: JSON-lines files of {"prompt": ...} under assets/prompts/."""
from __future__ import annotations

import json
from pathlib import Path

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "assets" / "prompts"


def load_prompts(path: Path) -> list[str]:
    prompts = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            prompt = json.loads(line)["prompt"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{i}: expected a JSON object with a \"prompt\" field") from exc
        prompts.append(str(prompt))
    if not prompts:
        raise ValueError(f"{path} holds no prompts")
    return prompts
