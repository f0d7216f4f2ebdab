"""python -m demo.prune: depth-prune, heal and export a draft (demo/models/prune/)."""
import sys

from demo.models.prune.cli import main

if __name__ == "__main__":
    sys.exit(main())
