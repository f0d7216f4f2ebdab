"""Remove a block of decoder layers from a transformers causal LM and keep it loadable."""
from __future__ import annotations

from pathlib import Path


def cut_layers(model, start: int, n: int):
    """Drop layers start..start+n-1 in place, renumber the rest and fix the config."""
    import torch

    layers = model.model.layers
    total = len(layers)
    if n < 1 or start < 0 or start + n > total - 1:
        raise ValueError(f"cannot remove layers {start}..{start + n - 1} of {total} (the last layer stays)")
    keep = [i for i in range(total) if not start <= i < start + n]
    model.model.layers = torch.nn.ModuleList(layers[i] for i in keep)
    for new_idx, layer in enumerate(model.model.layers):
        if hasattr(layer, "self_attn") and hasattr(layer.self_attn, "layer_idx"):
            layer.self_attn.layer_idx = new_idx  # the KV cache is indexed by this
        if hasattr(layer, "layer_idx"):
            layer.layer_idx = new_idx
    cfg = model.config
    cfg.num_hidden_layers = len(keep)
    if getattr(cfg, "layer_types", None):
        cfg.layer_types = [cfg.layer_types[i] for i in keep]
    if getattr(cfg, "max_window_layers", None) is not None:
        cfg.max_window_layers = min(cfg.max_window_layers, len(keep))
    return model


def cut_checkpoint(src: Path, dest: Path, start: int, n: int) -> Path:
    """Load a checkpoint, cut the block and save a plain checkpoint that reloads with from_pretrained."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32)
    cut_layers(model, start, n)
    model.config.specdemo_pruned = {"removed_start": start, "removed_layers": n}
    model.save_pretrained(dest)
    try:
        AutoTokenizer.from_pretrained(src).save_pretrained(dest)
    except (OSError, ValueError):
        pass  # a checkpoint without tokenizer files: export uses the preset's shared tokenizer anyway
    return dest
