"""Model-written code runs here, never in the server: one confined process per agent run.

The process is started with bubblewrap: no network, an empty environment, only the Python install and its
libraries visible (read-only), the run folder as the one writable place, a small /tmp, and hard CPU, memory
and file-size limits; the parent kills it at the step and run time limits or on Stop. Inside, smolagents'
LocalPythonExecutor runs each code block with the agent's import rules as a second layer
(demo/agent/sandbox_child.py). Tools that need the host (web search) are proxies that call back here.

`python -m demo.sandbox` (demo/agent/sandbox_cli.py) runs a file of agent code the way the Agent tab does.
"""
from __future__ import annotations

import functools
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smolagents import PythonInterpreterTool
from smolagents.local_python_executor import CodeOutput, InterpreterError, PythonExecutor
from smolagents.serialization import SafeSerializer, SerializationError

CHILD = Path(__file__).with_name("sandbox_child.py")
INSIDE_FOLDER = "/run-folder"  # the run folder's path as the code sees it (its working directory and HOME)
INSIDE_CHILD = "/sandbox/child.py"
MAX_LINE = 2_000_000  # bytes of one message from the child; a longer one is an attack or a bug, and kills it
MAX_TOOL_CALLS = 20  # tool calls (web searches) one code block may make; each runs in the server


@dataclass(frozen=True)
class CodeLimits:
    step_seconds: float = 30.0  # one code block, as smolagents' own MAX_EXECUTION_TIME_SECONDS
    run_seconds: float = 180.0  # all code blocks of one agent run together
    cpu_seconds: int = 120  # RLIMIT_CPU of one confined process (SIGXCPU kills it)
    memory_bytes: int = 768 << 20  # RLIMIT_AS: the interpreter with smolagents and python-pptx maps ~100 MiB
    file_bytes: int = 64 << 20  # RLIMIT_FSIZE: the largest file the code may write
    folder_bytes: int = 256 << 20  # the run folder in all, checked while code runs
    tmp_bytes: int = 16 << 20  # the private /tmp (memory-backed, so outside RLIMIT_AS)
    open_files: int = 256
    max_print: int = 50_000  # characters of print output per step, as smolagents' default


# ---------------------------------------------------------------- the mechanism

def _bwrap() -> str:
    # SPECDEMO_BWRAP points elsewhere to test the "mechanism missing" path on a machine that has it
    return os.environ.get("SPECDEMO_BWRAP") or shutil.which("bwrap") or "/usr/bin/bwrap"


def _readonly_binds() -> list[str]:
    """What the interpreter needs, read-only at the same paths: /usr (and the /lib, /bin links into it),
    the Python install and the virtual environment, and the dynamic linker's cache."""
    args: list[str] = []
    for top in ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        p = Path(top)
        if p.is_symlink():
            args += ["--symlink", os.readlink(p), top]
        elif p.is_dir():
            args += ["--ro-bind", top, top]
    if Path("/etc/ld.so.cache").exists():
        args += ["--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    exe_prefix = Path(os.path.realpath(sys.executable)).parents[1]
    roots = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, exe_prefix)}
    roots = {r for r in roots if r != "/usr" and not r.startswith("/usr/")}
    for r in sorted(roots):
        if not any(r.startswith(o + "/") for o in roots):
            args += ["--ro-bind", r, r]
    # a virtual environment is found through its own path (pyvenv.cfg), which may be a symlink
    if os.path.abspath(sys.prefix) != os.path.realpath(sys.prefix):
        args += ["--ro-bind", os.path.realpath(sys.prefix), os.path.abspath(sys.prefix)]
    return args


def bwrap_command(folder: Path, limits: CodeLimits, argv: list[str] | None = None) -> list[str]:
    """The bubblewrap command line around the child interpreter (or around `argv`)."""
    env = {"PATH": "/usr/bin:/bin", "HOME": INSIDE_FOLDER, "LANG": "C.UTF-8"}
    return [
        _bwrap(), "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session",
        "--cap-drop", "ALL", "--uid", "65534", "--gid", "65534", "--hostname", "sandbox", "--clearenv",
        *[a for k, v in env.items() for a in ("--setenv", k, v)],
        *_readonly_binds(),
        "--ro-bind", str(CHILD), INSIDE_CHILD,
        "--bind", str(folder), INSIDE_FOLDER, "--chdir", INSIDE_FOLDER,
        "--size", str(limits.tmp_bytes), "--tmpfs", "/tmp",
        "--proc", "/proc", "--dev", "/dev", "--remount-ro", "/dev", "--remount-ro", "/",
        "--", *(argv or [sys.executable, "-I", "-B", INSIDE_CHILD]),
    ]


def unconfined_command() -> list[str]:
    return [sys.executable, "-I", "-B", str(CHILD)]


@dataclass(frozen=True)
class Mechanism:
    confined: bool
    detail: str  # "bubblewrap 0.8.0", or why it cannot be used


@functools.lru_cache(maxsize=1)
def mechanism() -> Mechanism:
    """Whether bubblewrap works here, checked once: it runs the real command line with `python -c pass`."""
    tool = _bwrap()
    if not Path(tool).exists():
        return Mechanism(False, f"{tool} not found (Debian: apt install bubblewrap)")
    with tempfile.TemporaryDirectory() as folder:
        cmd = bwrap_command(Path(folder), CodeLimits(), [sys.executable, "-I", "-c", "pass"])
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env={})
        except (OSError, subprocess.TimeoutExpired) as exc:
            return Mechanism(False, f"bubblewrap did not start: {exc}")
    if done.returncode != 0:
        first = (done.stderr.strip().splitlines() or ["no message"])[0]
        return Mechanism(False, f"bubblewrap failed here: {first}")
    version = subprocess.run([tool, "--version"], capture_output=True, text=True).stdout.strip()
    return Mechanism(True, version or "bubblewrap")


def refusal(public: bool) -> str | None:
    """None when agent code may run on this app; otherwise the reason, meant for the user."""
    found = mechanism()
    if found.confined or not public:
        return None
    return (f"Agent code does not run on a shared or non-loopback app without its sandbox: {found.detail}. "
            "Install bubblewrap, or run the app on 127.0.0.1.")


def notice(public: bool) -> str:
    """One line for the Agent tab on how model-written code is run here."""
    found = mechanism()
    if found.confined:
        return f"Model-written code runs in a confined process ({found.detail}): no network, only the run folder."
    if public:
        return f"⚠️ {refusal(True)}"
    return (f"⚠️ The sandbox is not available ({found.detail}): model-written code runs in a separate process "
            "with the same limits but NOT confined. This is allowed only because the app listens on loopback.")


# ---------------------------------------------------------------- one confined process

_live: set[subprocess.Popen] = set()  # started and not yet reaped; tests check that Stop leaves none


def live_processes() -> list[int]:
    return [p.pid for p in list(_live) if p.poll() is None]


class _Child:
    """One running child: its process, a reader thread turning its stdout into messages, its stderr tail."""

    def __init__(self, folder: Path, limits: CodeLimits, imports: list[str], confined: bool):
        cmd = bwrap_command(folder, limits) if confined else unconfined_command()
        env = {} if confined else {"PATH": "/usr/bin:/bin", "HOME": str(folder), "LANG": "C.UTF-8"}
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     cwd=folder, env=env, start_new_session=True)
        _live.add(self.proc)
        self.messages: queue.Queue = queue.Queue()
        self.stderr: deque[str] = deque(maxlen=20)
        self.killed_for: str | None = None
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._drain, daemon=True).start()
        self.send({"authorized_imports": imports, "max_print": limits.max_print,
                   "limits": {k: getattr(limits, k) for k in ("cpu_seconds", "memory_bytes", "file_bytes",
                                                              "open_files")}})

    def _read(self) -> None:
        for line in iter(lambda: self.proc.stdout.readline(MAX_LINE), b""):
            if not line.endswith(b"\n"):
                self.kill("it sent a message over the size limit")
                break
            try:
                msg = json.loads(line)
            except ValueError:
                msg = None
            if not isinstance(msg, dict):
                self.kill("it sent a message that is not a JSON object")
                break
            self.messages.put(msg)
        self.messages.put(None)

    def _drain(self) -> None:
        for line in iter(self.proc.stderr.readline, b""):
            self.stderr.append(line.decode("utf-8", "replace")[:500])

    def send(self, msg: dict) -> None:
        try:
            self.proc.stdin.write(json.dumps(msg).encode() + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass  # it has ended; the reader reports that

    def alive(self) -> bool:
        return self.proc.poll() is None and self.killed_for is None

    def kill(self, reason: str) -> None:
        """SIGKILL the whole process group (bwrap and, through --die-with-parent, everything inside)."""
        if self.killed_for is None:
            self.killed_for = reason
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def close(self) -> None:
        self.kill(self.killed_for or "closed")
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                f.close()
            except OSError:
                pass
        _live.discard(self.proc)

    def ended_why(self) -> str:
        """Why the process is gone, as a sentence: our kill reason, a resource limit, or its exit status."""
        if self.killed_for:
            return self.killed_for
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        tail = "".join(self.stderr)
        if code in (-signal.SIGXCPU, 128 + signal.SIGXCPU):
            return "the code used up its CPU time limit and was stopped"
        if "MemoryError" in tail:
            return "the code ran out of its memory limit and was stopped"
        if code in (-signal.SIGKILL, 128 + signal.SIGKILL):
            return "the sandbox process was killed (a CPU or memory limit)"
        last = tail.strip().splitlines()[-1][:300] if tail.strip() else "no message"
        return f"the sandbox process ended with status {code} ({last})"


def _folder_bytes(folder: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


class SandboxExecutor(PythonExecutor):
    """A smolagents executor (what CodeAgent calls: send_tools, send_variables, __call__) whose code runs in
    one confined child process per agent run. Variables live across the run's steps, as smolagents expects;
    if the process is killed (time limit), the next step starts a fresh one and says so."""

    def __init__(self, folder: Path | None, authorized_imports: list[str], limits: CodeLimits | None = None,
                 stop: threading.Event | None = None, public: bool = False):
        self.folder = Path(folder).resolve() if folder is not None else None
        self.imports = list(authorized_imports)
        self.limits = limits or CodeLimits()
        self.stop = stop or threading.Event()
        self.public = public
        self.tools: dict[str, Any] = {}
        self.variables: dict[str, Any] = {}
        self.state: dict[str, Any] = {"_print_outputs": ""}  # CodeAgent shows these logs when a step fails
        self.used_seconds = 0.0
        self._child: _Child | None = None
        self._lock = threading.Lock()  # the child process: started, replaced, closed
        self._one_at_a_time = threading.Lock()  # a ToolCallingAgent may call python_interpreter from threads
        self._restart_note = ""

    # -- the PythonExecutor interface

    def send_tools(self, tools: dict[str, Any]) -> None:
        self.tools = dict(tools)
        if self._child is not None and self._child.alive():
            self._child.send({"op": "tools", "names": sorted(self.tools)})

    def send_variables(self, variables: dict[str, Any]) -> None:
        self.variables.update(variables)
        if self._child is not None and self._child.alive():
            self._send_variables(self._child)

    def __call__(self, code_action: str) -> CodeOutput:
        return self.run(code_action)

    def cleanup(self) -> None:
        with self._lock:
            if self._child is not None:
                self._child.close()
                self._child = None

    # -- running code

    def run(self, code: str, fresh: bool = False) -> CodeOutput:
        """Run one code block; errors raise InterpreterError with a message for the model and the user.
        fresh: empty variables and no tools, as smolagents' python_interpreter tool runs its code."""
        with self._one_at_a_time:
            self.state["_print_outputs"] = ""
            child = self._ensure_child()  # a killed process is replaced here
            note, self._restart_note = self._restart_note, ""
            child.send({"op": "run", "code": code, "fresh": fresh})
            reply = self._wait(child)
            self.state["_print_outputs"] = note + str(reply.get("logs") or "")
        if reply.get("error"):
            raise InterpreterError(note + str(reply["error"]))
        return CodeOutput(output=reply.get("output"), logs=self.state["_print_outputs"],
                          is_final_answer=bool(reply.get("is_final_answer")))

    def _ensure_child(self) -> _Child:
        if self.folder is None:
            raise InterpreterError("there is no run folder for this agent: code cannot run")
        if self.stop.is_set():
            raise InterpreterError("the run was stopped")
        problem = refusal(self.public)
        if problem:
            raise InterpreterError(problem)
        if self.used_seconds >= self.limits.run_seconds:
            raise InterpreterError(f"this run's code has used its {self.limits.run_seconds:.0f} s; "
                                   "no more code runs in it")
        with self._lock:
            if self._child is not None and self._child.alive():
                return self._child
            if self._child is not None:
                self._child.close()
                self._restart_note = "(a fresh sandbox process: variables from earlier steps are gone)\n"
            self.folder.mkdir(parents=True, exist_ok=True)
            child = _Child(self.folder, self.limits, self.imports, mechanism().confined)
            self._child = child
        first = self._next(child, time.monotonic() + 60)
        if first is None or first.get("op") != "ready":
            why = child.ended_why()
            child.close()
            raise InterpreterError(f"the sandbox did not start: {why}")
        if self.tools:
            child.send({"op": "tools", "names": sorted(self.tools)})
        if self.variables:
            self._send_variables(child)
        return child

    def _send_variables(self, child: _Child) -> None:
        safe = {}
        for k, v in self.variables.items():
            try:
                SafeSerializer.dumps(v)
                safe[k] = v
            except SerializationError:
                pass  # the code cannot receive it; smolagents' remote executors refuse it the same way
        if safe:
            child.send({"op": "vars", "data": SafeSerializer.dumps(safe)})

    def _next(self, child: _Child, deadline: float) -> dict | None:
        """The child's next message, or None when it ended or was killed (time, size, Stop)."""
        next_size_check = time.monotonic() + 1.0
        while True:
            if self.stop.is_set():
                child.kill("the run was stopped")
            try:
                msg = child.messages.get(timeout=0.1)
            except queue.Empty:
                now = time.monotonic()
                if now > deadline:
                    child.kill(f"the code ran past its {self._step_limit():.0f} s time limit and was stopped")
                if now > next_size_check:
                    next_size_check = now + 1.0
                    if _folder_bytes(self.folder) > self.limits.folder_bytes:
                        child.kill(f"the run folder grew past {self.limits.folder_bytes >> 20} MiB and the code "
                                   "was stopped")
                continue
            return msg

    def _step_limit(self) -> float:
        return max(0.0, min(self.limits.step_seconds, self.limits.run_seconds - self.used_seconds))

    def _wait(self, child: _Child) -> dict:
        t0 = time.monotonic()
        deadline = t0 + self._step_limit()
        calls = 0
        try:
            while True:
                msg = self._next(child, deadline)
                if msg is None:
                    raise InterpreterError(child.ended_why())
                if msg.get("op") == "result":
                    return msg
                if msg.get("op") == "call":
                    calls += 1
                    reply = self._call_tool(msg) if calls <= MAX_TOOL_CALLS else \
                        {"error": f"more than {MAX_TOOL_CALLS} tool calls in one code block"}
                    child.send({"op": "return", **reply})
                    continue
                child.kill("it sent an unknown message")
        finally:
            self.used_seconds += time.monotonic() - t0

    def _call_tool(self, msg: dict) -> dict:
        """Run the real tool here (the sandbox has no network) and return its result as JSON."""
        tool = self.tools.get(msg.get("tool"))
        if tool is None:
            return {"error": f"no tool named {msg.get('tool')!r}"}
        args = msg.get("args") if isinstance(msg.get("args"), list) else []
        kwargs = msg.get("kwargs") if isinstance(msg.get("kwargs"), dict) else {}
        try:
            value = tool(*args, **kwargs)
        except Exception as exc:  # the tool's error goes back to the code, as in smolagents
            return {"error": f"{type(exc).__name__}: {exc}"}
        try:
            json.dumps(value)
            return {"value": value}
        except (TypeError, ValueError):
            return {"value": str(value)}


class SandboxedPythonInterpreterTool(PythonInterpreterTool):
    """smolagents' python_interpreter tool (for the ToolCallingAgent) running its code in the run's sandbox:
    each call with empty variables, as the original does."""

    def __init__(self, executor: SandboxExecutor, authorized_imports: list[str]):
        super().__init__(authorized_imports=authorized_imports)
        self.executor = executor

    def forward(self, code: str) -> str:
        out = self.executor.run(code, fresh=True)
        return f"Stdout:\n{out.logs}\nOutput: {out.output}"
