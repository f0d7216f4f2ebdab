"""python -m demo.prepare: get, verify, convert and cache a preset's models (demo/models/prepare.py)."""
import sys

from demo.models.prepare import main

if __name__ == "__main__":
    sys.exit(main())
