"""Seconds from `python app.py` to a served page, and the app's RSS then: the booth's restart time.

python -m demo.bench.startup [--preset P | --target T --draft N=S] [--cache-dir DIR] [--runs N] [--booth]

Each run starts the app afresh on a free port, polls its page until it answers, and stops it. The environment
passes through, so SPECDEMO_COMPILED_CACHE=0 measures without OpenVINO's compiled-model cache.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from demo.bench.soak import start_app
from demo.engine import memory
from demo.models import prepare


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo.bench.startup", description=__doc__.splitlines()[0])
    prepare.add_arguments(parser)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--log", type=Path, default=Path("/tmp/specdemo-startup.log"))
    args = parser.parse_args(argv)
    rows = []
    for i in range(args.runs):
        t0 = time.monotonic()
        proc, url = start_app(args, args.log)
        seconds = time.monotonic() - t0
        rss = memory.rss_bytes(proc.pid)
        proc.terminate()
        proc.wait(timeout=60)
        rows.append({"run": i + 1, "seconds_to_serve": round(seconds, 1),
                     "rss_gb": None if rss is None else round(rss / memory.GB, 2)})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(json.dumps({"runs": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
