"""Healing prompts written from the Python standard library (PSF licence, shipped with every Python): more
questions like the ones users ask, without a model hub. Each public function with a docstring becomes a
code task ("implement this", "explain this code", "write tests for it") and each module docstring a chat
task ("summarize", "explain to a beginner"). The answers come from the target (demo.models.prune.heal).

python -m demo.models.prune.corpus --count 480 > assets/prompts/heal-stdlib.jsonl
"""
from __future__ import annotations

import argparse
import ast
import json
import random
import sys
import textwrap
from pathlib import Path

from demo.models.vocab_trim import stdlib_dir

# Pure-Python modules whose docstrings read like documentation (no platform- or test-only modules)
MODULES = ("argparse", "base64", "bisect", "calendar", "collections/__init__", "colorsys", "configparser",
           "contextlib", "copy", "csv", "dataclasses", "datetime", "difflib", "enum", "filecmp", "fnmatch",
           "fractions", "ftplib", "functools", "genericpath", "getopt", "gettext", "glob", "gzip", "hashlib",
           "heapq", "hmac", "html/__init__", "http/cookies", "imaplib", "inspect", "ipaddress", "json/__init__",
           "json/decoder", "json/encoder", "logging/__init__", "mailbox", "mimetypes", "netrc", "ntpath",
           "operator", "optparse", "os", "pathlib", "pickle", "platform", "posixpath", "pprint", "queue",
           "quopri", "random", "re/__init__", "reprlib", "sched", "secrets", "selectors", "shlex", "shutil",
           "smtplib", "socket", "socketserver", "statistics", "string", "subprocess", "tarfile", "tempfile",
           "textwrap", "threading", "timeit", "tokenize", "traceback", "types", "typing", "urllib/parse",
           "urllib/request", "uuid", "warnings", "weakref", "wave", "zipfile/__init__", "zipimport")

CODE = ("Write a Python function `{name}({args})` that does the following: {summary}",
        "Explain what this Python function does, step by step:\n\n```python\n{source}\n```",
        "Write pytest tests for this function, covering normal input and edge cases:\n\n```python\n{source}\n```",
        "Rewrite this function to be easier to read, keeping its behaviour:\n\n```python\n{source}\n```",
        "Implement `{name}` in Python. Its docstring says: \"{summary}\" Add type hints.")
CHAT = ("Summarize this text in two or three sentences:\n\n\"{text}\"",
        "Explain to a beginner what the Python module `{module}` is for, with one short example.",
        "Rewrite this documentation in plain English for a newcomer:\n\n{text}",
        "List the three most important points of this text as bullets:\n\n{text}",
        "Plan, in numbered steps, how you would write a small program that uses `{module}`: what it does and "
        "how you would test it.")
MAX_SOURCE_LINES = 24  # a function a user would paste into a chat
MAX_TEXT_CHARS = 900


def _summary(doc: str) -> str:
    first = doc.strip().split("\n\n")[0]
    return " ".join(first.split())


def tasks(root: Path | None = None) -> list[dict]:
    """Every candidate prompt, in a fixed order: {prompt, kind, source} with the module it came from."""
    root = root or stdlib_dir()
    out = []
    for name in MODULES:
        path = root / f"{name}.py"
        if not path.exists():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        lines = text.splitlines()
        module = name.removesuffix("/__init__").replace("/", ".")
        tree = ast.parse(text)
        doc = ast.get_docstring(tree)
        if doc and len(doc) > 200:
            body = doc.strip()[:MAX_TEXT_CHARS].rsplit("\n", 1)[0] if len(doc) > MAX_TEXT_CHARS else doc.strip()
            for i, template in enumerate(CHAT):
                out.append({"prompt": template.format(text=body, module=module), "kind": f"chat-{i}",
                            "source": f"{module} (module docstring)"})
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef) or node.name.startswith("_"):
                continue
            summary = _summary(ast.get_docstring(node) or "")
            if len(summary) < 25:
                continue
            source = textwrap.dedent("\n".join(lines[node.lineno - 1 - len(node.decorator_list): node.end_lineno]))
            args = ", ".join(a.arg for a in node.args.args if a.arg != "self")
            for i, template in enumerate(CODE):
                if "{source}" in template and source.count("\n") >= MAX_SOURCE_LINES:
                    continue
                out.append({"prompt": template.format(name=node.name, args=args, summary=summary[:300],
                                                      source=source),
                            "kind": f"code-{i}", "source": f"{module}.{node.name}"})
    return out


def sample(count: int, seed: int = 13, root: Path | None = None) -> list[dict]:
    """`count` prompts, half code and half chat where there are enough, at most one per function and
    template, drawn with a fixed seed."""
    rng = random.Random(seed)
    pool = tasks(root)
    code = [t for t in pool if t["kind"].startswith("code")]
    chat = [t for t in pool if t["kind"].startswith("chat")]
    rng.shuffle(code)
    rng.shuffle(chat)
    n_chat = min(len(chat), count // 2)
    picked = chat[:n_chat] + code[: count - n_chat]
    rng.shuffle(picked)
    return picked


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo.models.prune.corpus", description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=480)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args(argv)
    for i, row in enumerate(sample(args.count, args.seed)):
        print(json.dumps({"id": f"stdlib-{i:03d}", **row}))
    print(f"{args.count} prompts from {stdlib_dir()} (Python {sys.version.split()[0]})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
