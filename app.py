"""Speculative decoding demo: python app.py [--preset NAME] [--host H] [--port P] [--share]."""
from __future__ import annotations

import argparse
import sys

from demo.models import PrepareError, prepare


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    prepare.add_arguments(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--share", action="store_true", help="also open a public Gradio share link")
    parser.add_argument("--device", default="CPU", help="OpenVINO device for the models (CPU, GPU, NPU)")
    args = parser.parse_args(argv)
    try:
        ready = prepare.prepare_from_args(args)
    except PrepareError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from demo.views import blocks as ui
    from demo.engine import Engine

    engine = Engine(ready, device=args.device)
    engine.warm_up(log=lambda msg: print(f"[app] {msg}", file=sys.stderr, flush=True))
    print(f"serving {ready.preset}: target {ready.target}, drafts {', '.join(ready.drafts) or 'none'}",
          file=sys.stderr, flush=True)
    ui.launch(ui.build(engine), host=args.host, port=args.port, share=args.share)
    return 0


if __name__ == "__main__":
    sys.exit(main())
