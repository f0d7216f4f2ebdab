"""An agent run's folders, and the host's rules for what the run's code leaves behind: it is hostile.

    <run>/work/      the code's one writable place; when the server is root a tmpfs whose size and file count
                     the kernel caps, owned by the run's unprivileged uid; else a plain folder, polled
    <run>/checked/   decks copied out for the shape check while the run goes on
    <run>/files/     every regular file copied out when the run ends: what is judged and served
    <run>/previews/  slide images the server wrote from the renderer's output

The host never follows a symlink there, never opens a FIFO or a device, caps every size, and reads only copies it
made itself (os.fwalk with directory fds, O_NOFOLLOW | O_NONBLOCK, then fstat: a regular file or nothing).
Run folders go when their browser session ends, after a TTL, or oldest first past a disk cap for all runs.
"""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
import time
import zlib
from pathlib import Path

from demo.agent import jail

RUNS = Path(tempfile.gettempdir()) / "specdemo-agent-runs"
FOLDER_BYTES = 256 << 20  # the work folder in all
FOLDER_FILES = 4096  # files and folders in it (tmpfs nr_inodes)
FILE_BYTES = 64 << 20  # one file (RLIMIT_FSIZE inside, and the most the host copies of one)
COPY_FILES = 256  # regular files copied out at the end of a run
RUN_PROCESSES = 64  # at once, all of a run's processes
RUN_MEMORY = 1 << 30  # all of a run's processes together, the tmpfs's pages included
TTL_SECONDS = 3600
DISK_CAP = 2 << 30  # all run folders together


def run_uid(root: Path) -> int:
    """The unprivileged host uid of a run's code (the deck tool gets the next one)."""
    return jail.run_uid(2 * (zlib.crc32(str(root).encode()) % (jail.UID_SPAN // 2)))


def new_run_dir(base: Path = RUNS) -> Path:
    return base / f"{time.strftime('%Y%m%d-%H%M%S')}-{time.monotonic_ns() % 1_000_000_000}"


def _mount_tmpfs(path: Path, uid: int, size: int = FOLDER_BYTES, files: int = FOLDER_FILES) -> bool:
    opts = f"size={size},nr_inodes={files},mode=0700,uid={uid},gid={uid},nosuid,nodev,noexec"
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "specdemo-run", str(path)], capture_output=True)
    return done.returncode == 0


def _unmount(path: Path) -> None:
    if os.path.ismount(path):
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def folder_mechanism() -> str:
    """How the work folder's size and file count are enforced here (python -m demo.sandbox --check)."""
    if jail.is_root():
        with tempfile.TemporaryDirectory() as probe:
            if _mount_tmpfs(Path(probe), 0):
                _unmount(Path(probe))
                return (f"tmpfs: {FOLDER_BYTES >> 20} MiB and {FOLDER_FILES} files, enforced by the kernel, "
                        "copied out by the server at the end")
    return (f"a plain folder: its size polled once a second ({FOLDER_BYTES >> 20} MiB), its file count not "
            "capped (a tmpfs needs the server to run as root)")


class RunFolder:
    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.work = self.root / "work"
        self.files = self.root / "files"
        self.checked = self.root / "checked"
        self.previews = self.root / "previews"
        self.uid = run_uid(self.root)
        self.tool_uid = self.uid + 1

    @classmethod
    def of(cls, copy: Path) -> "RunFolder":
        """The run folder of a file the server copied out (<run>/files/... or <run>/checked/...)."""
        for parent in Path(copy).resolve().parents:
            if parent.name in ("files", "checked"):
                return cls(parent.parent)
        return cls(Path(copy).resolve().parent)

    @property
    def kernel_capped(self) -> bool:
        return os.path.ismount(self.work)

    def open(self, size: int = FOLDER_BYTES, files: int = FOLDER_FILES) -> None:
        """Make the folders; the work folder a tmpfs of `size` bytes and `files` entries where the kernel lets us."""
        self.root.mkdir(parents=True, exist_ok=True)
        if self.work.exists():
            return
        self.work.mkdir(mode=0o700)
        if jail.is_root() and not _mount_tmpfs(self.work, self.uid, size, files):
            os.chown(self.work, self.uid, self.uid)  # no tmpfs here: at least the run's uid owns it

    # -- reading what the code left, as the host may

    def _entries(self):
        """(dir fd, name, lstat) for every entry under work/, never following a link; at most FOLDER_FILES."""
        if not self.work.is_dir():
            return
        seen = 0
        for _root, dirs, files, fd in os.fwalk(self.work, follow_symlinks=False):
            for name in dirs + files:
                seen += 1
                if seen > FOLDER_FILES:
                    return
                try:
                    yield fd, name, os.stat(name, dir_fd=fd, follow_symlinks=False), _root
                except OSError:
                    continue

    def bytes_used(self) -> int:
        return sum(st.st_size for _, _, st, _ in self._entries() if stat.S_ISREG(st.st_mode))

    def newest_deck(self) -> Path | None:
        """A copy of the newest regular .pptx in work/, made now by the server; None when there is none."""
        best = None
        for fd, name, st, top in self._entries():
            if name.lower().endswith(".pptx") and stat.S_ISREG(st.st_mode) and (best is None or
                                                                                st.st_mtime > best[2].st_mtime):
                best = (top, name, st)
        if best is None:
            return None
        self.checked.mkdir(exist_ok=True)
        dest = self.checked / f"deck-{len(list(self.checked.iterdir())) + 1}.pptx"
        return dest if _copy_regular(Path(best[0]) / best[1], dest, self.work) else None

    def copy_out(self) -> list[Path]:
        """Copy every regular file of work/ (capped in number and bytes) into files/; the copies' paths."""
        self.files.mkdir(parents=True, exist_ok=True)
        out, total = [], 0
        for _fd, name, st, top in self._entries():
            if not stat.S_ISREG(st.st_mode) or len(out) >= COPY_FILES or total + st.st_size > FOLDER_BYTES:
                continue
            rel = Path(top).relative_to(self.work) / name
            dest = self.files / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            if dest.exists() or dest.is_symlink():  # an earlier copy (the same folder run again)
                dest.unlink()
            if _copy_regular(self.work / rel, dest, self.work):
                out.append(dest)
                total += dest.stat().st_size
        return out

    def close(self) -> None:
        """End of the run: copy out, then drop the work folder (unmounting its tmpfs)."""
        if self.work.exists():
            self.copy_out()
        _unmount(self.work)
        shutil.rmtree(self.work, ignore_errors=True)

    def remove(self) -> None:
        _unmount(self.work)
        shutil.rmtree(self.root, ignore_errors=True)


def _copy_regular(src: Path, dest: Path, top: Path) -> bool:
    """Copy src (under top) to dest when every part of its path is a real folder and it is a regular file of at
    most FILE_BYTES; the copy keeps its modification time. False otherwise."""
    rel = src.relative_to(top).parts
    fds = [os.open(top, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)]
    try:
        for part in rel[:-1]:
            fds.append(os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fds[-1]))
        fd = os.open(rel[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=fds[-1])
    except OSError:  # a link, or it went away
        for d in fds:
            os.close(d)
        return False
    fds.append(fd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > FILE_BYTES:
            return False
        data, left = [], FILE_BYTES + 1
        while left > 0 and (chunk := os.read(fd, min(left, 1 << 20))):
            data.append(chunk)
            left -= len(chunk)
        if left <= 0:
            return False
        out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        with os.fdopen(out, "wb") as f:
            for chunk in data:
                f.write(chunk)
        os.utime(dest, ns=(st.st_atime_ns, st.st_mtime_ns))
        return True
    except OSError:
        return False
    finally:
        for d in fds:
            os.close(d)


def decks(root: Path) -> list[Path]:
    """The server's copies of a run's decks, newest first (by the original's time): those copied out at its end
    (files/), or while it runs, those copied for the shape check (checked/)."""
    folder = Path(root) / "files"
    if not folder.is_dir():
        folder = Path(root) / "checked"
    found = [p for p in folder.rglob("*.pptx") if p.is_file() and not p.is_symlink()] if folder.is_dir() else []
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def sweep(base: Path = RUNS, ttl: float = TTL_SECONDS, cap: int = DISK_CAP, keep: set[Path] = frozenset()) -> None:
    """Remove run folders older than ttl, then the oldest finished ones until all fit in cap; never one in
    `keep` (the asking session's)."""
    if not base.is_dir():
        return
    now, runs = time.time(), []
    for d in base.iterdir():
        if d.is_dir() and not d.is_symlink() and d.resolve() not in keep:
            runs.append((d.stat().st_mtime, d))
    runs.sort()
    for mtime, d in list(runs):
        if now - mtime > ttl:
            RunFolder(d).remove()
            runs.remove((mtime, d))
    sizes = {d: _du(d) for _, d in runs}
    total = sum(sizes.values()) + sum(_du(k) for k in keep if k.exists())
    for _, d in runs:
        if total <= cap:
            break
        if os.path.ismount(d / "work"):  # a run in progress: its folder goes with its TTL, not with the cap
            continue
        RunFolder(d).remove()
        total -= sizes[d]


def _du(path: Path) -> int:
    total = 0
    for _root, _dirs, files, fd in os.fwalk(path, follow_symlinks=False):
        for name in files:
            try:
                total += os.stat(name, dir_fd=fd, follow_symlinks=False).st_blocks * 512
            except OSError:
                pass
    return total
