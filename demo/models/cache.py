"""The model cache: its folders, manifests, atomic swaps and the registry of drafts added after preparation."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
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


def file_sizes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != MANIFEST}


def damage(folder: Path) -> str | None:
    """What differs from the file sizes the manifest recorded (a truncated or missing file), or None."""
    recorded = (read_manifest(folder) or {}).get("files") or {}
    for name, size in recorded.items():
        f = folder / name
        if not f.is_file():
            return f"{name} is missing"
        if f.stat().st_size != size:
            return f"{name} has {f.stat().st_size:,} bytes, the manifest says {size:,}"
    return None


def is_cached(folder: Path, key) -> bool:
    """The folder holds a finished build for this key with its files intact. A damaged one is named and
    rebuilt; one cached before sizes were recorded gets them recorded now (it matched its key)."""
    manifest = read_manifest(folder)
    if not manifest or manifest.get("key") != key:
        return False
    problem = damage(folder)
    if problem:
        print(f"[prepare] the cached {folder} is damaged ({problem}): rebuilding it", file=sys.stderr, flush=True)
        return False
    if "files" not in manifest:
        (folder / MANIFEST).write_text(json.dumps({**manifest, "files": file_sizes(folder)}, indent=1))
    return True


def check_disk(where: Path, need: int, what: str) -> None:
    where.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(where).free
    if free < need:
        raise PrepareError(f"not enough disk space in {where} to convert {what}: "
                           f"need about {need / 2**30:.1f} GiB free, have {free / 2**30:.1f} GiB "
                           f"(use --cache-dir or ${catalog.CACHE_ENV} to put the cache elsewhere)")


def replace_atomically(tmp: Path, final: Path) -> None:
    """Swap a finished folder in; the old one stays in place until the new one is complete. The manifest
    records every file's size, so a later truncation or deletion is found (damage)."""
    manifest = read_manifest(tmp)
    if manifest is not None:
        (tmp / MANIFEST).write_text(json.dumps({**manifest, "files": file_sizes(tmp)}, indent=1))
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
