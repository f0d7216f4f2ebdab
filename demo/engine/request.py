"""What a caller asks the engine for: the lanes, their defaults, a Request, its validation and GenerationConfig."""
from __future__ import annotations

from dataclasses import dataclass

LANES = ("baseline", "speculative", "prompt-lookup")
# 3: a 4-token verification costs what a 1-token step costs on the CPU plugin, 6 tokens cost ~1.2x, and chat
# answers rarely accept more than 3 (docs/performance.md, section 8)
DEFAULT_NUM_ASSISTANT_TOKENS = 3
DEFAULT_MAX_NGRAM = 3
# f32 compute and an f32 KV cache on every pipeline: measured fastest on a CPU without native bf16, and the
# only setting under which greedy speculative output matched the baseline token for token
# (docs/performance.md, sections 1 and 2).
DEFAULT_PROPERTIES = {"INFERENCE_PRECISION_HINT": "f32", "KV_CACHE_PRECISION": "f32"}
# The CPU plugin quantizes activations on the fly for int4/int8 weights, and rounds a one-token step differently
# from a step over two or more tokens. Every drafted step verifies >= 2 tokens, so at a near-tie the drafted
# output can leave the baseline's at the same token whatever the draft or k (docs/performance.md, section 2).
# Without it on the target ("exact", --exact) the lanes are bit-identical, ~17% slower on both sides. The draft
# keeps it: its rounding never reaches the output, since the target checks every token.
EXACT_PROPERTIES = {**DEFAULT_PROPERTIES, "DYNAMIC_QUANTIZATION_GROUP_SIZE": "0"}
# Seconds to let the CPU settle before timing a pipeline right after another one: on 2 cores the speculative
# lane run straight after the baseline was 8% slower than after a 2 s pause, which left the baseline as it
# was (docs/performance.md, 12.3). The race and the bench pause this long between lanes, untimed.
SETTLE_SECONDS = 2.0
# The baseline is what a user gets from LLMPipeline(target, "CPU") without a draft: the paged-attention
# (continuous batching) backend, the one every drafted lane runs on too. "stateful" (SDPA) stays selectable
# for comparison only: it caches no prompt prefixes, so next to a drafted lane it measures the backend too.
BASELINE_BACKENDS = ("paged", "stateful")
DEFAULT_BASELINE_BACKEND = "paged"
# The longest context (prompt + new tokens) one request may have. It sizes every paged pipeline's KV cache, so
# the app's memory has a ceiling: the race's prompts are ~100 tokens, an agent run's last step ~6k.
MAX_CONTEXT_TOKENS = 8192
# Tokens per KV block of the CPU plugin's paged attention (GenAI 2026.4); a GPU's is 16.
KV_BLOCK_TOKENS = {"CPU": 32, "GPU": 16}
# The scheduler of every paged pipeline (baseline, speculative, prompt lookup), passed explicitly so the lanes
# differ by the draft alone. GenAI's LLMPipeline picks prefix caching on, no cache size and no batch cap when
# none is given (utils::get_latency_oriented_scheduler_config in openvino.genai 2026.4): its KV cache then grows
# with the longest context seen and keeps every prefix block, and a long prompt is read in one step whose
# activations are as long as the prompt (docs/performance.md, section 20: 4.6 GB -> 18.7 GB after prompts of
# 1k-8.6k tokens through both lanes). Here three bounds, the same for every lane, so the baseline stays what a
# user gets without a draft:
SCHEDULER = {
    "enable_prefix_caching": True,  # keep prompt KV blocks between calls: a shared system prompt is read once
    "cache_size": 0,  # GB; unused: num_kv_blocks (scheduler() sets it per device) takes precedence
    # a long prompt is read 256 tokens per step (dynamic split-fuse), so its buffers stay those of 256 tokens:
    # against 512, 0.33 GB less after a 4k-token prompt per lane, its first token 5% (baseline) and 12% (drafted)
    # later; against no cap, ~2x later (docs/performance.md, section 20.1)
    "max_num_batched_tokens": 256,
    "dynamic_split_fuse": True,
}


MIN_DRAFTED_TOKENS = 4  # see generation_config


def scheduler(device: str, max_context: int = MAX_CONTEXT_TOKENS) -> dict:
    """SCHEDULER with a fixed KV cache of max_context tokens on `device` (num_kv_blocks, plus room for a drafted
    step's candidates): when full, prefix blocks are reused oldest first instead of the cache growing. A
    draft_model() given no scheduler of its own gets the main model's, so the same number of (smaller) blocks."""
    block = KV_BLOCK_TOKENS.get(device.split(".")[0], 16)
    return {**SCHEDULER, "num_kv_blocks": -(-max_context // block) + 4}


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
    # Runs with different instances never share a pipeline, hence never a prefix cache: the bench gives each
    # drafted lane its own, so that no lane finds the prompt that another lane with the same draft just read.
    pipeline_instance: str | None = None
    # the booth's attract loop: gives way to any other run, which cancels it at its next step (Engine._turn)
    background: bool = False

    @property
    def gamma(self) -> int | None:
        if self.lane == "baseline" or self.assistant_confidence_threshold:
            return None
        return self.num_assistant_tokens or DEFAULT_NUM_ASSISTANT_TOKENS



def validate(req: Request, drafts: list[str]) -> Request:
    """Check a request and fill in its defaults; errors are EngineErrors meant for the user."""
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
        if not drafts:
            raise EngineError("this preset has no draft model; use the baseline or prompt-lookup lane")
        req.draft = drafts[0]
    if req.lane != "speculative":
        req.draft = None
    if req.num_assistant_tokens is not None and req.num_assistant_tokens < 1:
        raise EngineError("num_assistant_tokens must be at least 1")
    if req.assistant_confidence_threshold is not None and not 0 < req.assistant_confidence_threshold < 1:
        raise EngineError("the confidence threshold must lie between 0 and 1")
    if req.assistant_confidence_threshold and req.lane != "speculative":
        raise EngineError("the confidence threshold applies to a draft model only")
    return req


def generation_config(req: Request):
    """The GenAI GenerationConfig for a validated request."""
    import openvino_genai as g

    cfg = g.GenerationConfig(max_new_tokens=req.max_new_tokens)
    if req.stop:
        cfg.stop_strings = set(req.stop)
    if req.do_sample:
        cfg.do_sample, cfg.temperature, cfg.top_p, cfg.rng_seed = True, req.temperature, req.top_p, req.seed
    if req.lane == "speculative":
        # GenAI never runs the draft of a request that ends within its first steps, yet keeps the draft's blocks
        # of that prompt in its prefix cache: the next request on that prefix had every candidate rejected
        # (acceptance 0; an agent step 48 s instead of 14). So a drafted request writes at least this many
        # tokens and the engine returns the ones asked for (greedy: the first tokens do not change).
        cfg.max_new_tokens = max(req.max_new_tokens, MIN_DRAFTED_TOKENS)
        if req.assistant_confidence_threshold:
            cfg.assistant_confidence_threshold = req.assistant_confidence_threshold
        else:
            cfg.num_assistant_tokens = req.gamma
    elif req.lane == "prompt-lookup":
        cfg.num_assistant_tokens = req.gamma
        cfg.max_ngram_size = DEFAULT_MAX_NGRAM
    return cfg
