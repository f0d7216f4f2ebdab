"""Shared fixtures: tiny Qwen2/Qwen3 target+draft pairs exported through demo.prepare, built once per session."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import tiny  # noqa: E402

pytest_plugins = ["qwen3_standin"]  # the qwen3-8b preset's offline stand-in and its fixtures

from demo.catalog import Prepared  # noqa: E402
from demo.models import prepare  # noqa: E402


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", help="also run tests marked slow")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long-running test, skipped unless --slow is given")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def work(tmp_path_factory) -> Path:
    # SPECDEMO_TEST_WORK keeps the tiny models between local runs; CI always builds them afresh.
    keep = os.environ.get("SPECDEMO_TEST_WORK")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        return Path(keep)
    return tmp_path_factory.mktemp("work")


@pytest.fixture(scope="session")
def tokenizer_dir(work) -> Path:
    return tiny.extract_tokenizer(work / "qwen25-tokenizer")


def _pair(work: Path, tokenizer_dir: Path, arch: str) -> Prepared:
    # The draft has the target's weights but half its layers dropped would disagree too often;
    # the same seed and size gives a draft that agrees with the int4 target most of the time.
    target = tiny.build_tiny(work / f"{arch}-target", tokenizer_dir, arch, layers=4, seed=0)
    draft = tiny.build_tiny(work / f"{arch}-draft", tokenizer_dir, arch, layers=4, seed=0)
    preset = prepare.custom_preset(str(target), [f"{arch}-draft={draft}"])
    return prepare.prepare(preset, work / "cache")


@pytest.fixture(scope="session")
def qwen2_pair(work, tokenizer_dir) -> Prepared:
    return _pair(work, tokenizer_dir, "qwen2")


@pytest.fixture(scope="session")
def qwen3_pair(work, tokenizer_dir) -> Prepared:
    return _pair(work, tokenizer_dir, "qwen3")


@pytest.fixture(scope="session")
def engine(qwen2_pair):
    """One engine over the tiny Qwen2 pair, shared like the app shares it between views."""
    from demo.engine import Engine

    return Engine(qwen2_pair)


@pytest.fixture(scope="session")
def scripted_model():
    """A factory of smolagents Models that replay fixed replies (then a final_answer), so the real agent,
    executor and sandbox run model-written code of the test's choosing; the engine is not involved."""
    from smolagents.models import ChatMessage, ChatMessageStreamDelta, MessageRole, Model, TokenUsage

    class Scripted(Model):
        def __init__(self, replies):
            super().__init__(model_id="scripted")
            self.replies = list(replies)

        def generate(self, messages, stop_sequences=None, **kwargs):
            text = self.replies.pop(0) if self.replies else '<code>\nfinal_answer("out of script")\n</code>'
            for stop in stop_sequences or []:
                text = text.split(stop)[0] if stop else text
            return ChatMessage(role=MessageRole.ASSISTANT, content=text,
                               token_usage=TokenUsage(input_tokens=1, output_tokens=1))

        def generate_stream(self, messages, stop_sequences=None, **kwargs):
            msg = self.generate(messages, stop_sequences)
            yield ChatMessageStreamDelta(content=msg.content, token_usage=msg.token_usage)

    return Scripted
