"""python -m demo.agent_bench: the agent's success rate and timings over a task set (demo/agent/bench.py)."""
import sys

from demo.agent.bench import main

if __name__ == "__main__":
    sys.exit(main())
