"""Small helpers the e2e tests share (tests/ is on sys.path through conftest.py)."""
from __future__ import annotations

from demo.bench.soak import free_port  # noqa: F401  (one copy: the soak starts apps on a free port too)
