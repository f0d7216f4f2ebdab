"""Get, verify, convert and cache the OpenVINO IR folders of a preset.

python -m demo.prepare [--preset NAME | --target SRC [--draft NAME=SRC ...]] [--cache-dir DIR] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from demo import catalog
from demo.catalog import DeltaSource, GGUFSource, ModelSpec, Prepared, Preset
from demo.models import PrepareError
from demo.models.cache import (MANIFEST, check_disk, dir_fingerprint, is_cached, is_ir_folder, read_manifest,
                               registered_drafts, replace_atomically)
from demo.models.convert import (assemble_gguf, estimate_work_bytes, export_ir, gguf_to_checkpoint,
                                 install_tokenizer, log, write_tokenizer)

# Bump when the conversion recipe changes, so old caches are rebuilt.
RECIPE = 2


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
    if is_cached(out, key):
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
    if is_cached(final, key):
        return final
    convert_model(spec, path, final, key, tokenizer, workdir)
    return final


def prepare(preset: Preset, cache_dir: Path | None = None) -> Prepared:
    """Everything the engine needs for a preset, from cache when possible."""
    root = catalog.cache_root(cache_dir)
    preset_dir = root / preset.name
    # made from another draft after it: a trimmed head (from its IR), a shipped delta (from its checkpoint)
    deltas = [d for d in preset.drafts if isinstance(d.source, DeltaSource) and not d.trim_head_of]
    specs = (preset.target, *(d for d in preset.drafts if not d.trim_head_of and d not in deltas))
    paths = {}
    for spec in specs:
        paths[spec.name] = None if isinstance(spec.source, GGUFSource) else resolve_local_or_hub(str(spec.source))
    preset_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".work-", dir=preset_dir) as work:
        workdir = Path(work)
        needs_convert = [s for s in specs if paths[s.name] is None or not is_ir_folder(paths[s.name])]
        tokenizer = None
        if needs_convert or deltas:
            tokenizer = shared_tokenizer(preset_dir, preset.target, paths[preset.target.name], workdir)
        out = {s.name: prepare_model(s, preset_dir, tokenizer, workdir, paths[s.name]) for s in specs}
        for d in deltas:
            out[d.name] = prepare_delta(d, preset, preset_dir, tokenizer, workdir, paths)
    for d in preset.drafts:
        if d.trim_head_of:
            out[d.name] = prepare_trimmed(d, preset_dir, out[d.trim_head_of])
    drafts = {d.name: out[d.name] for d in preset.drafts}
    drafts.update(registered_drafts(preset_dir))
    return Prepared(preset.name, out[preset.target.name], drafts, thinking=preset.thinking,
                    target_name=preset.target.name)


def prepare_delta(spec: ModelSpec, preset: Preset, preset_dir: Path, tokenizer: Path, workdir: Path,
                  paths: dict) -> Path:
    """A pruned draft from its base draft's checkpoint and a shipped LoRA delta (demo.models.prune.delta),
    rebuilt when the base, the adapter or the weight format changes. The adapter's SHA-256 is checked on every
    run (a few MB), so a damaged checkout is named even when the IR is cached."""
    from demo.models.prune import delta

    src = spec.source
    base = next((d for d in preset.drafts if d.name == src.base and d.name in paths), None)
    if base is None:
        raise PrepareError(f"{spec.name}: its base {src.base!r} is not a converted draft of preset {preset.name}")
    recipe = delta.load_recipe(src.folder)
    delta.check_base(recipe, base.source.sha256 if isinstance(base.source, GGUFSource) else None)
    final = preset_dir / spec.name
    key = {**source_key(base, paths[base.name]), "weight_format": spec.weight_format,
           "delta": recipe["adapter_sha256"], "cut": recipe["cut"]}
    if is_cached(final, key):
        return final
    cut = recipe["cut"]
    log(f"{spec.name}: {base.name} without layers {cut['start']}..{cut['start'] + cut['n'] - 1}, LoRA delta merged")
    if isinstance(base.source, GGUFSource):
        hf = workdir / f"hf-{base.name}"  # already there when the base draft was converted in this run
        if not (hf / "config.json").exists():
            gguf_to_checkpoint(base.source, workdir, hf)
    elif is_ir_folder(paths[base.name]):
        raise PrepareError(f"{spec.name}: its base {base.name} is an OpenVINO IR; the delta needs its checkpoint")
    else:
        hf = paths[base.name]
    try:
        merged = delta.apply(hf, src.folder, workdir / f"hf-{spec.name}")
    except PrepareError:
        raise
    except Exception as exc:  # an unreadable adapter or checkpoint
        raise PrepareError(f"applying the delta {src.folder} to {base.name} failed "
                           f"({type(exc).__name__}: {exc})") from exc
    convert_model(ModelSpec(spec.name, str(merged), spec.weight_format), merged, final, key, tokenizer, workdir)
    return final


def prepare_trimmed(spec: ModelSpec, preset_dir: Path, base: Path) -> Path:
    """A draft made from another by trimming its vocabulary head (demo.vocab_trim), redone when the base changes."""
    from demo.models import vocab_trim

    final = preset_dir / spec.name
    key = {"base": (read_manifest(base) or {}).get("key") or dir_fingerprint(base), "trim": vocab_trim.RECIPE}
    if is_cached(final, key):
        return final
    t0 = time.monotonic()
    log(f"{spec.name}: trimming the vocabulary head of {base.name}")
    keep = vocab_trim.default_keep(preset_dir / "tokenizer")
    vocab_trim.trim_draft(base, final, keep, manifest={"name": spec.name, "key": key, "kept": len(keep)})
    log(f"{spec.name}: ready in {time.monotonic() - t0:.0f} s, {len(keep)} head rows kept")
    return final


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
