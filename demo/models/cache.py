"""The model cache: its folders, manifests, atomic swaps and the registry of drafts added after preparation."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from demo import catalog
from demo.models import PrepareError

MANIFEST = "specdemo-manifest.json"
REGISTRY = "extra-drafts.json"


def is_ir_folder(path: Path) -> bool:
    return (path / "openvino_model.xml").is_file()


def dir_fingerprint(path: Path) -> str:
    """Cheap identity of a local folder: names, sizes and mtimes of its files."""
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        st = f.stat()
        h.update(f"{f.relative_to(path)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def read_manifest(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def check_disk(where: Path, need: int, what: str) -> None:
    where.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(where).free
    if free < need:
        raise PrepareError(f"not enough disk space in {where} to convert {what}: "
                           f"need about {need / 2**30:.1f} GiB free, have {free / 2**30:.1f} GiB "
                           f"(use --cache-dir or ${catalog.CACHE_ENV} to put the cache elsewhere)")


def replace_atomically(tmp: Path, final: Path) -> None:
    """Swap a finished folder in; the old one stays in place until the new one is complete."""
    old = final.with_name(f".old-{final.name}-{os.getpid()}")
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def registered_drafts(preset_dir: Path) -> dict[str, Path]:
    """Drafts added to a preset after preparation (the pruned drafts of demo.prune), still on disk."""
    try:
        entries = json.loads((preset_dir / REGISTRY).read_text())
    except (OSError, ValueError):
        return {}
    return {name: Path(path) for name, path in entries.items() if is_ir_folder(Path(path))}


def register_draft(preset_dir: Path, name: str, path: Path) -> None:
    entries = {k: str(v) for k, v in registered_drafts(preset_dir).items()}
    entries[name] = str(path)
    (preset_dir / REGISTRY).write_text(json.dumps(entries, indent=1))
