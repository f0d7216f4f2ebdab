"""python -m demo.vocab_trim: trim a prepared draft's vocabulary head and register it beside the preset's drafts.

python -m demo.vocab_trim [--preset P | --target T --draft NAME=SRC] [--trim DRAFT] [--top N] [--first M]
                          [--corpus PATH ...]
(the method: demo/models/vocab_trim.py)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from demo import catalog
from demo.models import PrepareError, prepare
from demo.models.cache import register_draft
from demo.models.vocab_trim import RECIPE, corpus_files, corpus_keep, log, stdlib_corpus, trim_draft


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo.vocab_trim", description=__doc__.splitlines()[0])
    prepare.add_arguments(parser)
    parser.add_argument("--trim", metavar="DRAFT", help="which draft to trim (default: the preset's default draft)")
    parser.add_argument("--top", type=int, default=RECIPE["top"],
                        help="keep this many of the corpus's most frequent tokens")
    parser.add_argument("--first", type=int, default=RECIPE["first"], help="and every token id below this")
    parser.add_argument("--corpus", type=Path, nargs="*", default=None,
                        help="files or folders of text (default: this Python's standard library sources)")
    parser.add_argument("--corpus-chars", type=int, default=RECIPE["chars"])
    parser.add_argument("--name", help="registered draft name (default: <draft>-head<k>k)")
    args = parser.parse_args(argv)
    try:
        preset = prepare.select_preset(args.preset, args.target, args.draft)
        prepared = prepare.prepare(preset, args.cache_dir)
        draft = args.trim or preset.default_draft
        if draft not in prepared.drafts:
            raise PrepareError(f"unknown draft {draft!r}; choose from {sorted(prepared.drafts)}")
        preset_dir = catalog.cache_root(args.cache_dir) / preset.name
        files = corpus_files(args.corpus) if args.corpus is not None else stdlib_corpus()
        if not files:
            raise PrepareError("the corpus holds no readable text files")
        keep, distinct = corpus_keep(preset_dir / "tokenizer", files, args.corpus_chars, args.top, args.first)
        name = args.name or f"{draft}-head{round(len(keep) / 1000)}k"
        log(f"{distinct} distinct corpus tokens; keeping {len(keep)} rows of the head")
        out = trim_draft(prepared.drafts[draft], preset_dir / name, keep)
        register_draft(preset_dir, name, out)
        log(f"draft {name} registered at {out}")
    except (PrepareError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
