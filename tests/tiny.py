"""Tiny random-weight Qwen2/Qwen3 checkpoints with the real Qwen2.5 tokenizer, built offline for tests."""
from __future__ import annotations

from pathlib import Path

from demo import catalog
from demo.models import convert

SCALE = 8.0


def extract_tokenizer(dest: Path) -> Path:
    """The Qwen2.5 tokenizer read from the installed 0.5B GGUF part packages (no hub)."""
    from transformers import AutoTokenizer

    if (dest / "tokenizer.json").exists():
        return dest
    gguf = convert.assemble_gguf(catalog.QWEN25_CODER_05B_GGUF, dest.parent / "gguf")
    AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(dest)
    gguf.unlink()
    return dest


def build_tiny(dest: Path, tokenizer_dir: Path, arch: str = "qwen2", layers: int = 4, seed: int = 0) -> Path:
    """Save a random-weight causal LM of `arch` with `layers` layers and the given tokenizer."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    common = dict(vocab_size=len(tok), hidden_size=128, intermediate_size=256, num_hidden_layers=layers,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=8192,
                  tie_word_embeddings=False, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    if arch == "qwen2":
        config, cls = Qwen2Config(**common), Qwen2ForCausalLM
    elif arch == "qwen3":
        config, cls = Qwen3Config(head_dim=32, **common), Qwen3ForCausalLM
    else:
        raise ValueError(arch)
    torch.manual_seed(seed)
    model = cls(config).eval()
    # Sharper logits than the default init so greedy decoding has clear winners.
    with torch.no_grad():
        model.get_input_embeddings().weight.mul_(8.0)
    model.save_pretrained(dest)
    tok.save_pretrained(dest)
    return dest
