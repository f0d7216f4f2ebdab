"""python -m demo.sandbox --folder DIR [--json] [--render] [--raw] FILE.py | --check: run a file of agent code the
way the Agent tab runs model-written code (demo/agent/sandbox_cli.py)."""
import sys

from demo.agent.sandbox_cli import main

if __name__ == "__main__":
    sys.exit(main())
