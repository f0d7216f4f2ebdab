"""python -m demo.soak: many runs from several clients over HTTP, then damaged model caches (demo/bench/soak.py)."""
import sys

from demo.bench.soak import main

if __name__ == "__main__":
    sys.exit(main())
