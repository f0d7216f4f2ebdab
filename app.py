"""Speculative decoding demo: python app.py [--preset NAME] [--all] [--host H] [--port P] [--share] [--auth U:P]
[--api-key K] [--booth [--idle N]]. Serves the UI and, in the same process on the same engine, the
OpenAI-compatible /v1 routes (demo/server/)."""
from __future__ import annotations

import argparse
import os
import sys
import threading

from demo import booth
from demo.engine import BASELINE_BACKENDS, DEFAULT_BASELINE_BACKEND
from demo.models import PrepareError, prepare


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    prepare.add_arguments(parser, lazy=True)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--share", action="store_true", help="also open a public Gradio share link")
    parser.add_argument("--auth", default=os.environ.get("SPECDEMO_AUTH"),
                        help="USER:PASSWORD for the page's login, or 'generate' (default $SPECDEMO_AUTH); required "
                             "with --share or a non-loopback --host")
    parser.add_argument("--device", default="CPU", help="OpenVINO device for the models (CPU, GPU, NPU)")
    parser.add_argument("--baseline-backend", choices=BASELINE_BACKENDS, default=DEFAULT_BASELINE_BACKEND,
                        help="the target-alone lane: paged, GenAI's default with the drafted lanes' scheduler and "
                             "prefix caching (default), or stateful (SDPA, no prefix caching; for comparison)")
    parser.add_argument("--exact", action="store_true",
                        help="bit-identical lanes: the target without dynamic activation quantization, whose "
                             "one-token steps round differently from drafted steps (CPU; ~17%% slower both sides)")
    parser.add_argument("--api-key", default=os.environ.get("SPECDEMO_API_KEY"),
                        help="key /v1 clients must send (default $SPECDEMO_API_KEY); required with --share or a "
                             "non-loopback --host")
    parser.add_argument("--agent-backend", choices=("local", "http"), default=None,
                        help="the Agent tab's model: the engine here (local, the default) or an OpenAI-compatible "
                             "endpoint (http: this app's /v1, or --openai-base-url)")
    parser.add_argument("--openai-base-url", help="endpoint for --agent-backend http, e.g. OVMS's "
                                                  "http://localhost:8000/v3 (key: $OPENAI_API_KEY)")
    parser.add_argument("--openai-model", help="model name at --openai-base-url (default: the preset's name)")
    parser.add_argument("--allow-unconfined", action="store_true",
                        help="without bubblewrap installed, let the Agent tab run model-written code unconfined "
                             "(loopback only; never when bubblewrap is installed but fails)")
    parser.add_argument("--booth", action="store_true",
                        help="attract loop: race the next of a curated set of prompts whenever nobody has used the "
                             "page for --idle seconds; any input stops it")
    parser.add_argument("--idle", type=float, default=booth.DEFAULT_IDLE_SECONDS, metavar="N",
                        help=f"seconds without input before the attract loop races (default "
                             f"{booth.DEFAULT_IDLE_SECONDS:.0f})")
    args = parser.parse_args(argv)
    if args.allow_unconfined:
        from demo.agent import jail

        jail.allow_unconfined()
    from demo import limits, server

    try:
        auth = server.check_launch(args.host, args.share, args.api_key, args.auth)
        if args.idle <= 0:
            raise ValueError("--idle takes a number of seconds above 0")
        ready, later = prepare.prepare_with_pending(args)
    except (ValueError, PrepareError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from demo.views import blocks as ui
    from demo.engine import Engine

    engine = Engine(ready, device=args.device, baseline_backend=args.baseline_backend, exact=args.exact)
    engine.warm_up(log=log, generate=False)  # load errors show here, before serving
    print(f"serving {ready.preset}: target {ready.target}, drafts {', '.join(ready.drafts) or 'none'}",
          file=sys.stderr, flush=True)
    if (args.agent_backend or ("http" if args.openai_base_url else "local")) == "http":
        from demo.agent import model as agent_model

        own = args.openai_base_url is None
        agent_model.use_endpoint(args.openai_base_url or server.own_base_url(args.host, args.port),
                                 args.api_key if own else os.environ.get("OPENAI_API_KEY"),
                                 args.openai_model or ready.preset, own=own)
    if args.auth == "generate":
        print(f"login: user {auth[0]}, password {auth[1]}", file=sys.stderr, flush=True)
    caps = limits.for_launch(args.host, args.share)
    page = ui.build(engine, caps, later, args.idle if args.booth else None)
    # a pipeline's first steps compile the CPU kernels (~10 s a lane): done while the page is already served; a
    # visitor's run that comes first waits for them behind the engine's lock (docs/performance.md, section 20)
    threading.Thread(target=engine.warm_up, kwargs={"log": log}, name="warm-up", daemon=True).start()
    ui.launch(page, host=args.host, port=args.port, share=args.share,
              routes=server.router(engine, api_key=args.api_key).routes, auth=auth, limits=caps)
    return 0


def log(msg: str) -> None:
    print(f"[app] {msg}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
