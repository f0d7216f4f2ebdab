"""python -m demo.serve: the OpenAI-compatible /v1 routes without the UI (demo/server/cli.py)."""
import sys

from demo.server.cli import main

if __name__ == "__main__":
    sys.exit(main())
