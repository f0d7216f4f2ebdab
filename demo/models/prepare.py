"""Get, verify, convert and cache the OpenVINO IR folders of a preset.

python -m demo.prepare [--preset NAME | --target SRC [--draft NAME=SRC ...]] [--all] [--cache-dir DIR] [--json]

By default only what the app starts with: the target, the preset's default draft and the draft it is made from.
The other drafts are prepared on first selection in the app (OnDemand), or all at once with --all.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
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


def resolve_cached(source: str) -> Path | None:
    """A local folder or a hub repository already in the Hugging Face cache, else None (nothing downloaded)."""
    path = Path(source).expanduser()
    if path.is_dir():
        return path.resolve()
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(source, local_files_only=True))
    except Exception:
        return None


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
    from importlib.metadata import version

    import openvino

    src = spec.source
    ident = {"gguf_sha256": src.sha256} if isinstance(src, GGUFSource) else {"dir": dir_fingerprint(path)}
    # the installed distribution's version: importing optimum.intel for it costs ~2 s of every restart
    return {**ident, "weight_format": spec.weight_format, "recipe": RECIPE,
            "openvino": openvino.__version__, "optimum_intel": version("optimum-intel")}


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
                  path: Path | None, build: bool = True) -> Path | None:
    """Return a ready IR folder for one model, converting only when the cache key changed; with build False,
    None instead of converting."""
    if path is not None and is_ir_folder(path):
        return path  # already OpenVINO IR: used as it is
    final = preset_dir / spec.name
    key = source_key(spec, path)
    if is_cached(final, key):
        return final
    if not build:
        return None
    convert_model(spec, path, final, key, tokenizer, workdir)
    return final


def wanted_drafts(preset: Preset, drafts: str | Iterable[str] = "default") -> set[str]:
    """The drafts to build: "all", "default" (the preset's first) or given names, each with the drafts it is
    made from (a trimmed head needs its base draft's IR)."""
    by_name = {d.name: d for d in preset.drafts}
    if drafts == "all":
        return set(by_name)
    names = ([preset.default_draft] if preset.default_draft else []) if drafts == "default" else list(drafts)
    out: set[str] = set()
    for name in names:
        if name not in by_name:
            raise PrepareError(f"preset {preset.name} has no draft {name!r}; it has: {', '.join(by_name) or 'none'}")
        while name and name not in out:
            out.add(name)
            name = by_name[name].trim_head_of
    return out


def prepare(preset: Preset, cache_dir: Path | None = None, drafts: str | Iterable[str] = "all") -> Prepared:
    """The target and the wanted drafts (wanted_drafts), from cache when possible, built when not; other drafts
    only when already in the cache (OnDemand lists the rest)."""
    wanted = wanted_drafts(preset, drafts)
    root = catalog.cache_root(cache_dir)
    preset_dir = root / preset.name
    # made from another draft after it: a trimmed head (from its IR), a shipped delta (from its checkpoint)
    deltas = [d for d in preset.drafts if isinstance(d.source, DeltaSource) and not d.trim_head_of]
    specs = [preset.target, *(d for d in preset.drafts if not d.trim_head_of and d not in deltas)]
    build = {preset.target.name, *wanted}.__contains__
    paths = {}
    for spec in list(specs):
        if isinstance(spec.source, GGUFSource):
            paths[spec.name] = None
        elif build(spec.name):
            paths[spec.name] = resolve_local_or_hub(str(spec.source))
        elif (found := resolve_cached(str(spec.source))) is not None:
            paths[spec.name] = found
        else:
            specs.remove(spec)  # not wanted and nothing local: left for later
    preset_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".work-", dir=preset_dir) as work:
        workdir = Path(work)
        needs_convert = [s for s in specs if build(s.name) and (paths[s.name] is None or
                                                                not is_ir_folder(paths[s.name]))]
        needs_delta = [d for d in deltas if build(d.name)]
        tokenizer = None
        if needs_convert or needs_delta:
            tokenizer = shared_tokenizer(preset_dir, preset.target, paths[preset.target.name], workdir)
        out = {s.name: prepare_model(s, preset_dir, tokenizer, workdir, paths[s.name], build(s.name))
               for s in specs}
        for d in deltas:
            out[d.name] = prepare_delta(d, preset, preset_dir, tokenizer, workdir, paths, build(d.name))
    for d in preset.drafts:
        if d.trim_head_of and out.get(d.trim_head_of):
            out[d.name] = prepare_trimmed(d, preset_dir, out[d.trim_head_of], build(d.name))
    drafts = {d.name: out[d.name] for d in preset.drafts if out.get(d.name)}
    drafts.update(registered_drafts(preset_dir))
    return Prepared(preset.name, out[preset.target.name], drafts, thinking=preset.thinking,
                    target_name=preset.target.name)


class OnDemand:
    """The drafts of a preset not prepared at start: listed in the app, each built on its first selection."""

    def __init__(self, preset: Preset | None, cache_dir: Path | None, ready: Prepared):
        self.preset, self.cache_dir, self.ready = preset, cache_dir, ready
        self._lock = threading.Lock()  # one build at a time; a second request for the same draft finds it cached

    def pending(self) -> list[str]:
        if self.preset is None:
            return []
        return [d.name for d in self.preset.drafts if d.name not in self.ready.drafts]

    def prepare(self, name: str) -> Path:
        """Build one draft (and what it is made from), add it to the Prepared the engine reads, return its path."""
        if name in self.ready.drafts:
            return self.ready.drafts[name]
        if name not in self.pending():
            raise PrepareError(f"unknown draft {name!r}")
        with self._lock:
            got = prepare(self.preset, self.cache_dir, drafts=[name])
            for new, path in got.drafts.items():
                self.ready.drafts.setdefault(new, path)
        return self.ready.drafts[name]


def prepare_delta(spec: ModelSpec, preset: Preset, preset_dir: Path, tokenizer: Path, workdir: Path,
                  paths: dict, build: bool = True) -> Path | None:
    """A pruned draft from its base draft's checkpoint and a shipped LoRA delta (demo.models.prune.delta),
    rebuilt when the base, the adapter or the weight format changes. The adapter's SHA-256 is checked on every
    run (a few MB), so a damaged checkout is named even when the IR is cached."""
    from demo.models.prune import delta

    src = spec.source
    base = next((d for d in preset.drafts if d.name == src.base and d.name in paths), None)
    if base is None:
        if not build:
            return None  # its base is not local either: left for later
        raise PrepareError(f"{spec.name}: its base {src.base!r} is not a converted draft of preset {preset.name}")
    recipe = delta.load_recipe(src.folder)
    delta.check_base(recipe, base.source.sha256 if isinstance(base.source, GGUFSource) else None)
    final = preset_dir / spec.name
    key = {**source_key(base, paths[base.name]), "weight_format": spec.weight_format,
           "delta": recipe["adapter_sha256"], "cut": recipe["cut"]}
    if is_cached(final, key):
        return final
    if not build:
        return None
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


def prepare_trimmed(spec: ModelSpec, preset_dir: Path, base: Path, build: bool = True) -> Path | None:
    """A draft made from another by trimming its vocabulary head (demo.vocab_trim), redone when the base changes."""
    from demo.models import vocab_trim

    final = preset_dir / spec.name
    key = {"base": (read_manifest(base) or {}).get("key") or dir_fingerprint(base), "trim": vocab_trim.RECIPE}
    if is_cached(final, key):
        return final
    if not build:
        return None
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


def add_arguments(parser: argparse.ArgumentParser, lazy: bool = False) -> None:
    """The preset flags; lazy (the app, demo.prepare): only the default draft unless --all."""
    parser.add_argument("--preset", help=f"one of {', '.join(catalog.PRESETS)} (default: chosen automatically)")
    parser.add_argument("--target", help="your own target: an OpenVINO IR or transformers folder, or a hub id")
    parser.add_argument("--draft", action="append", default=[], metavar="NAME=SRC",
                        help="a draft for --target (repeatable)")
    parser.add_argument("--cache-dir", help=f"model cache (default ${catalog.CACHE_ENV} or ~/.cache/{catalog.APP_NAME})")
    if lazy:
        parser.add_argument("--all", action="store_true",
                            help="prepare every draft of the preset now (default: the target and the default "
                                 "draft; the app prepares another on its first selection)")


def prepare_from_args(args: argparse.Namespace) -> Prepared:
    """Every model of the preset the flags name (or, with add_arguments(lazy=True), the defaults unless --all)."""
    return prepare_with_pending(args)[0]


def prepare_with_pending(args: argparse.Namespace) -> tuple[Prepared, OnDemand]:
    """The preset the flags name, prepared, and the drafts left for later (OnDemand)."""
    preset = select_preset(args.preset, args.target, args.draft)
    lazy = hasattr(args, "all") and not args.all and args.target is None  # --draft flags name the drafts wanted
    ready = prepare(preset, args.cache_dir, drafts="default" if lazy else "all")
    return ready, OnDemand(preset if lazy else None, args.cache_dir, ready)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo.prepare", description=__doc__.splitlines()[0])
    add_arguments(parser, lazy=True)
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args(argv)
    t0 = time.monotonic()
    try:
        ready, later = prepare_with_pending(args)
    except PrepareError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    log(f"preset {ready.preset} ready in {time.monotonic() - t0:.1f} s")
    for name in later.pending():
        log(f"draft {name}: not prepared (the app prepares it when first picked; --all prepares it now)")
    if args.json:
        print(json.dumps(ready.to_json()))
    else:
        print(f"target: {ready.target}")
        for name, path in ready.drafts.items():
            print(f"draft {name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
