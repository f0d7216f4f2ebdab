"""python -m demo.prune {analyze,cut,heal,export,run} --preset P [--layers N] ...

analyze: angular distances for every block size and start, JSON + plotly heatmap, recommended block
cut:     remove the block, save a transformers checkpoint
heal:    fine-tune the cut draft on target-generated text (cached), resumable; --lora RANK trains a LoRA adapter
         instead and writes it with its recipe as the shippable delta (healed-<n>l/delta, demo/models/prune/delta.py)
export:  OpenVINO IR (int8, or --weights int4-all / int4-asym-all) with the preset's shared tokenizer,
         registered as draft <draft>-pruned-<n>l (-int4 or -int4-asym appended for int4 weights)
run:     all four, each step skipped when its output exists
"""
from __future__ import annotations

import argparse
import json
import random
import shlex
import shutil
import sys
import time
from pathlib import Path

from demo import catalog
from demo.catalog import DeltaSource, GGUFSource
from demo.models import PrepareError, prepare
from demo.models.cache import MANIFEST, is_ir_folder, register_draft, replace_atomically
from demo.models.convert import export_ir, gguf_to_checkpoint, install_tokenizer
from demo.models.prune import angular, delta
from demo.models.prune.cut import cut_checkpoint
from demo.prompt_sets import PROMPTS_DIR, load_prompts

# export: --weights -> the draft name's suffix
# tokenizer files in an IR folder (OpenVINO's and Hugging Face's), the rest being the model's
TOKENIZER_PREFIXES = ("tokenizer", "openvino_tokenizer", "openvino_detokenizer")
TOKENIZER_NAMES = {"vocab.json", "merges.txt", "special_tokens_map.json", "added_tokens.json", "chat_template.jinja"}
SUFFIX = {"int8": "", "int4-all": "-int4", "int4-asym-all": "-int4-asym"}


def log(msg: str) -> None:
    print(f"[prune] {msg}", file=sys.stderr, flush=True)


def calibration_prompts() -> list[str]:
    return [p for name in ("code.jsonl", "chat.jsonl") for p in load_prompts(PROMPTS_DIR / name)]


class Workspace:
    """Paths of one preset's pruning run, all inside the model cache."""

    def __init__(self, preset: catalog.Preset, cache_dir: str | None, draft: str | None, n: int):
        self.preset = preset
        self.preset_dir = catalog.cache_root(cache_dir) / preset.name
        # by default the last draft that is a checkpoint of its own (not a trimmed head or a shipped delta), among
        # hub IR drafts the last that names its transformers checkpoint (the others have no float weights)
        own = [d for d in preset.drafts if not d.trim_head_of and not isinstance(d.source, DeltaSource)]
        own = [d for d in own if d.checkpoint] or own
        self.draft = next((d for d in preset.drafts if d.name == draft), None) if draft else own[-1]
        if self.draft is None:
            raise SystemExit(f"error: unknown draft {draft!r}; choose from {[d.name for d in preset.drafts]}")
        self.n = n
        self.root = self.preset_dir / "prune" / self.draft.name
        self.hf = self.root / "hf"
        self.analysis = self.root / "analysis.json"
        self.cut = self.root / f"cut-{n}l"
        self.data = self.root / "target-texts.jsonl"
        self.healed = self.root / f"healed-{n}l"
        self.eval_data = self.root / "eval-texts.jsonl"
        self.target_hf = self.preset_dir / "prune" / "target-hf"
        self.name = f"{self.draft.name.removesuffix('-int4')}-pruned-{n}l"

    def hf_checkpoint(self) -> Path:
        """The draft as a transformers checkpoint (from its GGUF or folder), made once."""
        if (self.hf / "config.json").exists():
            return self.hf
        src = self.draft.source
        self.root.mkdir(parents=True, exist_ok=True)
        if isinstance(src, GGUFSource):
            gguf_to_checkpoint(src, self.root / "gguf", self.hf)
        else:
            from transformers import AutoModelForCausalLM

            path = prepare.resolve_local_or_hub(self.draft.checkpoint or str(src))
            if is_ir_folder(path):
                raise PrepareError(f"draft {self.draft.name} is an OpenVINO IR ({src}), which holds no float weights "
                                   f"to prune: give its ModelSpec the hub id of its transformers checkpoint")
            AutoModelForCausalLM.from_pretrained(path).save_pretrained(self.hf)
        install_tokenizer(self.preset_dir / "tokenizer", self.hf)  # HF tokenizer files included
        return self.hf

    def ensure_tokenizer(self, target: Path) -> None:
        """The preset's shared tokenizer folder, which pruning installs into every checkpoint and IR it writes.
        demo.prepare makes it when it converts; a preset of hub IR folders gets a copy of the target's
        tokenizer files, so a pruned draft's tokenizer matches the target's byte for byte (GenAI checks)."""
        out = self.preset_dir / "tokenizer"
        if out.is_dir():
            return
        tmp = out.with_name(".tmp-tokenizer")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for f in target.iterdir():
            if f.name.startswith(TOKENIZER_PREFIXES) or f.name in TOKENIZER_NAMES:
                shutil.copyfile(f, tmp / f.name)
        replace_atomically(tmp, out)

    def teacher(self, which: str) -> Path | None:
        """The logits teacher for healing: the uncut draft, or the target as a float32 checkpoint."""
        if which == "none":
            return None
        if which == "draft":
            return self.hf_checkpoint()
        if not (self.target_hf / "config.json").exists():
            src = self.preset.target.source
            if not isinstance(src, GGUFSource):
                path = Path(prepare.resolve_local_or_hub(str(src)))
                if is_ir_folder(path):
                    raise PrepareError("the target is an OpenVINO IR, which torch cannot run as a teacher: "
                                               "use --teacher draft")
                return path
            gguf_to_checkpoint(src, self.preset_dir / "prune" / "target-gguf", self.target_hf)
        return self.target_hf


def analyze(ws: Workspace, html: Path | None, simple: bool) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf = ws.hf_checkpoint()
    model = AutoModelForCausalLM.from_pretrained(hf, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(hf)
    t0 = time.monotonic()
    states = angular.last_token_states(model, tok, calibration_prompts())
    table = angular.distance_table(states)
    start, dist = angular.best_block(table, ws.n)
    if simple:
        start = angular.deepest_block(model.config.num_hidden_layers, ws.n)
        dist = table[ws.n][start]
    result = {"layers": model.config.num_hidden_layers, "n": ws.n, "start": start, "distance": dist,
              "variant": "deepest" if simple else "angular", "distances": {str(k): v for k, v in table.items()},
              "seconds": round(time.monotonic() - t0, 1)}
    ws.analysis.write_text(json.dumps(result, indent=1))
    log(f"remove layers {start}..{start + ws.n - 1} of {result['layers']} (distance {dist:.3f})")
    if html:
        heatmap(result).write_html(str(html), include_plotlyjs=True)
    return result


def heatmap(result: dict):
    import plotly.graph_objects as go

    layers = result["layers"]
    ns = sorted(int(k) for k in result["distances"])
    z = [[result["distances"][str(n)][l] if l < len(result["distances"][str(n)]) else None for l in range(layers)]
         for n in ns]
    fig = go.Figure(go.Heatmap(z=z, x=list(range(layers)), y=ns, colorscale="Viridis",
                               colorbar=dict(title="angular distance")))
    fig.update_layout(title=f"Angular distance of removing n layers starting at l (chosen: n={result['n']}, "
                            f"l={result['start']})", xaxis_title="start layer l", yaxis_title="block size n")
    return fig


def curve_figure(heal: dict):
    """Held-out greedy agreement against the tokens healing trained on (heal.json's or a recipe's curve)."""
    import plotly.graph_objects as go

    curve = heal.get("curve") or []
    fig = go.Figure(go.Scatter(x=[p["tokens"] for p in curve], y=[p["agreement"] for p in curve],
                               mode="lines+markers", text=[f"step {p['step']}" for p in curve]))
    fig.update_layout(title="Healing curve: held-out greedy agreement with the target",
                      xaxis_title="tokens trained on", yaxis_title="greedy agreement", height=360)
    return fig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo.prune", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["analyze", "cut", "heal", "export", "run"])
    parser.add_argument("--preset", default=catalog.OFFLINE_PRESET)
    parser.add_argument("--draft", help="which draft of the preset to prune (default: its last own checkpoint, the int8 one)")
    parser.add_argument("--layers", type=int, default=6, help="how many layers to remove")
    parser.add_argument("--simple", action="store_true", help="drop the deepest n layers before the last instead")
    parser.add_argument("--html", type=Path, help="write the distance heatmap here (analyze)")
    parser.add_argument("--steps", type=int, default=80, help="healing steps (optimizer updates; 80 x 4 texts: 3 epochs of 106)")
    parser.add_argument("--batch", type=int, default=4, help="texts per healing step (gradients accumulated)")
    parser.add_argument("--lr", type=float, help="peak learning rate (default 1e-5; with --lora 2e-4)")
    parser.add_argument("--lora", type=int, default=0, metavar="RANK",
                        help="heal: train a LoRA adapter of this rank on the decoder layers' linear layers (--train "
                             "ffn: the MLP ones) and save it as a small delta that demo.prepare can apply")
    parser.add_argument("--lora-alpha", type=float, help="LoRA alpha (default 2 x RANK)")
    parser.add_argument("--train", choices=["all", "layers", "ffn"], default="layers",
                        help="what healing updates (layers: every decoder layer, embedding and head frozen)")
    parser.add_argument("--teacher", choices=["none", "draft", "target"], default="draft",
                        help="heal: KL towards this model's logits (draft: the uncut draft; none: target text only)")
    parser.add_argument("--kl-weight", type=float, default=0.9, help="heal: weight of the KL term (rest: cross-entropy)")
    parser.add_argument("--eval-every", type=int, default=10, metavar="STEPS",
                        help="heal: held-out agreement every STEPS steps, the healing curve in heal.json (0: off)")
    parser.add_argument("--texts", type=int, help="target-generated texts for healing, one per prompt (default: all)")
    parser.add_argument("--heal-prompts", type=Path, nargs="+", default=[PROMPTS_DIR / "heal.jsonl"],
                        help="prompt files whose target answers are the healing data (also: "
                             "assets/prompts/heal-stdlib.jsonl, 480 prompts from the Python standard library)")
    parser.add_argument("--shuffle", type=int, metavar="SEED",
                        help="heal: train on the texts in an order shuffled with this seed (default: file order)")
    parser.add_argument("--text-tokens", type=int, default=192)
    parser.add_argument("--no-heal", action="store_true", help="run: export the cut model without healing")
    # int4 with an int8 head is left out: int4-all was faster at the same acceptance, and both would be "-int4"
    parser.add_argument("--weights", choices=list(SUFFIX), default="int8",
                        help="export: weight compression (int4-all: int4 vocabulary head too, the fastest draft; "
                             "int4-asym-all: the same with zero points, the int4 format a healed draft survives)")
    parser.add_argument("--cache-dir")
    args = parser.parse_args(argv)
    args.command_line = shlex.join(["python", "-m", "demo.prune", *(sys.argv[1:] if argv is None else argv)])
    if args.preset not in catalog.PRESETS:
        print(f"error: unknown preset {args.preset!r}", file=sys.stderr)
        return 2
    ws = Workspace(catalog.PRESETS[args.preset], args.cache_dir, args.draft, args.layers)
    cmd, run = args.command, args.command == "run"
    try:
        prepared = prepare.prepare(ws.preset, args.cache_dir)
        ws.ensure_tokenizer(prepared.target)
        if cmd == "analyze" or (run and not ws.analysis.exists()):
            analyze(ws, args.html, args.simple)
        if not ws.analysis.exists():
            raise PrepareError("no analysis yet: run `python -m demo.prune analyze` first")
        result = json.loads(ws.analysis.read_text())
        if cmd == "cut" or (run and not (ws.cut / "config.json").exists()):
            cut_checkpoint(ws.hf_checkpoint(), ws.cut, result["start"], ws.n)
            log(f"cut checkpoint at {ws.cut}")
        if cmd == "heal" or (run and not args.no_heal and not (ws.healed / "config.json").exists()):
            heal_cmd(ws, prepared, args)
        if cmd in ("export", "run"):
            healed = (ws.healed / "config.json").exists() and not (run and args.no_heal)
            source = ws.healed if healed else ws.cut
            name = (ws.name if healed else f"{ws.name}-unhealed") + SUFFIX[args.weights]
            if healed and args.weights == "int4-all":
                log("warning: symmetric int4 undoes the healing (its 5e-5 changes tip the ~12% of GGUF-born weights "
                    "that sit on rounding ties; issue 13): use --weights int4-asym-all or int8")
            export(ws.preset_dir, name, source, args.weights)
    except PrepareError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def heal_cmd(ws: Workspace, prepared, args) -> None:
    from transformers import AutoTokenizer

    from demo.engine import Engine
    from demo.models.prune.heal import encode_pairs, heal, target_texts

    # Healing text comes from prompts of its own, so that benchmarks on the code/chat sets stay held out.
    prompts = list(dict.fromkeys(p for path in args.heal_prompts for p in load_prompts(path)))
    if args.texts and args.texts > len(prompts):
        log(f"the healing prompt files hold {len(prompts)} prompts; healing on all of them")
    engine = Engine(prepared)
    pairs = target_texts(engine, prompts[: args.texts], args.text_tokens, ws.data)
    # The code benchmark prompts' target answers, never trained on: greedy agreement on them predicts acceptance.
    held_out = target_texts(engine, load_prompts(PROMPTS_DIR / "code.jsonl"), args.text_tokens, ws.eval_data)
    del engine
    if args.shuffle is not None:  # several prompt files: mix them, so the healing curve is not file by file
        random.Random(args.shuffle).shuffle(pairs)
    tok = AutoTokenizer.from_pretrained(ws.hf)
    lora = None
    if args.lora:
        lora = {"rank": args.lora, "alpha": args.lora_alpha or 2 * args.lora,
                "targets": list(delta.FFN_TARGETS if args.train == "ffn" else delta.TARGETS)}
    lr = args.lr or (2e-4 if lora else 1e-5)  # LoRA's low-rank updates need a larger step than a full fine-tune
    stats = heal(ws.cut, ws.healed, encode_pairs(tok, pairs), steps=args.steps, lr=lr, part=args.train,
                 teacher_dir=ws.teacher(args.teacher), kl_weight=args.kl_weight if args.teacher != "none" else 0.0,
                 eval_examples=encode_pairs(tok, held_out), batch=args.batch, lora=lora, eval_every=args.eval_every)
    stats["teacher_kind"] = args.teacher
    (ws.healed / "heal.json").write_text(json.dumps(stats, indent=1))
    log(f"healed: held-out greedy agreement {stats['agreement_before']:.3f} -> {stats['agreement_after']:.3f}, "
        f"loss {stats['loss_before']:.3f} -> {stats['loss_after']:.3f}")
    if lora:
        write_delta(ws, stats, args.command_line)


def write_delta(ws: Workspace, stats: dict, command: str) -> dict:
    """The recipe beside the LoRA adapter: everything needed to apply the delta and to re-create it."""
    src = ws.draft.source
    base = {"draft": ws.draft.name, **({"gguf": src.filename, "gguf_sha256": src.sha256} if isinstance(src, GGUFSource)
                                       else {"source": str(src)})}
    pruned = json.loads((ws.cut / "config.json").read_text())["specdemo_pruned"]  # the cut it was trained on
    folder = ws.healed / "delta"
    if ws.analysis.exists():  # the Pruning tab's heatmap, shipped beside the delta
        (folder / "analysis.json").write_text(ws.analysis.read_text())
    recipe = delta.write_recipe(folder, name=ws.name, base=base, lora=stats["lora"], command=command,
                                cut={"start": pruned["removed_start"], "n": pruned["removed_layers"]},
                                heal={k: v for k, v in stats.items() if k not in ("lora", "teacher")})
    log(f"delta: {folder} (adapter {recipe['adapter_bytes']:,} bytes, sha256 {recipe['adapter_sha256'][:16]}...); "
        f"ship it as assets/drafts/{ws.name}/ and name it in the preset with "
        f"catalog.DeltaSource({ws.draft.name!r}, 'assets/drafts/{ws.name}')")
    return recipe


def export(preset_dir: Path, name: str, source: Path, weights: str = "int8") -> Path:
    """OpenVINO IR with the preset's shared tokenizer, registered as a draft of the preset."""
    out = preset_dir / name
    tmp = out.with_name(f".tmp-{out.name}")
    export_ir(source, tmp, weights)
    install_tokenizer(preset_dir / "tokenizer", tmp)
    (tmp / MANIFEST).write_text(json.dumps({"name": name, "source": str(source)}))
    replace_atomically(tmp, out)
    register_draft(preset_dir, name, out)
    log(f"draft {name} registered at {out}")
    return out


if __name__ == "__main__":
    sys.exit(main())
