"""Teacher-forced greedy agreement on the same 8 held-out target answers (eval-texts.jsonl) for:
torch float32, torch RTN int4 (nncf's own formula: sym, signed scale = extreme/8, group 128, levels -8..7,
fp16 scale) and the OpenVINO IR exported exactly as the project does (demo.models.convert.export_ir).
usage: python measure.py NAME CKPT_DIR FORMAT... (FORMAT: torch, rtn, rtn-all, rtn-asym,
rtn-ref-ties, int8, int4, int4-all)"""
import json, sys, time
from pathlib import Path
sys.path.insert(0, "/work/main")
import torch
from transformers import AutoTokenizer
from demo.models.prune.heal import encode_pairs

HERE = Path(__file__).parent
P = Path.home() / ".cache/specdemo/qwen2.5-coder-1.5b/prune/qwen2.5-coder-0.5b"
tok = AutoTokenizer.from_pretrained(P / "hf")
EX = encode_pairs(tok, [json.loads(l) for l in (HERE / "eval-texts.jsonl").read_text().splitlines()])


def agreement(logits_fn) -> float:
    hit = total = 0
    for ids, lab in EX:
        logits = logits_fn(ids)
        pred, want = logits[0, :-1].argmax(-1), torch.tensor(lab[1:])
        m = want != -100
        hit += int((pred[m] == want[m]).sum()); total += int(m.sum())
    return hit / total


def rtn_nncf(w: torch.Tensor, group: int = 128) -> torch.Tensor:
    """nncf's data-free symmetric int4: per group of `group` input columns, scale = (|min| if |min| >= max
    else -max) / 8 stored in f16, q = clip(round(w / scale), -8, 7)."""
    o, i = w.shape
    g = w.reshape(o, i // group, group)
    mn, mx = g.min(-1, keepdim=True).values, g.max(-1, keepdim=True).values
    s = torch.where(mn.abs() >= mx, mn.abs(), -mx) / 8
    s = torch.where(s.abs() < torch.finfo(torch.float32).eps, torch.finfo(torch.float32).eps, s)
    s = s.half().float()
    q = torch.clamp(torch.round(g / s), -8, 7)
    return (q * s).reshape(o, i)


def rtn_asym(w: torch.Tensor, group: int = 128) -> torch.Tensor:
    """nncf's data-free asymmetric int4: scale = (max - min) / 15 (range widened to hold 0), zero point."""
    o, i = w.shape
    g = w.reshape(o, i // group, group)
    mn, mx = g.min(-1, keepdim=True).values.clamp(max=0), g.max(-1, keepdim=True).values.clamp(min=0)
    s = ((mx - mn) / 15).clamp_min(torch.finfo(torch.float32).eps)
    zp = torch.clamp(torch.round(-mn / s), 0, 15)
    s = s.half().float()
    q = torch.clamp(torch.round(g / s) + zp, 0, 15)
    return ((q - zp) * s).reshape(o, i)


def rtn_ref_ties(w: torch.Tensor, ref: torch.Tensor, group: int = 128) -> torch.Tensor:
    """nncf's sym int4 of w, but every weight that sits on an exact rounding tie in `ref` (the unhealed
    weights) and whose group scale is unchanged, rounded to the level `ref` rounds to: the healing delta
    can no longer break ties."""
    o, i = w.shape
    def parts(x):
        g = x.double().reshape(o, i // group, group)
        mn, mx = g.min(-1, keepdim=True).values, g.max(-1, keepdim=True).values
        sc = (torch.where(mn.abs() >= mx, mn.abs(), -mx) / 8).float().half().double()
        return g / sc, sc
    x, s = parts(w)
    xr, sr = parts(ref)
    q = torch.clamp(torch.round(x), -8, 7)
    qr = torch.clamp(torch.round(xr), -8, 7)
    tie = ((xr.abs() - xr.abs().floor() - 0.5).abs() < 1e-6) & ((x - xr).abs() < 0.5)
    q = torch.where(tie, qr, q)
    return (q * s).reshape(o, i).float()


def torch_model(ckpt, rtn=None):
    from transformers import AutoModelForCausalLM
    m = AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32).eval()
    if rtn:
        with torch.no_grad():
            for name, mod in m.named_modules():
                if isinstance(mod, torch.nn.Linear) and (".layers." in name or (rtn == "all" and name == "lm_head")):
                    if rtn == "asym":
                        mod.weight.copy_(rtn_asym(mod.weight))
                    elif rtn == "ref-ties":
                        mod.weight.copy_(rtn_ref_ties(mod.weight, REF[name + ".weight"]))
                    else:
                        mod.weight.copy_(rtn_nncf(mod.weight))
    return lambda ids: m(input_ids=torch.tensor([ids])).logits


def ov_model(ckpt, fmt, name):
    from demo.models.convert import export_ir
    from optimum.intel import OVModelForCausalLM
    ir = HERE / "ir" / f"{name}-{fmt}"
    if not (ir / "openvino_model.xml").exists():
        t = time.time()
        if fmt == "int4-asym-all":  # the project's int4-all with sym=False (experiment; not in convert.py)
            from optimum.intel import OVWeightQuantizationConfig
            q = OVWeightQuantizationConfig(bits=4, sym=False, group_size=128, ratio=1.0, all_layers=True)
            OVModelForCausalLM.from_pretrained(ckpt, export=True, compile=False, quantization_config=q).save_pretrained(ir)
        else:
            export_ir(Path(ckpt), ir, fmt)
        print(f"export {ir.name} {time.time() - t:.0f}s", flush=True)
    m = OVModelForCausalLM.from_pretrained(ir, compile=True, ov_config={"INFERENCE_PRECISION_HINT": "f32"})

    def f(ids):
        t = torch.tensor([ids])
        return torch.as_tensor(m(input_ids=t, attention_mask=torch.ones_like(t)).logits)
    return f


name, ckpt, fmts = sys.argv[1], sys.argv[2], sys.argv[3:]
if "rtn-ref-ties" in fmts:  # the unhealed cut's weights, whose rounding ties the healed export should keep
    from safetensors.torch import load_file
    REF = load_file(str(P / "cut-6l" / "model.safetensors"))
for fmt in fmts:
    t = time.time()
    fn = {"torch": lambda: torch_model(ckpt), "rtn": lambda: torch_model(ckpt, "layers"),
          "rtn-all": lambda: torch_model(ckpt, "all"), "rtn-asym": lambda: torch_model(ckpt, "asym"),
          "rtn-ref-ties": lambda: torch_model(ckpt, "ref-ties")}.get(fmt, lambda: ov_model(ckpt, fmt, name))()
    a = agreement(fn)
    row = {"variant": name, "ckpt": ckpt, "format": fmt, "agreement": round(a, 4), "seconds": round(time.time() - t)}
    print(row, flush=True)
    with open(HERE / "results.jsonl", "a") as out:
        out.write(json.dumps(row) + "\n")
