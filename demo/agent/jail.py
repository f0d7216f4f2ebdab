"""The confinement every model-written thing meets: bubblewrap, an unprivileged host uid, per-run limits.

Two programs run confined: the agent's code (sandbox_child.py) and the deck tool (deck_tool.py), which reads a
deck with python-pptx and renders it with LibreOffice + pdftoppm. Each starts as

    sh (joins the run's cgroup) -> bwrap as root (stages paths) -> setpriv (host uid U) -> bwrap (the jail)

The first three only where they apply: a cgroup where this host lets us make one, the staging bwrap and
setpriv only when the server runs as root. setpriv drops to an unprivileged host uid, so nothing inside maps to
host root; the staging bwrap mounts the read-only paths under world-traversable parents, since a Python under
/root (mode 0700) is out of U's reach otherwise. The jail itself has no network, an empty environment, the
Python install read-only, one writable folder where the caller gives one, and a small private /tmp.

When bubblewrap is installed but fails, nothing runs (fail closed). When it is missing, code runs only on a
loopback app started with --allow-unconfined.
"""
from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

BWRAP_ENV = "SPECDEMO_BWRAP"  # another bwrap (tests point it at a missing or a failing one)
UID_BASE = 1_900_000_000  # host uids of runs when the server is root: far above any real account
UID_SPAN = 1_000_000
UNCONFINED_FLAG = "--allow-unconfined"
_JOIN = 'for f in $SPECDEMO_CGROUP_PROCS; do echo $$ > "$f" || exit 125; done; exec "$@"'
DEVICES = ("null", "zero", "random", "urandom")  # no --dev: it makes bwrap map the jail's uid through host uid 0


def bwrap() -> str:
    return os.environ.get(BWRAP_ENV) or shutil.which("bwrap") or "/usr/bin/bwrap"


def is_root() -> bool:
    return os.geteuid() == 0


def run_uid(slot: int) -> int:
    """The host uid a run's processes get when the server is root (one per run, so per-uid limits are per run)."""
    return UID_BASE + slot % UID_SPAN


# ---------------------------------------------------------------- what the jail sees

def _ancestors(path: str) -> list[str]:
    parts = Path(path).parts[1:-1]
    return ["/" + "/".join(parts[:i]) for i in range(1, len(parts) + 1)]


def python_paths() -> list[str]:
    """Host folders the interpreter needs besides /usr, read-only at their own paths: the Python install, the
    virtual environment and any other site-packages folder on sys.path (a .pth file may add one). Not the
    project: nothing of the server's own code or files is visible inside."""
    exe_prefix = str(Path(os.path.realpath(sys.executable)).parents[1])
    found = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, exe_prefix)}
    found |= {os.path.realpath(p) for p in sys.path
              if p and Path(p).name in ("site-packages", "dist-packages") and os.path.isdir(p)}
    found = {p for p in found if p != "/" and p != "/usr" and not p.startswith("/usr/") and p != "/tmp"}
    return sorted(p for p in found if not any(p.startswith(o + "/") for o in found))


@dataclass
class Spec:
    """One confined program: its argv and what it sees besides the system and Python folders."""

    argv: list[str]
    rw: list[tuple[str, str]] = field(default_factory=list)  # (host folder, path inside), writable
    ro: list[str] = field(default_factory=list)  # more host paths, read-only at the same path
    data: list[tuple[int, str]] = field(default_factory=list)  # (readable fd, path inside): a read-only copy
    tmp_bytes: int = 16 << 20  # the private /tmp, memory-backed
    chdir: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    uid: int | None = None  # the host uid when the server is root


def _system_binds(flag: str) -> list[str]:
    args: list[str] = []
    for top in ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        p = Path(top)
        if p.is_symlink():
            args += ["--symlink", os.readlink(p), top]
        elif p.is_dir():
            args += [flag, top, top]
    if Path("/etc/ld.so.cache").exists():
        args += [flag, "/etc/ld.so.cache", "/etc/ld.so.cache"]
    return args


def jail_args(spec: Spec) -> list[str]:
    """bubblewrap's options for the jail. /tmp comes first: a bind under /tmp (a venv there) must land on it,
    not be hidden by it."""
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", **spec.env}
    args = [bwrap(), "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session",
            "--cap-drop", "ALL", "--uid", "65534", "--gid", "65534", "--hostname", "sandbox", "--clearenv",
            *[a for k, v in env.items() for a in ("--setenv", k, v)],
            "--size", str(spec.tmp_bytes), "--tmpfs", "/tmp",
            *_system_binds("--ro-bind")]
    for p in [*python_paths(), *spec.ro]:
        args += ["--ro-bind", p, p]
    if os.path.abspath(sys.prefix) != os.path.realpath(sys.prefix):  # a venv found through a symlinked path
        args += ["--ro-bind", os.path.realpath(sys.prefix), os.path.abspath(sys.prefix)]
    for host, inside in spec.rw:
        args += ["--bind", host, inside]
    for fd, inside in spec.data:
        args += ["--ro-bind-data", str(fd), inside]
    args += ["--proc", "/proc"]
    for d in DEVICES:
        args += ["--dev-bind", f"/dev/{d}", f"/dev/{d}"]
    if spec.chdir:
        args += ["--chdir", spec.chdir]
    return [*args, "--remount-ro", "/", "--"]


def _staging_args(spec: Spec) -> list[str]:
    """The root-run bwrap that gives the jail's bwrap (running as U) reachable copies of every path it binds."""
    ro = [*python_paths(), *spec.ro]
    if os.path.abspath(sys.prefix) != os.path.realpath(sys.prefix):
        ro.append(os.path.realpath(sys.prefix))
    rw = [h for h, _ in spec.rw]
    # a /tmp first: the jail's bwrap builds its root there, and paths under /tmp (a venv) land on it
    args, made = [bwrap(), "--die-with-parent", "--tmpfs", "/tmp"], {"/tmp"}
    for p in ["/etc/ld.so.cache", *ro, *rw]:
        for d in _ancestors(p):
            if d not in made:
                made.add(d)
                args += ["--perms", "0755", "--dir", d]
    args += _system_binds("--ro-bind")
    for p in ro:
        args += ["--ro-bind", p, p]
    for p in rw:
        args += ["--bind", p, p]
    # the host's /proc and /dev: the jail's bwrap mounts its own proc, which needs a fully visible one here
    return [*args, "--bind", "/proc", "/proc", "--dev-bind", "/dev", "/dev", "--"]


def command(spec: Spec, cgroup: "Cgroup | None" = None) -> tuple[list[str], dict[str, str]]:
    """The whole command line for a confined program, and the environment to start it with."""
    cmd = [*jail_args(spec), *spec.argv]
    if is_root() and spec.uid is not None:
        setpriv = shutil.which("setpriv") or "/usr/bin/setpriv"
        drop = [setpriv, "--reuid", str(spec.uid), "--regid", str(spec.uid), "--clear-groups", "--inh-caps=-all",
                "--bounding-set=-all", "--"]
        cmd = [*_staging_args(spec), *drop, *cmd]
    env: dict[str, str] = {}
    if cgroup is not None:
        cmd = ["/bin/sh", "-c", _JOIN, "sh", *cmd]
        env["SPECDEMO_CGROUP_PROCS"] = " ".join(cgroup.procs_files)
    return cmd, env


# ---------------------------------------------------------------- per-run limits the kernel keeps

class Cgroup:
    """All of a run's processes together: at most `pids` at once and `memory` bytes (cgroup v1 or v2), made
    under this server's own cgroup where the host lets us write there (root, or a delegated cgroup)."""

    def __init__(self, dirs: dict[str, Path]):
        self.dirs = dirs  # controller -> folder ("pids", "memory"; one folder for both on v2)

    @property
    def procs_files(self) -> list[str]:
        return sorted({str(d / "cgroup.procs") for d in self.dirs.values()})

    @staticmethod
    def _own() -> tuple[dict[str, Path], str]:
        """Our cgroup folders by controller, and the cgroup version."""
        v1, v2 = {}, None
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, ctrls, path = line.split(":", 2)
            for c in ctrls.split(","):
                if c in ("pids", "memory"):
                    v1[c] = Path("/sys/fs/cgroup", c) / path.lstrip("/")
            if ctrls == "":
                v2 = Path("/sys/fs/cgroup") / path.lstrip("/")
        if len(v1) == 2:
            return v1, "v1"
        if v2 is not None and Path("/sys/fs/cgroup/cgroup.controllers").exists():
            return {"pids": v2, "memory": v2}, "v2"
        return {}, "none"

    @classmethod
    def create(cls, name: str, pids: int, memory: int) -> "Cgroup | None":
        own, version = cls._own()
        if not own:
            return None
        made: dict[str, Path] = {}
        try:
            for ctrl, parent in own.items():  # on v2 both controllers share one folder
                made[ctrl] = parent / f"specdemo-{name}"
                made[ctrl].mkdir(exist_ok=True)
            (made["pids"] / "pids.max").write_text(str(pids))
            if version == "v1":
                (made["memory"] / "memory.limit_in_bytes").write_text(str(memory))
            else:
                (made["memory"] / "memory.max").write_text(str(memory))
                (made["memory"] / "memory.swap.max").write_text("0")
        except OSError:
            Cgroup(made).remove()
            return None
        return cls(made)

    def pids(self) -> list[int]:
        out = set()
        for f in self.procs_files:
            try:
                out |= {int(x) for x in Path(f).read_text().split()}
            except OSError:
                pass
        return sorted(out)

    def kill(self) -> None:
        for _ in range(20):  # a fork between reading and killing shows up in the next round
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def remove(self) -> None:
        self.kill()
        for d in set(self.dirs.values()):
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:  # processes still exiting
                    time.sleep(0.02)


# ---------------------------------------------------------------- is it there, does it work

@dataclass(frozen=True)
class Mechanism:
    state: str  # "confined", "broken" (installed but failing: refuse), "missing" (not installed)
    detail: str

    @property
    def confined(self) -> bool:
        return self.state == "confined"


@functools.lru_cache(maxsize=1)
def mechanism() -> Mechanism:
    """Whether the jail works here, checked once by running the real command line with `python -c pass`
    (as root: with the staging bwrap and setpriv too), its run folder under /tmp as a run's is."""
    tool = bwrap()
    if not Path(tool).exists():
        return Mechanism("missing", f"{tool} not found (Debian: apt install bubblewrap)")
    with tempfile.TemporaryDirectory(prefix="specdemo-check-") as folder:
        uid = run_uid(os.getpid())
        if is_root():
            os.chown(folder, uid, uid)
        spec = Spec([sys.executable, "-I", "-c", "pass"], rw=[(folder, "/run-folder")], uid=uid)
        cmd, env = command(spec)
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return Mechanism("broken", f"bubblewrap did not start: {exc}")
    if done.returncode != 0:
        first = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[0]
        return Mechanism("broken", f"bubblewrap is installed but failed here: {first[:300]}")
    version = subprocess.run([tool, "--version"], capture_output=True, text=True).stdout.strip()
    return Mechanism("confined", version or "bubblewrap")


_unconfined_allowed = False


def allow_unconfined(allowed: bool = True) -> None:
    """--allow-unconfined: without bubblewrap installed, run code unconfined on a loopback app."""
    global _unconfined_allowed
    _unconfined_allowed = allowed


def refusal(public: bool) -> str | None:
    """None when code may run here; otherwise why not, for the user."""
    found = mechanism()
    if found.confined:
        return None
    if found.state == "broken":
        return (f"Agent code does not run: {found.detail}. Nothing runs unconfined while bubblewrap is installed; "
                "`python -m demo.sandbox --check` says what fails.")
    if public:
        return (f"Agent code does not run on a shared or non-loopback app without its sandbox: {found.detail}. "
                "Install bubblewrap.")
    if not _unconfined_allowed:
        return (f"Agent code does not run without its sandbox: {found.detail}. Install bubblewrap, or restart "
                f"the app with {UNCONFINED_FLAG} to run it unconfined on this loopback app.")
    return None


def notice(public: bool) -> str:
    """One line for the Agent tab on how model-written code is run here."""
    found = mechanism()
    if found.confined:
        who = "an unprivileged host user" if is_root() else "your user, in its own user namespace"
        return (f"Model-written code, and everything that reads the decks it writes, runs confined ({found.detail}, "
                f"as {who}): no network, only its run folder.")
    problem = refusal(public)
    if problem:
        return f"⚠️ {problem}"
    return (f"⚠️ The sandbox is not installed ({found.detail}): with {UNCONFINED_FLAG}, model-written code runs in "
            "a separate process with the same limits but NOT confined. Allowed only because the app listens on "
            "loopback.")
