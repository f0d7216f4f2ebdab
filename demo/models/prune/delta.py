"""The shipped healing delta of a pruned draft: a LoRA adapter (fp16 A and B of every adapted linear layer, a
few MB) and a recipe (base draft, cut, rank/alpha, SHA-256, the training command, agreement before/after).

Applying it: the base draft's checkpoint -> cut -> W += (B @ A) * alpha / rank, the same sum peft's
merge_and_unload computes, so the result equals the healed checkpoint that training saved.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from demo.models import PrepareError

ADAPTER = "adapter.safetensors"
RECIPE = "recipe.json"
TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")  # a decoder layer's linears
FFN_TARGETS = TARGETS[4:]
REPO = Path(__file__).resolve().parents[3]  # shipped deltas live in the repository (assets/drafts/<name>/)


def folder_path(folder: str | Path) -> Path:
    path = Path(folder).expanduser()
    return path if path.is_absolute() else REPO / path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def add_lora(model, rank: int, alpha: float, targets=TARGETS):
    """The model wrapped by peft with a LoRA adapter (B starts at zero, so the model starts as it was)."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=rank, lora_alpha=alpha, target_modules=list(targets), lora_dropout=0.0, bias="none")
    return get_peft_model(model, config)


def save_adapter(peft_model, folder: Path) -> Path:
    """Round the trained A and B to fp16 in place (so what training merges and measures is what ships) and save
    them by module name, e.g. model.layers.0.mlp.up_proj.lora_A."""
    import torch
    from safetensors.torch import save_file

    tensors = {}
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if ".lora_A." in name or ".lora_B." in name:
                p.copy_(p.to(torch.float16))
                key = name.removeprefix("base_model.model.").replace(".default.weight", "")
                tensors[key] = p.detach().to(torch.float16).contiguous()
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / ADAPTER))
    return folder / ADAPTER


def write_recipe(folder: Path, *, name: str, base: dict, cut: dict, lora: dict, command: str, heal: dict) -> dict:
    """recipe.json beside the adapter: what it was trained on and how, with the adapter's SHA-256."""
    adapter = folder / ADAPTER
    recipe = {"name": name, "base": base, "cut": cut, "lora": lora, "adapter": ADAPTER,
              "adapter_sha256": sha256(adapter), "adapter_bytes": adapter.stat().st_size, "command": command,
              "heal": heal, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (folder / RECIPE).write_text(json.dumps(recipe, indent=1) + "\n")
    return recipe


def load_recipe(folder: str | Path) -> dict:
    """The recipe, once the adapter it names is present with the SHA-256 it records."""
    folder = folder_path(folder)
    try:
        recipe = json.loads((folder / RECIPE).read_text())
        adapter, want, command = folder / recipe["adapter"], recipe["adapter_sha256"], recipe["command"]
    except OSError as exc:
        raise PrepareError(f"the draft delta folder {folder} has no readable {RECIPE} ({exc.strerror})") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise PrepareError(f"{folder / RECIPE} is not a draft delta recipe ({type(exc).__name__}: {exc})") from exc
    if not adapter.is_file():
        raise PrepareError(f"the LoRA adapter {adapter} is missing: restore it from the repository, or re-create it "
                           f"with `{command}`")
    got = sha256(adapter)
    if got != want:
        raise PrepareError(f"SHA-256 mismatch for {adapter}: got {got[:16]}..., {RECIPE} says {want[:16]}...; "
                           f"restore the file from the repository, or re-create it with `{command}`")
    return recipe


def check_base(recipe: dict, gguf_sha256: str | None) -> None:
    """The adapter fits only the weights it was trained on: a different base GGUF is refused by name."""
    want = recipe.get("base", {}).get("gguf_sha256")
    if want and gguf_sha256 and want != gguf_sha256:
        raise PrepareError(f"the delta {recipe['name']} was trained on the GGUF with sha256 {want[:16]}..., but its "
                           f"base draft here has {gguf_sha256[:16]}...: re-create it with `{recipe['command']}`")


def merge(model, tensors: dict, scale: float) -> None:
    """W += (B @ A) * scale for every adapted layer, in float32, as peft's merge does."""
    import torch

    modules = dict(model.named_modules())
    with torch.no_grad():
        for key in sorted(k for k in tensors if k.endswith(".lora_A")):
            name = key.removesuffix(".lora_A")
            a, b = tensors[key].float(), tensors.get(f"{name}.lora_B")
            layer = modules.get(name)
            if b is None or layer is None or tuple(layer.weight.shape) != (b.shape[0], a.shape[1]):
                raise PrepareError(f"the adapter's {name} does not fit the cut checkpoint")
            layer.weight += (b.float() @ a) * scale


def apply(base_dir: Path, folder: str | Path, dest: Path) -> Path:
    """The base draft's checkpoint cut as the recipe says, the adapter merged, saved at dest for export."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from demo.models.prune.cut import cut_layers

    recipe = load_recipe(folder)
    start, n = recipe["cut"]["start"], recipe["cut"]["n"]
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    try:
        cut_layers(model, start, n)
    except ValueError as exc:
        raise PrepareError(f"the delta {recipe['name']} does not fit {base_dir}: {exc}") from exc
    model.config.specdemo_pruned = {"removed_start": start, "removed_layers": n}
    tensors = load_file(str(folder_path(folder) / recipe["adapter"]))
    merge(model, tensors, recipe["lora"]["alpha"] / recipe["lora"]["rank"])
    model.save_pretrained(dest)
    return dest
