"""The process's memory as the UI and the benchmarks report it: resident set size now and at its peak."""
from __future__ import annotations

import sys

GB = 1e9


def rss_bytes(pid: int | None = None) -> int | None:
    """Resident set size of a process (this one by default), or None when it is gone."""
    import psutil

    try:
        return psutil.Process(pid).memory_info().rss
    except psutil.Error:
        return None


def peak_rss_bytes(pid: int | None = None) -> int | None:
    """The process's highest resident set size so far: VmHWM on Linux, peak_wset on Windows, else None."""
    if sys.platform.startswith("linux"):
        try:
            with open(f"/proc/{pid or 'self'}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None
    import psutil

    try:
        return getattr(psutil.Process(pid).memory_info(), "peak_wset", None)
    except psutil.Error:
        return None


def breakdown(pid: int | None = None) -> dict[str, int]:
    """Linux: the RSS split by kind (bytes), from /proc/PID/smaps_rollup: Anonymous (KV cache, activations,
    repacked weights), file-backed (mmapped model files, libraries) and Pss; {} elsewhere."""
    try:
        with open(f"/proc/{pid or 'self'}/smaps_rollup") as f:
            fields = dict(line.split(":", 1) for line in f if line.count(":") == 1 and line.strip().endswith("kB"))
    except OSError:
        return {}
    kb = {k.strip(): int(v.split()[0]) * 1024 for k, v in fields.items()}
    return {"rss": kb.get("Rss", 0), "pss": kb.get("Pss", 0), "anonymous": kb.get("Anonymous", 0),
            "file_backed": kb.get("Rss", 0) - kb.get("Anonymous", 0)}


def describe(pid: int | None = None) -> str:
    """"memory 4.31 GB (peak 5.02 GB)": what the page's header shows."""
    now, peak = rss_bytes(pid), peak_rss_bytes(pid)
    if now is None:
        return "memory –"
    return f"memory {now / GB:.2f} GB" + (f" (peak {peak / GB:.2f} GB)" if peak else "")
