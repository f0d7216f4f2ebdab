"""python -m demo.serve: the /v1 routes without the UI, on one engine, served by uvicorn."""
from __future__ import annotations

import argparse
import os
import sys

from demo.engine import Engine
from demo.server.access import API_KEY_ENV, check_launch
from demo.server.gate import MAX_QUEUE
from demo.server.routes import create_app


def main(argv: list[str] | None = None) -> int:
    from demo.models import PrepareError, prepare

    parser = argparse.ArgumentParser(prog="python -m demo.serve",
                                     description="Serve the OpenAI-compatible /v1 routes without the UI.")
    prepare.add_arguments(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--device", default="CPU", help="OpenVINO device for the models (CPU, GPU, NPU)")
    parser.add_argument("--api-key", default=os.environ.get(API_KEY_ENV),
                        help=f"key clients must send (default ${API_KEY_ENV}); required beyond loopback")
    parser.add_argument("--max-queue", type=int, default=MAX_QUEUE,
                        help=f"API requests admitted at once, running or waiting (default {MAX_QUEUE})")
    args = parser.parse_args(argv)
    try:
        check_launch(args.host, False, args.api_key, ui=False)
        if args.max_queue < 1:
            raise ValueError("--max-queue must be at least 1")
        ready = prepare.prepare_from_args(args)
    except (ValueError, PrepareError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    import uvicorn

    engine = Engine(ready, device=args.device)
    engine.warm_up(log=lambda msg: print(f"[serve] {msg}", file=sys.stderr, flush=True))
    print(f"serving {ready.preset} at http://{args.host}:{args.port}/v1: target {ready.target_label}, drafts "
          f"{', '.join(ready.drafts) or 'none'}", file=sys.stderr, flush=True)
    uvicorn.run(create_app(engine, args.api_key, args.max_queue), host=args.host, port=args.port, log_level="warning")
    return 0
