"""Model-written code runs here, never in the server: one confined process per agent run.

The process is started in the jail of demo/agent/jail.py (bubblewrap, an unprivileged host uid when the server is
root, a cgroup for all of the run's processes): no network, an empty environment, only the Python install
visible (read-only), the run's work folder as the one writable place (demo/agent/runfolder.py: a capped tmpfs),
a small /tmp, and hard CPU, memory, process and file-size limits; the parent kills it at the step and run time
limits or on Stop. Inside, smolagents' LocalPythonExecutor runs each code block with the agent's import rules as
a second layer (demo/agent/sandbox_child.py), which model code can walk around: the jail is the boundary. Tools
that need the host (web search) are proxies that call back here.

`python -m demo.sandbox` (demo/agent/sandbox_cli.py) runs a file of agent code the way the Agent tab does.
"""
from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smolagents import PythonInterpreterTool
from smolagents.local_python_executor import CodeOutput, InterpreterError, PythonExecutor
from smolagents.serialization import SafeSerializer, SerializationError

from demo.agent import jail, runfolder
from demo.agent.jail import mechanism, notice, refusal  # noqa: F401  (the sandbox's public face)

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
    run_memory_bytes: int = runfolder.RUN_MEMORY  # all of the run's processes together (cgroup)
    processes: int = runfolder.RUN_PROCESSES  # at once (cgroup pids.max, and RLIMIT_NPROC for the jail's uid)
    file_bytes: int = runfolder.FILE_BYTES  # RLIMIT_FSIZE: the largest file the code may write
    folder_bytes: int = runfolder.FOLDER_BYTES  # the run folder in all: the tmpfs's size, else polled
    tmp_bytes: int = 16 << 20  # the private /tmp (memory-backed, so outside RLIMIT_AS)
    open_files: int = 256
    max_print: int = 50_000  # characters of print output per step, as smolagents' default


# ---------------------------------------------------------------- one confined process

_live: set[subprocess.Popen] = set()  # started and not yet reaped; tests check that Stop leaves none


def live_processes() -> list[int]:
    return [p.pid for p in list(_live) if p.poll() is None]


class _Child:
    """One running child: its process, a reader thread turning its stdout into messages, its stderr tail."""

    def __init__(self, folder: runfolder.RunFolder, limits: CodeLimits, imports: list[str], confined: bool,
                 cgroup: jail.Cgroup | None = None):
        self.cgroup = cgroup
        if confined:
            script = os.open(CHILD, os.O_RDONLY | os.O_CLOEXEC)  # copied into the jail: no host path to it
            spec = jail.Spec([sys.executable, "-I", "-B", INSIDE_CHILD], rw=[(str(folder.work), INSIDE_FOLDER)],
                             data=[(script, INSIDE_CHILD)], tmp_bytes=limits.tmp_bytes, chdir=INSIDE_FOLDER,
                             env={"HOME": INSIDE_FOLDER}, uid=folder.uid)
            cmd, env = jail.command(spec, cgroup)
            fds = (script,)
        else:  # no bubblewrap installed, --allow-unconfined, loopback: a separate process, same limits
            cmd, env, fds = [sys.executable, "-I", "-B", str(CHILD)], {"PATH": "/usr/bin:/bin", "HOME": str(folder.work),
                                                                      "LANG": "C.UTF-8"}, ()
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         cwd=folder.work, env=env, start_new_session=True, pass_fds=fds)
        finally:
            for fd in fds:
                os.close(fd)
        _live.add(self.proc)
        self.messages: queue.Queue = queue.Queue()
        self.stderr: deque[str] = deque(maxlen=20)
        self.killed_for: str | None = None
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._drain, daemon=True).start()
        self.send({"authorized_imports": imports, "max_print": limits.max_print,
                   "limits": {k: getattr(limits, k) for k in ("cpu_seconds", "memory_bytes", "file_bytes",
                                                              "open_files", "processes")}})

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
        if self.cgroup is not None:  # anything that left the process group
            self.cgroup.kill()

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


class SandboxExecutor(PythonExecutor):
    """A smolagents executor (what CodeAgent calls: send_tools, send_variables, __call__) whose code runs in
    one confined child process per agent run. Variables live across the run's steps, as smolagents expects;
    if the process is killed (time limit), the next step starts a fresh one and says so. `folder` is the run's
    folder (demo/agent/runfolder.py); cleanup() copies out what the code left and drops its work folder."""

    def __init__(self, folder: Path | None, authorized_imports: list[str], limits: CodeLimits | None = None,
                 stop: threading.Event | None = None, public: bool = False):
        self.folder = runfolder.RunFolder(folder) if folder is not None else None
        self.cgroup: jail.Cgroup | None = None
        self.deadline: float | None = None  # time.monotonic() at which the run's budget is spent
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
            if self.cgroup is not None:
                self.cgroup.remove()
                self.cgroup = None
            if self.folder is not None and self.folder.work.exists():
                self.folder.close()

    # -- running code

    def run(self, code: str, fresh: bool = False, raw: bool = False) -> CodeOutput:
        """Run one code block; errors raise InterpreterError with a message for the model and the user.
        fresh: empty variables and no tools, as smolagents' python_interpreter tool runs its code.
        raw: plain Python without smolagents' layer, to test the jail as if that layer were walked around."""
        with self._one_at_a_time:
            self.state["_print_outputs"] = ""
            child = self._ensure_child()  # a killed process is replaced here
            note, self._restart_note = self._restart_note, ""
            child.send({"op": "run", "code": code, "fresh": fresh, "raw": raw})
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
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise InterpreterError("the run's time budget is spent: no more code runs in it")
        if self.used_seconds >= self.limits.run_seconds:
            raise InterpreterError(f"this run's code has used its {self.limits.run_seconds:.0f} s; "
                                   "no more code runs in it")
        with self._lock:
            if self._child is not None and self._child.alive():
                return self._child
            if self._child is not None:
                self._child.close()
                self._restart_note = "(a fresh sandbox process: variables from earlier steps are gone)\n"
            self.folder.open(self.limits.folder_bytes)
            confined = mechanism().confined
            if confined and self.cgroup is None:
                self.cgroup = jail.Cgroup.create(self.folder.root.name + f"-{os.getpid()}", self.limits.processes,
                                                 self.limits.run_memory_bytes)
            child = _Child(self.folder, self.limits, self.imports, confined, self.cgroup)
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
                    if not self.folder.kernel_capped and self.folder.bytes_used() > self.limits.folder_bytes:
                        child.kill(f"the run folder grew past {self.limits.folder_bytes >> 20} MiB and the code "
                                   "was stopped")
                continue
            return msg

    def _step_limit(self) -> float:
        left = self.limits.run_seconds - self.used_seconds
        if self.deadline is not None:  # the agent run's wall-clock budget ends a code block too
            left = min(left, self.deadline - time.monotonic())
        return max(0.0, min(self.limits.step_seconds, left))

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
