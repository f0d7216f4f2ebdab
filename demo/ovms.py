"""python -m demo.ovms: write an OpenVINO Model Server repository for a prepared preset (demo/models/ovms.py)."""
import sys

from demo.models.ovms import main

if __name__ == "__main__":
    sys.exit(main())
