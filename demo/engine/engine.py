"""One streaming generation API over OpenVINO GenAI for three lanes: baseline, speculative, prompt-lookup.

    engine = Engine(prepared)
    run = engine.start(Request("Write a quicksort", lane="speculative"))
    for event in run:            # StepEvent per target step
        print(event.text, end="")
    print(run.result.tokens_per_second)
"""
from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Iterator

from demo import metrics
from demo.catalog import Prepared
from demo.engine import memory
from demo.engine.request import (BASELINE_BACKENDS, DEFAULT_BASELINE_BACKEND, DEFAULT_PROPERTIES,
                                 EXACT_PROPERTIES, LANES, MAX_CONTEXT_TOKENS, EngineError, Request,
                                 generation_config, scheduler, validate)
from demo.engine.result import RunResult, summarize
from demo.engine.stream import IncrementalDecoder, Run, StepEvent, _Streamer


KV_SEEN = 16  # sequences remembered per pipeline to derive its prefix-cache hits (metrics.cached_prefix_tokens)


class Engine:
    """Pipelines of one prepared preset, created on first use; one generation at a time.

    Memory is bounded: every paged pipeline has a fixed KV cache of max_context tokens (request.scheduler), and
    at most `keep_pipelines` pipelines stay loaded, each holding its own copy of the target: past that, the one
    used longest ago goes (never the baseline), so trying every draft does not stack up copies. None keeps all
    (the bench, which interleaves its lanes prompt by prompt)."""

    def __init__(self, prepared: Prepared, device: str = "CPU", draft_device: str | None = None,
                 properties: dict | None = None, draft_properties: dict | None = None,
                 baseline_backend: str = DEFAULT_BASELINE_BACKEND, exact: bool = False,
                 keep_pipelines: int | None = 2, max_context: int = MAX_CONTEXT_TOKENS,
                 share_weights: bool = True):
        import openvino_genai

        if baseline_backend not in BASELINE_BACKENDS:
            raise EngineError(f"unknown baseline backend {baseline_backend!r}; use {' or '.join(BASELINE_BACKENDS)}")

        self.ov_genai = openvino_genai
        self.prepared = prepared
        self.device = device
        self.draft_device = draft_device or device
        cpu = device == "CPU"
        base = (EXACT_PROPERTIES if exact else DEFAULT_PROPERTIES) if cpu else {}
        self.properties = dict(base if properties is None else properties)
        if draft_properties is None:  # exact: the draft keeps the fast default (see EXACT_PROPERTIES)
            draft_properties = DEFAULT_PROPERTIES if exact and cpu and properties is None else self.properties
        self.draft_properties = dict(draft_properties)
        self.share_weights = share_weights
        self._shared: tuple | None = None  # the target's arguments, its weights mapped once (see _target)
        self.exact = exact
        self.baseline_backend = baseline_backend
        self._pipes: OrderedDict[tuple, object] = OrderedDict()  # least recently used first
        self.keep_pipelines = keep_pipelines
        self._pipe_settings: dict[str, dict] = {}  # lane -> the backend and scheduler its pipeline was built with
        self._load_errors: dict[tuple, str] = {}
        self._lock = threading.Lock()
        self._state = threading.Lock()  # guards the next two
        self._waiting = 0  # foreground runs waiting for the lock (see _turn)
        self._background: threading.Event | None = None  # the cancel event of a background run in progress
        self.target_ms_per_token: float | None = None  # updated by every baseline run
        self.max_context = min(_max_context(prepared.target) or max_context, max_context)
        self.scheduler = scheduler(self.device, self.max_context)
        # per pipeline, the token sequences whose KV its prefix cache may hold: cached tokens are derived from these
        self._kv_seen: dict[tuple, list[list[int]]] = {}

    # ------------------------------------------------------------- pipelines

    @property
    def drafts(self) -> list[str]:
        return list(self.prepared.drafts)

    def device_name(self) -> str:
        """The device and, for a CPU, its model name."""
        try:
            import openvino as ov

            return f"{self.device}: {ov.Core().get_property(self.device, 'FULL_DEVICE_NAME')}"
        except Exception:
            return self.device

    def settings(self) -> dict:
        """What the numbers were measured with."""
        return {"device": self.device, "draft_device": self.draft_device, "baseline_backend": self.baseline_backend,
                "scheduler": _jsonable(self.scheduler), "exact": self.exact, "properties": self.properties,
                "draft_properties": self.draft_properties}

    def lane_settings(self, lane: str) -> dict | None:
        """The backend and scheduler a lane's pipeline was actually built with (None before it is loaded)."""
        return self._pipe_settings.get(lane)

    def describe(self) -> str:
        return f"{self.prepared.preset} on {self.device}" + (
            f" (draft on {self.draft_device})" if self.draft_device != self.device else "")

    def pipeline(self, lane: str, draft: str | None = None, instance: str | None = None):
        """The pipeline for a lane (and `instance`, see Request.pipeline_instance), loaded once; a load failure
        is remembered and re-raised clearly."""
        key = (lane, draft if lane == "speculative" else None, instance)
        if key in self._load_errors:
            raise EngineError(self._load_errors[key])
        if key not in self._pipes:
            self._make_room()
            try:
                self._pipes[key] = self._load(lane, key[1])
            except EngineError:
                raise
            except Exception as exc:
                what = f"draft {draft!r}" if lane == "speculative" else f"{lane} pipeline"
                self._load_errors[key] = f"could not load the {what}: {type(exc).__name__}: {exc}"
                raise EngineError(self._load_errors[key]) from exc
        self._pipes.move_to_end(key)
        return self._pipes[key]

    def _make_room(self) -> None:
        """Unload the least recently used pipelines other than the baseline until one more fits the bound."""
        while self.keep_pipelines and len(self._pipes) >= self.keep_pipelines:
            old = next((k for k in self._pipes if k != ("baseline", None, None)), None)
            if old is None:
                return
            del self._pipes[old]  # GenAI frees the compiled model and its KV cache with the last reference
            self._kv_seen.pop(old, None)  # a reloaded pipeline starts with an empty prefix cache

    def loaded(self) -> list[tuple]:
        """(lane, draft, instance) of the pipelines in memory, least recently used first."""
        return list(self._pipes)

    def memory(self) -> str:
        """This process's resident memory now and at its peak, for the UI."""
        return memory.describe()

    def _target(self) -> tuple:
        """LLMPipeline's leading arguments for the target. Each pipeline holds its own compiled target, but they
        all read the weights from one mapping of openvino_model.bin (copy-on-write, never written), so the
        CPU plugin, which runs int4/int8 weights in place, keeps one copy in memory for every lane: given a
        path, each pipeline mapped the file again and the process's RSS counted the weights once per lane."""
        path = Path(self.prepared.target)
        if self._shared is None:
            bin_, xml = path / "openvino_model.bin", path / "openvino_model.xml"
            if not self.share_weights or "NPU" in self.device or not (bin_.is_file() and xml.is_file()):
                self._shared = (str(path), )
            else:
                import numpy as np
                import openvino as ov

                weights = ov.Tensor(np.memmap(bin_, dtype=np.uint8, mode="c"), shared_memory=True)
                gen = path / "generation_config.json"
                self._shared = (xml.read_text(), weights, self.ov_genai.Tokenizer(str(path)),
                                self.device, self.ov_genai.GenerationConfig(str(gen)) if gen.is_file() else None)
        return self._shared if len(self._shared) > 1 else (self._shared[0], self.device)

    def _load(self, lane: str, draft: str | None):
        g = self.ov_genai
        target = self._target()
        if lane not in LANES:
            raise EngineError(f"unknown lane {lane!r}; use one of {', '.join(LANES)}")
        if lane == "baseline" and self.baseline_backend == "stateful":
            pipe = g.LLMPipeline(*target, ATTENTION_BACKEND="SDPA", **self.properties)
            self._pipe_settings[lane] = {"backend": "stateful", "scheduler": None}
            return pipe
        # Every other pipeline is paged with one and the same scheduler (request.SCHEDULER), passed explicitly;
        # except on an NPU, where GenAI has no paged backend and picks its own stateful pipelines.
        npu = "NPU" in self.device or "NPU" in self.draft_device
        sched = None if npu else self._scheduler_config()
        paged = {} if npu else {"scheduler_config": sched}
        if lane == "baseline":
            pipe = g.LLMPipeline(*target, **paged, **self.properties)
        elif lane == "prompt-lookup":
            pipe = g.LLMPipeline(*target, prompt_lookup=True, **paged, **self.properties)
        else:
            path = self.prepared.drafts.get(draft)
            if path is None:
                raise EngineError(f"unknown draft {draft!r}; this preset has: {', '.join(self.drafts) or 'none'}")
            # no scheduler_config here: GenAI gives a draft without one the main model's scheduler
            dm = g.draft_model(str(path), self.draft_device, **self.draft_properties)
            pipe = g.LLMPipeline(*target, draft_model=dm, **paged, **self.properties)
        self._pipe_settings[lane] = {"backend": "device default" if npu else "paged",
                                     "scheduler": None if npu else _jsonable({k: getattr(sched, k)
                                                                              for k in self.scheduler})}
        return pipe

    def _scheduler_config(self):
        cfg = self.ov_genai.SchedulerConfig()
        for name, value in self.scheduler.items():
            setattr(cfg, name, value)
        return cfg

    def warm_up(self, lanes: tuple[str, ...] = ("baseline", "speculative"), log=None, generate: bool = True) -> None:
        """Load the lanes' pipelines and (generate) run a few tokens, so a first visitor sees warm numbers: a
        pipeline's first steps take ~10 s on a 2-core CPU (the CPU plugin compiles its kernels for the shapes
        it meets), with or without OpenVINO's compiled-model cache, which therefore is not used."""
        for lane in lanes:
            if lane == "speculative" and not self.drafts:
                continue
            if log:
                log(f"{'warming up' if generate else 'loading'} the {lane} lane")
            try:
                if not generate:
                    with self._lock:
                        self.pipeline(lane, self.drafts[0] if lane == "speculative" else None)
                    continue
                self.generate(Request("Hello", lane=lane, max_new_tokens=4))
            except EngineError as exc:  # reported again, in its lane, when a visitor picks it
                if log:
                    log(f"{lane} lane unavailable: {exc}")

    def tokenizer(self):
        return self.pipeline("baseline").get_tokenizer()

    # ------------------------------------------------------------- requests

    def encode(self, req: Request) -> list[int]:
        tok = self.tokenizer()
        text = req.prompt
        if req.chat:
            extra = {"enable_thinking": req.enable_thinking} if self.prepared.thinking else None
            history = req.messages or [{"role": "user", "content": req.prompt}]
            text = tok.apply_chat_template(history, add_generation_prompt=True, extra_context=extra) + req.reply_prefix
        ids = tok.encode(text, add_special_tokens=not req.chat).input_ids.data[0].tolist()
        if self.max_context and len(ids) + req.max_new_tokens > self.max_context:
            raise EngineError(f"the prompt has {len(ids)} tokens; with {req.max_new_tokens} new tokens it exceeds "
                              f"the context of {self.max_context} tokens this app allows: shorten it")
        return ids

    def complete_many(self, prompts: list[str], max_new_tokens: int) -> list[str]:
        """Greedy chat answers to many prompts in one call of the baseline pipeline, which batches them
        (continuous batching): ~4x the tokens/s of one at a time on a 2-core CPU (48 prompts: 54 vs ~13 tok/s).
        For bulk text such as healing data; the race and the bench time one request at a time."""
        with self._lock:
            pipe = self.pipeline("baseline")
            tok = pipe.get_tokenizer()
            extra = {"enable_thinking": False} if self.prepared.thinking else None  # as a Request's default
            texts = [tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                             extra_context=extra) for p in prompts]
            cfg = self.ov_genai.GenerationConfig()
            cfg.max_new_tokens = max_new_tokens
            cfg.apply_chat_template = False  # applied above, as encode() does for a single request
            return list(pipe.generate(texts, cfg).texts)

    def start(self, request: Request) -> Run:
        """Validate the request now (errors raise here) and return a Run to iterate."""
        return Run(validate(request, self.drafts), self._drive)

    def generate(self, request: Request) -> RunResult:
        """Run to completion and return the result."""
        run = self.start(request)
        for _ in run:
            pass
        return run.result

    # ------------------------------------------------------------- the run

    def _drive(self, run: Run) -> Iterator[StepEvent]:
        import numpy as np
        import openvino as ov

        req = run.request
        with self._turn(run):
            pipe = self.pipeline(req.lane, req.draft, req.pipeline_instance)
            ids = self.encode(req)
            run.prompt_tokens = len(ids)
            key = (req.lane, req.draft, req.pipeline_instance)
            cached = metrics.cached_prefix_tokens(ids, self._kv_seen.get(key, ())) \
                if req.lane != "baseline" or self.baseline_backend == "paged" else 0
            cfg = generation_config(req)
            tok = pipe.get_tokenizer()
            t0 = time.monotonic()
            streamer = _Streamer(self.ov_genai, run._queue, run.cancel_event, t0)
            box: dict = {}

            def work():
                try:
                    box["res"] = pipe.generate(ov.Tensor(np.array([ids], dtype=np.int64)), cfg, streamer.impl)
                except BaseException as exc:  # surfaced to the consumer below
                    box["err"] = exc
                finally:
                    box["end"] = time.monotonic() - t0
                    run._queue.put(None)

            run._thread = threading.Thread(target=work, name=f"generate-{req.lane}", daemon=True)
            run._thread.start()
            try:
                yield from self._collect(run, req, ids, tok, box, cached)
            finally:  # the consumer may have gone away (Stop, page closed): stop the pipeline first
                if run.result is None:
                    run.cancel_event.set()
                run._thread.join()

    @contextlib.contextmanager
    def _turn(self, run: Run):
        """Hold the engine for one run. A background run (the booth's attract loop) never waits ahead of anyone:
        it starts only when nobody waits, and any other run cancels it at its next step and goes next."""
        if run.request.background:
            with self._state:
                if self._waiting or not self._lock.acquire(blocking=False):
                    raise EngineError("the engine is busy with another run")
                self._background = run.cancel_event
        else:
            with self._state:
                self._waiting += 1
                if self._background is not None:
                    self._background.set()
            try:
                self._lock.acquire()
            finally:
                with self._state:
                    self._waiting -= 1
        try:
            yield
        finally:
            with self._state:
                if run.request.background:
                    self._background = None
                self._lock.release()

    def busy(self) -> bool:
        """A run holds the engine or waits for it."""
        return self._lock.locked() or self._waiting > 0

    def _collect(self, run: Run, req: Request, ids: list[int], tok, box: dict,
                 cached: int = 0) -> Iterator[StepEvent]:
        decoder = IncrementalDecoder(tok.decode)
        times, counts, acc = [], [], []
        left = req.max_new_tokens  # a drafted request may write more than asked (request.MIN_DRAFTED_TOKENS)
        while (item := run._queue.get()) is not None:
            t, chunk = item
            chunk = chunk[:left]
            left -= len(chunk)
            if not chunk:
                continue
            accepted = max(len(chunk) - 1, 0) if req.lane != "baseline" else 0
            draft_text = decoder.push(chunk[:accepted]) if accepted else ""
            delta = draft_text + decoder.push(chunk[accepted:])
            times.append(t)
            counts.append(len(chunk))
            acc.append(accepted)
            yield StepEvent(len(times) - 1, list(chunk), delta, accepted, draft_text, t)
        run._thread.join()
        if "err" in box:
            raise EngineError(f"generation failed: {box['err']}") from box["err"]
        res, tokens = box["res"], decoder.tokens
        written = list(res.tokens[0])[:req.max_new_tokens]
        if written != tokens and not run.cancel_event.is_set():
            tokens = written  # trust the pipeline's answer over the stream
        run.result = summarize(req, ids, tokens, tok.decode(tokens), times, counts, acc, box["end"], res,
                               run.cancel_event.is_set(), self.target_ms_per_token, cached_tokens=cached)
        # the last generated token is never fed back, so its KV does not exist; keep the last few sequences
        seen = self._kv_seen.setdefault((req.lane, req.draft, req.pipeline_instance), [])
        seen.append(ids + tokens[:-1])
        del seen[:-KV_SEEN]
        if req.lane == "baseline" and not req.do_sample and run.result.target_ms_per_step:
            self.target_ms_per_token = run.result.target_ms_per_step


def _jsonable(scheduler: dict) -> dict:
    """The scheduler settings as a report shows them: the uncapped batch size as "unlimited"."""
    return {k: ("unlimited" if k == "max_num_batched_tokens" and v >= 2**63 else v) for k, v in scheduler.items()}


def _max_context(target: Path) -> int | None:
    """The target's context length from its config.json, when it has one."""
    try:
        cfg = json.loads((Path(target) / "config.json").read_text())
        return int(cfg.get("max_position_embeddings") or 0) or None
    except (OSError, ValueError):
        return None
