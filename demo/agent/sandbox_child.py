"""The confined side of demo.agent.sandbox: smolagents' LocalPythonExecutor behind JSON lines on stdin/stdout.

Runs inside bubblewrap as a plain script (`python -I child.py`): it imports only the standard library,
smolagents and what the agent may import, because the project itself is not visible in the sandbox.
The first line it reads is its configuration; then each line is one message:
  {"op": "tools", "names": [...]}         proxies that call the parent's real tools
  {"op": "vars", "data": "safe:..."}       smolagents SafeSerializer text, as RemotePythonExecutor sends it
  {"op": "run", "code": str, "fresh": bool, "raw": bool}  -> {"op": "result", "output", "logs", "is_final_answer",
                                                              "error"}  (raw: plain exec, no smolagents layer)
While code runs, a tool call goes out as {"op": "call", "tool", "args", "kwargs"} and waits for
{"op": "return", "value"} or {"op": "return", "error"}.
"""
import json
import os
import resource
import sys

MAX_TEXT = 100_000  # characters of an output or tool argument sent to the parent; the parent caps lines too


def _send(out, msg: dict) -> None:
    out.write(json.dumps(msg, default=str) + "\n")
    out.flush()


def _recv() -> dict | None:
    line = sys.stdin.readline()
    return json.loads(line) if line else None


def _wire(value):
    """A JSON value for the parent: plain JSON as it is, anything else as its (capped) text."""
    try:
        text = json.dumps(value)
        if len(text) <= MAX_TEXT:
            return value
    except (TypeError, ValueError):
        pass
    try:
        text = str(value)
    except Exception as exc:  # an object whose __str__ fails
        text = f"<{type(value).__name__}: {exc}>"
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + f"... (cut at {MAX_TEXT} characters)"


def _set_limits(limits: dict) -> None:
    """Limits the code cannot raise again: CPU seconds, address space, one file's size, open files, processes of
    the jail's user (counted per user namespace), no core. The CPU hard limit is a second above the soft one, so
    SIGXCPU (not SIGKILL) names the cause."""
    for name, soft, hard in (("RLIMIT_CPU", limits["cpu_seconds"], limits["cpu_seconds"] + 1),
                             ("RLIMIT_AS", limits["memory_bytes"], limits["memory_bytes"]),
                             ("RLIMIT_FSIZE", limits["file_bytes"], limits["file_bytes"]),
                             ("RLIMIT_NOFILE", limits["open_files"], limits["open_files"]),
                             ("RLIMIT_NPROC", limits["processes"], limits["processes"]),
                             ("RLIMIT_CORE", 0, 0)):
        resource.setrlimit(getattr(resource, name), (soft, hard))


def _run_raw(code: str, max_print: int) -> dict:
    """Plain Python, smolagents' layer off (python -m demo.sandbox --raw): the jail alone is the boundary."""
    import contextlib
    import io

    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            exec(compile(code, "<raw>", "exec"), {"__name__": "__main__"})
        error = None
    except BaseException as exc:  # SystemExit too: the code ends, the process stays
        error = f"{type(exc).__name__}: {exc}"
    return {"output": None, "logs": buf.getvalue()[:max_print], "is_final_answer": False, "error": error}


def main() -> int:
    # The protocol gets its own copy of stdout; fd 1 then points at stderr, so a library that prints
    # cannot corrupt the message stream.
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    config = _recv()
    from smolagents.local_python_executor import LocalPythonExecutor
    from smolagents.serialization import SafeSerializer

    imports = config["authorized_imports"]
    for name in {i.split(".")[0] for i in imports if i != "*"}:
        __import__(name)  # loaded before the memory limit, and a missing library fails here, not in a step

    def executor():
        ex = LocalPythonExecutor(imports, max_print_outputs_length=config["max_print"], timeout_seconds=None)
        ex.send_tools({})
        return ex

    def proxy(name):
        def call(*args, **kwargs):
            _send(out, {"op": "call", "tool": name, "args": [_wire(a) for a in args],
                        "kwargs": {k: _wire(v) for k, v in kwargs.items()}})
            reply = _recv()
            if reply is None:
                raise SystemExit(0)
            if reply.get("error") is not None:
                raise RuntimeError(reply["error"])
            return reply.get("value")
        call.__name__ = name
        return call

    agent = executor()
    _set_limits(config["limits"])
    _send(out, {"op": "ready"})
    while (msg := _recv()) is not None:
        op = msg.get("op")
        if op == "tools":
            agent.send_tools({name: proxy(name) for name in msg["names"]})
        elif op == "vars":
            agent.send_variables(SafeSerializer.loads(msg["data"]))
        elif op == "run" and msg.get("raw"):
            _send(out, {"op": "result", **_run_raw(msg["code"], config["max_print"])})
        elif op == "run":
            # "fresh": a python_interpreter tool call, which smolagents runs with empty state and no tools
            ex = executor() if msg.get("fresh") else agent
            try:
                res = ex(msg["code"])
                reply = {"output": _wire(res.output), "logs": res.logs, "is_final_answer": res.is_final_answer,
                         "error": None}
            except Exception as exc:  # smolagents' InterpreterError names the line and the cause
                logs = str(ex.state.get("_print_outputs", ""))
                reply = {"output": None, "logs": logs, "is_final_answer": False, "error": str(exc)}
            _send(out, {"op": "result", **reply})
    return 0


if __name__ == "__main__":
    sys.exit(main())
