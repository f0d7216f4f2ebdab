"""How many weights sit on (or within tol of) a rounding boundary of nncf's int4 grid (sym, signed scale =
extreme/8, group 128), and, given a second checkpoint, how many quantized levels change between the two
versus how much the float weights moved. usage: python boundary.py CKPT [CKPT2]"""
import sys
import torch
from safetensors import safe_open

def qparts(w, group=128):
    o, i = w.shape
    g = w.double().reshape(o, i // group, group)
    mn, mx = g.min(-1, keepdim=True).values, g.max(-1, keepdim=True).values
    s = (torch.where(mn.abs() >= mx, mn.abs(), -mx) / 8).clamp_min(1.2e-7) if False else torch.where(mn.abs() >= mx, mn.abs(), -mx) / 8
    s = s.float().half().double()
    x = g / s
    return x, s

a = safe_open(sys.argv[1], "pt")
b = safe_open(sys.argv[2], "pt") if len(sys.argv) > 2 else None
keys = [k for k in a.keys() if ".layers." in k and k.endswith("proj.weight")]
tot = near = exact = flips = 0
moved = 0.0; qmoved = 0.0; n_el = 0
for k in sorted(keys, key=lambda k: (int(k.split(".")[2]), k)):
    w = a.get_tensor(k)
    x, s = qparts(w)
    frac = (x.abs() - x.abs().floor() - 0.5).abs()
    e, nr = int((frac < 1e-6).sum()), int((frac < 1e-3).sum())
    tot += x.numel(); exact += e; near += nr
    line = f"{k:45s} exact-boundary {e / x.numel():.4f} within 1e-3 {nr / x.numel():.4f}"
    if b is not None:
        w2 = b.get_tensor(k)
        x2, s2 = qparts(w2)
        q1 = torch.clamp(torch.round(x), -8, 7) * s
        q2 = torch.clamp(torch.round(x2), -8, 7) * s2
        f = int((torch.round(x) != torch.round(x2)).sum()); flips += f
        dw = (w2 - w).abs().mean().item(); dq = (q2 - q1).abs().mean().item()
        moved += dw * w.numel(); qmoved += dq * w.numel(); n_el += w.numel()
        line += f" | mean|dw| {dw:.2e} mean|dQ(w)| {dq:.2e} ({dq / max(dw, 1e-12):.0f}x) level flips {f / x.numel():.4f}"
    print(line, flush=True)
print(f"ALL exact {exact / tot:.4f} near {near / tot:.4f}" + (f" mean|dw| {moved / n_el:.2e} mean|dQ| {qmoved / n_el:.2e} flips {flips / tot:.4f}" if b else ""))
