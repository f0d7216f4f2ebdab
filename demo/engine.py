"""One streaming generation API over OpenVINO GenAI for three lanes: baseline, speculative, prompt-lookup.

    engine = Engine(prepared)
    run = engine.start(Request("Write a quicksort", lane="speculative"))
    for event in run:            # StepEvent per target step
        print(event.text, end="")
    print(run.result.tokens_per_second)
"""
from __future__ import annotations

import json
import queue
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

from demo import metrics
from demo.prepare import Prepared

LANES = ("baseline", "speculative", "prompt-lookup")
# 3: a 4-token verification costs what a 1-token step costs on the CPU plugin, 6 tokens cost ~1.2x, and chat
# answers rarely accept more than 3 (docs/performance.md, section 8)
DEFAULT_NUM_ASSISTANT_TOKENS = 3
DEFAULT_MAX_NGRAM = 3
# f32 compute and an f32 KV cache on every pipeline: measured fastest on a CPU without native bf16, and the
# only setting under which greedy speculative output matched the baseline token for token
# (docs/performance.md, sections 1 and 2).
DEFAULT_PROPERTIES = {"INFERENCE_PRECISION_HINT": "f32", "KV_CACHE_PRECISION": "f32"}
# Seconds to let the CPU settle before timing a pipeline right after another one: on 2 cores the speculative
# lane run straight after the baseline was 8% slower than after a 2 s pause, which left the baseline as it
# was (docs/performance.md, 12.3). The race and the bench pause this long between lanes, untimed.
SETTLE_SECONDS = 2.0


class EngineError(Exception):
    """Bad request or a model that cannot serve it; the message is meant for the user."""


@dataclass
class Request:
    prompt: str
    lane: str = "baseline"
    draft: str | None = None  # speculative lane: draft name, default the preset's first
    num_assistant_tokens: int | None = None
    assistant_confidence_threshold: float | None = None
    max_new_tokens: int = 128
    enable_thinking: bool = False
    do_sample: bool = False  # baseline lane only
    temperature: float = 0.7
    top_p: float = 0.9
    seed: int = 42
    chat: bool = True  # apply the chat template
    messages: list[dict] | None = None  # a whole conversation instead of `prompt` (the agent)
    stop: list[str] | None = None  # stop strings; the text is cut before the earliest one
    reply_prefix: str = ""  # chat: the start of the assistant's reply, written for the model to continue

    @property
    def gamma(self) -> int | None:
        if self.lane == "baseline" or self.assistant_confidence_threshold:
            return None
        return self.num_assistant_tokens or DEFAULT_NUM_ASSISTANT_TOKENS


@dataclass
class StepEvent:
    """What one target step produced. The last token of a speculative step is the target's own."""

    index: int
    tokens: list[int]
    text: str  # decoded text added by this step (may lag one step on a split multi-byte character)
    accepted: int  # accepted draft tokens in this step
    draft_text: str  # the part of `text` that came from accepted draft tokens (a prefix of it)
    t: float  # seconds since the run started (monotonic clock)


@dataclass
class RunResult:
    lane: str
    draft: str | None
    prompt_tokens: int
    tokens: list[int]
    text: str
    steps: int
    seconds: float
    ttft_ms: float | None
    tpot_ms: float | None
    tokens_per_second: float | None
    tokens_per_second_after_first: float | None
    tokens_per_step: float | None
    accepted: int | None
    drafted: int | None
    acceptance_rate: float | None
    gamma: float | None
    alpha: float | None
    draft_ms_per_token: float | None
    target_ms_per_step: float | None
    target_ms_per_token: float | None  # ordinary decode step cost, from a baseline run of this engine
    c: float | None
    theoretical_speedup: float | None
    cancelled: bool
    sampled: bool
    step_times: list[float] = field(default_factory=list)
    step_counts: list[int] = field(default_factory=list)
    step_accepted: list[int] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


class IncrementalDecoder:
    """Turns a growing token list into text deltas, holding back a multi-byte character split across steps."""

    def __init__(self, decode):
        self.decode = decode
        self.tokens: list[int] = []
        self.emitted = ""

    def push(self, tokens: list[int]) -> str:
        self.tokens.extend(tokens)
        full = self.decode(self.tokens)
        if full.endswith("\ufffd") or not full.startswith(self.emitted):
            return ""  # incomplete UTF-8 sequence: wait for the next step
        delta, self.emitted = full[len(self.emitted):], full
        return delta


class _Streamer:
    """Collects per-step token chunks from the pipeline into a queue and honours cancellation."""

    def __init__(self, ov_genai, out: queue.Queue, cancel: threading.Event, t0: float):
        class Impl(ov_genai.StreamerBase):
            def write(inner, token):
                out.put((time.monotonic() - t0, token if isinstance(token, list) else [token]))
                return ov_genai.StreamingStatus.CANCEL if cancel.is_set() else ov_genai.StreamingStatus.RUNNING

            def end(inner):
                pass

        self.impl = Impl()


class Run:
    """A generation in a background thread; iterate for StepEvents, then read `result`."""

    def __init__(self, engine: "Engine", request: Request):
        self.engine, self.request = engine, request
        self.cancel_event = threading.Event()
        self.result: RunResult | None = None
        self.prompt_tokens: int | None = None  # set once the prompt is encoded
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None

    def cancel(self) -> None:
        self.cancel_event.set()

    def __iter__(self) -> Iterator[StepEvent]:
        return self.engine._drive(self)


class Engine:
    """Pipelines of one prepared preset, created on first use and kept; one generation at a time."""

    def __init__(self, prepared: Prepared, device: str = "CPU", draft_device: str | None = None,
                 properties: dict | None = None, draft_properties: dict | None = None,
                 baseline_backend: str = "stateful"):
        import openvino_genai

        self.ov_genai = openvino_genai
        self.prepared = prepared
        self.device = device
        self.draft_device = draft_device or device
        base = DEFAULT_PROPERTIES if device == "CPU" else {}
        self.properties = dict(base if properties is None else properties)
        self.draft_properties = dict(self.properties if draft_properties is None else draft_properties)
        self.baseline_backend = baseline_backend
        self._pipes: dict[tuple, object] = {}
        self._load_errors: dict[tuple, str] = {}
        self._lock = threading.Lock()
        self.target_ms_per_token: float | None = None  # updated by every baseline run
        self.max_context = _max_context(prepared.target)

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
                "properties": self.properties, "draft_properties": self.draft_properties}

    def describe(self) -> str:
        return f"{self.prepared.preset} on {self.device}" + (
            f" (draft on {self.draft_device})" if self.draft_device != self.device else "")

    def pipeline(self, lane: str, draft: str | None = None):
        """The pipeline for a lane, loaded once; a load failure is remembered and re-raised clearly."""
        key = (lane, draft if lane == "speculative" else None)
        if key in self._load_errors:
            raise EngineError(self._load_errors[key])
        if key not in self._pipes:
            try:
                self._pipes[key] = self._load(lane, key[1])
            except EngineError:
                raise
            except Exception as exc:
                what = f"draft {draft!r}" if lane == "speculative" else f"{lane} pipeline"
                self._load_errors[key] = f"could not load the {what}: {type(exc).__name__}: {exc}"
                raise EngineError(self._load_errors[key]) from exc
        return self._pipes[key]

    def _load(self, lane: str, draft: str | None):
        g = self.ov_genai
        target = str(self.prepared.target)
        if lane == "baseline":
            backend = "SDPA" if self.baseline_backend == "stateful" else "PA"
            return g.LLMPipeline(target, self.device, ATTENTION_BACKEND=backend, **self.properties)
        if lane == "prompt-lookup":
            return g.LLMPipeline(target, self.device, prompt_lookup=True, **self.properties)
        if lane == "speculative":
            path = self.prepared.drafts.get(draft)
            if path is None:
                raise EngineError(f"unknown draft {draft!r}; this preset has: {', '.join(self.drafts) or 'none'}")
            dm = g.draft_model(str(path), self.draft_device, **self.draft_properties)
            return g.LLMPipeline(target, self.device, draft_model=dm, **self.properties)
        raise EngineError(f"unknown lane {lane!r}; use one of {', '.join(LANES)}")

    def warm_up(self, lanes: tuple[str, ...] = ("baseline", "speculative"), log=None) -> None:
        """Load the lanes' pipelines and run a few tokens, so a first visitor sees warm numbers."""
        for lane in lanes:
            if lane == "speculative" and not self.drafts:
                continue
            if log:
                log(f"warming up the {lane} lane")
            try:
                self.generate(Request("Hello", lane=lane, max_new_tokens=4))
            except EngineError as exc:  # reported again, in its lane, when a visitor picks it
                if log:
                    log(f"{lane} lane unavailable: {exc}")

    def tokenizer(self):
        return self.pipeline("baseline").get_tokenizer()

    # ------------------------------------------------------------- requests

    def _normalize(self, req: Request) -> Request:
        if req.messages:
            req.prompt = req.prompt or req.messages[-1].get("content", "")
        if not req.prompt or not req.prompt.strip():
            raise EngineError("the prompt is empty: type something to generate from")
        if req.lane not in LANES:
            raise EngineError(f"unknown lane {req.lane!r}; use one of {', '.join(LANES)}")
        if req.max_new_tokens < 1:
            raise EngineError("max new tokens must be at least 1")
        if req.do_sample and req.lane != "baseline":
            raise EngineError("sampling is allowed on the baseline lane only (OpenVINO GenAI issue 4190: "
                              "speculative decoding with sampling is unreliable); use greedy")
        if req.lane == "speculative" and req.draft is None:
            if not self.drafts:
                raise EngineError("this preset has no draft model; use the baseline or prompt-lookup lane")
            req.draft = self.drafts[0]
        if req.lane != "speculative":
            req.draft = None
        if req.num_assistant_tokens is not None and req.num_assistant_tokens < 1:
            raise EngineError("num_assistant_tokens must be at least 1")
        if req.assistant_confidence_threshold is not None and not 0 < req.assistant_confidence_threshold < 1:
            raise EngineError("the confidence threshold must lie between 0 and 1")
        if req.assistant_confidence_threshold and req.lane != "speculative":
            raise EngineError("the confidence threshold applies to a draft model only")
        return req

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
                              f"the model's context of {self.max_context} tokens: shorten it")
        return ids

    def config(self, req: Request):
        g = self.ov_genai
        cfg = g.GenerationConfig(max_new_tokens=req.max_new_tokens)
        if req.stop:
            cfg.stop_strings = set(req.stop)
        if req.do_sample:
            cfg.do_sample, cfg.temperature, cfg.top_p, cfg.rng_seed = True, req.temperature, req.top_p, req.seed
        if req.lane == "speculative":
            if req.assistant_confidence_threshold:
                cfg.assistant_confidence_threshold = req.assistant_confidence_threshold
            else:
                cfg.num_assistant_tokens = req.gamma
        elif req.lane == "prompt-lookup":
            cfg.num_assistant_tokens = req.gamma
            cfg.max_ngram_size = DEFAULT_MAX_NGRAM
        return cfg

    def start(self, request: Request) -> Run:
        """Validate the request now (errors raise here) and return a Run to iterate."""
        return Run(self, self._normalize(request))

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
        with self._lock:
            pipe = self.pipeline(req.lane, req.draft)
            ids = self.encode(req)
            run.prompt_tokens = len(ids)
            cfg = self.config(req)
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
                yield from self._collect(run, req, ids, tok, box)
            finally:  # the consumer may have gone away (Stop, page closed): stop the pipeline first
                if run.result is None:
                    run.cancel_event.set()
                run._thread.join()

    def _collect(self, run: Run, req: Request, ids: list[int], tok, box: dict) -> Iterator[StepEvent]:
        decoder = IncrementalDecoder(tok.decode)
        times, counts, acc = [], [], []
        while (item := run._queue.get()) is not None:
            t, chunk = item
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
        if list(res.tokens[0]) != tokens and not run.cancel_event.is_set():
            tokens = list(res.tokens[0])  # trust the pipeline's answer over the stream
        run.result = self._result(req, ids, tokens, tok.decode(tokens), times, counts, acc, box["end"],
                                  res, run.cancel_event.is_set())

    def _result(self, req, ids, tokens, text, times, counts, acc, seconds, res, cancelled) -> RunResult:
        n, steps = len(tokens), len(times)
        accepted = drafted = draft_ms = target_step_ms = None
        gamma = alpha = theory = c = None
        ext = getattr(res, "extended_perf_metrics", None)
        raw_main = res.perf_metrics.raw_metrics
        if req.lane == "baseline":
            target_step_ms = _decode_step_ms(raw_main)
            if target_step_ms and not req.do_sample:
                self.target_ms_per_token = target_step_ms
        else:
            accepted = sum(acc)
            if ext is not None and hasattr(ext, "get_num_accepted_tokens"):
                # GenAI's own pair, so accepted <= drafted holds; it leaves out the last step when
                # max_new_tokens cuts it, so it can be lower than the per-step counts the UI colours.
                accepted = int(ext.get_num_accepted_tokens())
                drafted = int(ext.get_num_draft_tokens())
                draft_us = list(ext.draft_model_metrics.raw_metrics.m_durations)
                draft_n = int(ext.draft_model_metrics.get_num_generated_tokens())
                target_step_ms = _decode_step_ms(ext.main_model_metrics.raw_metrics)
                if draft_us and draft_n:
                    draft_ms = sum(draft_us[1:]) / 1000.0 / max(draft_n - 1, 1)
            else:  # prompt lookup reports no drafted count: steps without an n-gram match draft nothing
                target_step_ms = _decode_step_ms(raw_main)
            gamma = req.gamma
            if gamma is None and steps > 1 and drafted:  # confidence threshold: mean drafted per step
                gamma = drafted / (steps - 1)
            tps = metrics.tokens_per_step(n, steps)
            alpha = metrics.alpha_from_tokens_per_step(tps, gamma) if gamma else None
            # n-gram lookup in the prompt costs next to nothing next to a model step
            c = 0.0 if req.lane == "prompt-lookup" else metrics.cost_ratio(draft_ms, self.target_ms_per_token)
            theory = metrics.theoretical_speedup(alpha, gamma or 0, c)
        return RunResult(
            lane=req.lane, draft=req.draft, prompt_tokens=len(ids), tokens=tokens, text=text, steps=steps,
            seconds=seconds,
            ttft_ms=metrics.ttft_ms(0.0, times[0]) if times else None,
            tpot_ms=metrics.tpot_ms(times, n),
            tokens_per_second=metrics.tokens_per_second(n, seconds),
            tokens_per_second_after_first=metrics.tokens_per_second_after_first(times, n),
            tokens_per_step=metrics.tokens_per_step(n, steps),
            accepted=accepted, drafted=drafted, acceptance_rate=metrics.acceptance_rate(accepted or 0, drafted or 0),
            gamma=gamma, alpha=alpha, draft_ms_per_token=draft_ms, target_ms_per_step=target_step_ms,
            target_ms_per_token=self.target_ms_per_token, c=c, theoretical_speedup=theory,
            cancelled=cancelled, sampled=req.do_sample,
            step_times=times, step_counts=counts, step_accepted=acc)


def _decode_step_ms(raw) -> float | None:
    """Mean duration of a model's steps after the first (prefill) one, in ms, from GenAI's raw metrics."""
    step_us = list(raw.m_durations)[1:]
    return metrics.mean(step_us) / 1000.0 if step_us else None


def _max_context(target: Path) -> int | None:
    """The target's context length from its config.json, when it has one."""
    try:
        cfg = json.loads((Path(target) / "config.json").read_text())
        return int(cfg.get("max_position_embeddings") or 0) or None
    except (OSError, ValueError):
        return None
