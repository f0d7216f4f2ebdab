"""Soak and fault test of the app over HTTP: many race and agent runs from several clients at once, every few
cancelled, watching the server's memory, errors and latency; then damaged and interrupted model caches.

python -m demo.soak --race N --agent M --clients C [--url URL [--pid PID] [--auth U:P] | preset flags]
    [--cancel-every K] [--max-new-tokens T] [--agent-steps S] [--faults] [--json OUT]
"""
from __future__ import annotations

import argparse
import http.cookiejar
import json
import os
import queue
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from demo import catalog
from demo.models import PrepareError, prepare
from demo.models.cache import REGISTRY, damage, is_ir_folder

ROOT = Path(__file__).resolve().parents[2]
RACE_PROMPTS = [
    "Write a Python function that reverses a linked list.",
    "Explain in two sentences what a hash map is.",
    "Write a Python function that counts the words in a string.",
    "Implement FizzBuzz in Python.",
]
AGENT_TASK = "Make a two-slide deck about unit tests, with two bullets on each slide"
RSS_AT = 50  # the run after which the middle RSS sample is taken; growth is measured from there to the end


def log(msg: str) -> None:
    print(f"[soak] {msg}", file=sys.stderr, flush=True)


def rss_mib(pid: int | None) -> float | None:
    """Resident memory of the server process, from /proc (Linux)."""
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))], 2)


# ---------------------------------------------------------------- the app under test

def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def preset_argv(args, cache_dir: str | Path | None = None) -> list[str]:
    """The preset flags again, for app.py and demo.prepare; cache_dir replaces --cache-dir."""
    out = ["--preset", args.preset] if args.preset else []
    out += ["--target", args.target] if args.target else []
    for d in args.draft:
        out += ["--draft", d]
    cache_dir = cache_dir or args.cache_dir
    return out + (["--cache-dir", str(cache_dir)] if cache_dir else [])


def start_app(args, log_path: Path) -> tuple[subprocess.Popen, str]:
    return launch(["app.py", *preset_argv(args)], log_path, seconds=900)


def launch(argv: list[str], log_path: Path, seconds: float = 180, env: dict | None = None,
           port: int | None = None) -> tuple[subprocess.Popen, str]:
    """Start `python ARGV --port P` in the repository and wait until its page answers; (process, url).
    The soak, the startup bench and the e2e tests start the app this way."""
    port = port or free_port()
    with open(log_path, "w") as out:
        proc = subprocess.Popen([sys.executable, *argv, "--port", str(port)], cwd=ROOT, stdout=out,
                                stderr=subprocess.STDOUT,
                                env={**(env or os.environ), "GRADIO_ANALYTICS_ENABLED": "False"})
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return proc, url
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"the app exited: {log_path.read_text()[-3000:]}")
            time.sleep(1)
    proc.kill()
    raise RuntimeError(f"the app did not start in {seconds:.0f} s: {log_path.read_text()[-3000:]}")


def stop_app(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def endpoint_args(config: dict, api_name: str, overrides: dict[str, object]) -> list:
    """The inputs of an endpoint at their on-page defaults, some replaced by elem_id: robust to new inputs."""
    components = {c["id"]: c for c in config["components"]}
    for dep in config["dependencies"]:
        if dep.get("api_name") == api_name:
            values = []
            for cid in dep["inputs"]:
                props = components[cid].get("props", {})
                values.append(overrides.get(props.get("elem_id"), props.get("value")))
            return values
    raise RuntimeError(f"the app has no /{api_name} endpoint")


def press_stop(url: str, auth: tuple[str, str] | None, session_hash: str, api_name: str) -> None:
    """A Stop button as the browser presses it: a direct, unqueued POST for the session of the run."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    if auth:
        opener.open(url + "login", data=urllib.parse.urlencode({"username": auth[0], "password": auth[1]}).encode(),
                    timeout=10).close()
    body = json.dumps({"data": [], "session_hash": session_hash}).encode()
    opener.open(urllib.request.Request(url + f"gradio_api/run/{api_name}", data=body,
                                       headers={"Content-Type": "application/json"}), timeout=10).close()


# ---------------------------------------------------------------- the drive

@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"race": [], "agent": []})
    cancels: dict[str, int] = field(default_factory=lambda: {"race": 0, "agent": 0})
    stop_seconds: list[float] = field(default_factory=list)  # agent Stop -> run ended
    queue_full: int = 0
    errors: list[str] = field(default_factory=list)
    done: int = 0
    rss: dict[str, float | None] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def plan(races: int, agents: int, cancel_every: int) -> list[tuple[str, bool]]:
    """Race and agent runs spread evenly through the run; every cancel_every-th one is cancelled."""
    kinds = ["race"] * races + ["agent"] * agents
    if agents and races:
        step = (races + agents) / agents
        kinds = ["race"] * races
        for i in range(agents):
            kinds.insert(min(len(kinds), round(i * step + step / 2)), "agent")
    return [(k, cancel_every > 0 and (i + 1) % cancel_every == 0) for i, k in enumerate(kinds)]


def drive(url: str, auth, pid: int | None, work: list[tuple[str, bool]], clients: int, max_new: int,
          agent_steps: int) -> Tally:
    from gradio_client import Client

    tally = Tally()
    jobs: queue.Queue = queue.Queue()
    for i, item in enumerate(work):
        jobs.put((i, *item))
    tally.rss["start"] = rss_mib(pid)

    def one(client, config, i, kind, cancel):
        if kind == "race":
            values = endpoint_args(config, "race", {"prompt": RACE_PROMPTS[i % len(RACE_PROMPTS)],
                                                    "max-new": max_new})
        else:
            values = endpoint_args(config, "agent", {"agent-task": AGENT_TASK, "agent-steps": agent_steps})
        t0 = time.monotonic()
        job = client.submit(*values, api_name=f"/{kind}")
        if cancel:
            time.sleep(1.0 if kind == "race" else 3.0)
            if kind == "race":
                job.cancel()
            else:
                t_stop = time.monotonic()
                # as the browser's Stop does: the handler ends a running run, and Gradio's cancel (the button's
                # cancels=) drops a run still waiting in the queue behind the other client's
                press_stop(url, auth, client.session_hash, "agent_stop")
                job.cancel()
                while not job.done() and time.monotonic() - t_stop < 60:
                    time.sleep(0.05)
                with tally.lock:
                    tally.stop_seconds.append(time.monotonic() - t_stop)
            with tally.lock:
                tally.cancels[kind] += 1
            return
        out = job.result(timeout=3600)
        seconds = time.monotonic() - t0
        message = out[-1] if kind == "race" else out[1]
        problem = ("⚠️" in str(message)) if kind == "race" else str(message).startswith("⚠️")
        with tally.lock:
            if problem:
                tally.errors.append(f"{kind} run {i}: {str(message)[:300]}")
            else:
                tally.latencies[kind].append(seconds)

    def worker():
        client = Client(url, auth=auth, verbose=False)
        config = client.config
        while True:
            try:
                i, kind, cancel = jobs.get_nowait()
            except queue.Empty:
                return
            try:
                one(client, config, i, kind, cancel)
            except Exception as exc:  # a failed request is a finding, not the end of the soak
                with tally.lock:
                    if "Queue is full" in str(exc):
                        tally.queue_full += 1
                    else:
                        tally.errors.append(f"{kind} run {i}: {type(exc).__name__}: {str(exc)[:300]}")
            with tally.lock:
                tally.done += 1
                n = tally.done
            if n == RSS_AT:
                tally.rss[f"after run {RSS_AT}"] = rss_mib(pid)
            if n % 10 == 0:
                log(f"{n}/{len(work)} runs, {len(tally.errors)} errors, RSS {rss_mib(pid) or 0:.0f} MiB")

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    tally.rss["end"] = rss_mib(pid)
    return tally


# ---------------------------------------------------------------- faults in the model cache

def scratch_copy(src: Path, dst: Path) -> None:
    """The preset's IR folders under a scratch cache root: big files hard-linked (never written: a damaged one
    is replaced by a new file), small ones copied (manifests are rewritten)."""
    def link_or_copy(s, d):
        if os.path.getsize(s) > 1 << 20:
            try:
                os.link(s, d)
                return d
            except OSError:
                pass
        return shutil.copy2(s, d)

    dst.mkdir(parents=True)
    for child in src.iterdir():
        if child.is_dir() and (is_ir_folder(child) or child.name == "tokenizer"):
            shutil.copytree(child, dst / child.name, copy_function=link_or_copy)
        elif child.is_file() and child.name != REGISTRY:
            shutil.copy2(child, dst / child.name)


def truncate(path: Path) -> None:
    data = path.read_bytes()[: path.stat().st_size // 2]
    path.unlink()  # a new inode: the original cache's hard link is untouched
    path.write_bytes(data)


def run_prepare(args, cache: Path, timeout: float = 3600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "demo.prepare", *preset_argv(args, cache)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def generates(prepared, name: str) -> str:
    from demo.engine import Engine, Request

    engine = Engine(prepared)
    lane = "baseline" if prepared.target.name == name else "speculative"
    res = engine.generate(Request("Count to three.", lane=lane, draft=None if lane == "baseline" else name,
                                  max_new_tokens=8))
    return res.text


def fault_cases(args) -> list[dict]:
    """Truncated weights, a missing tokenizer file, an interrupted rebuild: each is detected and rebuilt, or
    named in one clear line; never a crash. On a scratch copy; the real cache is only read."""
    ready = prepare.prepare_from_args(args)
    preset_dir = ready.target.parent
    root = catalog.cache_root(args.cache_dir)
    folders = [p for p in (ready.target, *ready.drafts.values()) if p.parent == preset_dir and p.parents[1] == root]
    if not folders:
        return [{"case": "model cache", "ok": False, "detail": "the preset's models are not in the cache "
                                                               "(an IR folder used as it is): nothing to damage"}]
    results = []
    with tempfile.TemporaryDirectory(prefix="specdemo-soak-faults-") as tmp:
        cache = Path(tmp)
        scratch_copy(preset_dir, cache / preset_dir.name)
        first = run_prepare(args, cache)  # records the file sizes of caches made before they were recorded
        if first.returncode != 0:
            return [{"case": "scratch copy", "ok": False, "detail": first.stderr.strip()[-500:]}]
        # the cheapest folder to rebuild: the smallest weights, drafts before the target
        victim_name = min(folders, key=lambda p: ((p / "openvino_model.bin").stat().st_size,
                                                 p == ready.target)).name
        victim = cache / preset_dir.name / victim_name
        for case, hurt in (("truncated openvino_model.bin", lambda: truncate(victim / "openvino_model.bin")),
                           ("missing openvino_tokenizer.xml", lambda: (victim / "openvino_tokenizer.xml").unlink())):
            hurt()
            t0 = time.monotonic()
            done = run_prepare(args, cache)
            seconds = time.monotonic() - t0
            named = "damaged" in done.stderr and victim_name in done.stderr
            entry = {"case": case, "folder": victim_name, "seconds": round(seconds, 1), "named": named}
            if done.returncode == 0 and damage(victim) is None:
                again = prepare.prepare(prepare.select_preset(args.preset, args.target, args.draft), cache)
                text = generates(again, victim_name)
                entry.update(ok=bool(text) and named, detail=f"rebuilt; generates {text!r}")
            else:
                lines = done.stderr.strip().splitlines()
                entry.update(ok=done.returncode == 2 and named and len(lines[-1]) < 600,
                             detail=f"refused with: {lines[-1] if lines else '(nothing)'}")
            results.append(entry)
            log(f"fault: {case}: {entry['detail']}")
        # interrupted: kill a rebuild in the middle, then the cache must still prepare and generate
        truncate(victim / "openvino_model.bin")
        proc = subprocess.Popen([sys.executable, "-m", "demo.prepare", *preset_argv(args, cache)], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and proc.poll() is None:
            if any(p.name.startswith(".tmp-") for p in (cache / preset_dir.name).iterdir()):
                time.sleep(1.0)
                break
            time.sleep(0.1)
        interrupted = proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        others_intact = all(damage(cache / preset_dir.name / p.name) is None for p in folders if p.name != victim_name)

        def leftovers():
            return sorted(p.name for p in (cache / preset_dir.name).iterdir() if p.name.startswith((".tmp-", ".old-",
                                                                                                    ".work-")))
        after_kill = leftovers()
        done = run_prepare(args, cache)
        entry = {"case": "preparation killed mid-rebuild", "folder": victim_name, "interrupted": interrupted,
                 "others_intact": others_intact, "leftovers_after_kill": after_kill,
                 "leftovers_after_next_prepare": leftovers()}
        if done.returncode == 0:
            again = prepare.prepare(prepare.select_preset(args.preset, args.target, args.draft), cache)
            text = generates(again, victim_name)
            entry.update(ok=interrupted and others_intact and bool(text), detail=f"prepared again; generates {text!r}")
        else:
            entry.update(ok=False, detail=done.stderr.strip()[-500:])
        results.append(entry)
        log(f"fault: {entry['case']}: {entry['detail']}")
    return results


# ---------------------------------------------------------------- the command

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo.soak", description=__doc__.splitlines()[0])
    prepare.add_arguments(parser)
    parser.add_argument("--race", type=int, default=20, help="race runs")
    parser.add_argument("--agent", type=int, default=2, help="agent runs")
    parser.add_argument("--clients", type=int, default=2, help="clients sending at once")
    parser.add_argument("--cancel-every", type=int, default=5, help="cancel every K-th run (0: none)")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="of each race")
    parser.add_argument("--agent-steps", type=int, default=3, help="step limit of each agent run")
    parser.add_argument("--url", help="an app already running (default: start one on the preset)")
    parser.add_argument("--pid", type=int, help="with --url: the server's process id, for its RSS")
    parser.add_argument("--auth", help="USER:PASSWORD of an app that asks for a login")
    parser.add_argument("--faults", action="store_true", help="also damage and interrupt a copy of the model cache")
    parser.add_argument("--json", dest="json_out", type=Path, help="write the report here")
    args = parser.parse_args(argv)
    if min(args.race, args.agent) < 0 or args.clients < 1 or args.race + args.agent < 1:
        print("error: --race and --agent take counts >= 0 (not both 0), --clients at least 1", file=sys.stderr)
        return 2
    auth = tuple(args.auth.split(":", 1)) if args.auth else None
    proc = None
    command = "python -m demo.soak " + " ".join(sys.argv[1:] if argv is None else argv)
    try:
        if args.url:
            url, pid = args.url.rstrip("/") + "/", args.pid
        else:
            log_path = Path(tempfile.gettempdir()) / f"specdemo-soak-app-{os.getpid()}.log"
            log(f"starting the app ({log_path})")
            proc, url = start_app(args, log_path)
            pid = proc.pid
        log(f"driving {url}: {args.race} races, {args.agent} agent runs, {args.clients} clients")
        t0 = time.monotonic()
        tally = drive(url, auth, pid, plan(args.race, args.agent, args.cancel_every), args.clients,
                      args.max_new_tokens, args.agent_steps)
        wall = time.monotonic() - t0
        faults = fault_cases(args) if args.faults else []
    except (PrepareError, RuntimeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    mid, end = tally.rss.get(f"after run {RSS_AT}"), tally.rss.get("end")
    growth = (end - mid) / mid * 100 if mid and end else None
    report = {
        "command": command, "url": url, "wall_seconds": round(wall, 1), "runs": tally.done,
        "errors": tally.errors, "queue_full": tally.queue_full, "cancelled": tally.cancels,
        "rss_mib": {k: None if v is None else round(v, 1) for k, v in tally.rss.items()},
        "rss_growth_percent_from_run_50": None if growth is None else round(growth, 1),
        "latency_seconds": {k: {"n": len(v), "p50": percentile(v, 0.5), "p95": percentile(v, 0.95),
                                "mean": round(statistics.fmean(v), 2) if v else None}
                            for k, v in tally.latencies.items()},
        "agent_stop_seconds_max": round(max(tally.stop_seconds), 2) if tally.stop_seconds else None,
        "faults": faults,
    }
    print(json.dumps(report, indent=1))
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=1))
    ok = not tally.errors and (growth is None or growth <= 10) and all(f.get("ok") for f in faults)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
