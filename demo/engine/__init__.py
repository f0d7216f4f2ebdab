"""The one engine every front end uses: Request in, a Run of per-step events out, a RunResult at the end."""
from demo.engine.engine import Engine
from demo.engine.request import (BASELINE_BACKENDS, DEFAULT_BASELINE_BACKEND, DEFAULT_MAX_NGRAM,
                                 DEFAULT_NUM_ASSISTANT_TOKENS, DEFAULT_PROPERTIES, LANES, SCHEDULER, SETTLE_SECONDS,
                                 EngineError, Request)
from demo.engine.result import RunResult
from demo.engine.stream import IncrementalDecoder, Run, StepEvent

__all__ = ["BASELINE_BACKENDS", "DEFAULT_BASELINE_BACKEND", "DEFAULT_MAX_NGRAM", "DEFAULT_NUM_ASSISTANT_TOKENS",
           "DEFAULT_PROPERTIES", "LANES", "SCHEDULER", "SETTLE_SECONDS", "Engine", "EngineError",
           "IncrementalDecoder", "Request", "Run", "RunResult", "StepEvent"]
