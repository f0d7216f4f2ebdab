"""Angular distance between the residual stream entering layer l and entering layer l+n."""
from __future__ import annotations

import math


def angular_distance(a, b):
    """arccos(cosine similarity) / pi, in [0, 1], along the last dimension."""
    import torch

    cos = torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=-1).clamp(-1.0, 1.0)
    return torch.arccos(cos) / math.pi


def last_token_states(model, tokenizer, prompts: list[str], max_length: int = 256):
    """Hidden states entering each layer at each prompt's last non-padding token: [layers, prompts, hidden].
    hidden_states[l] enters layer l; the final entry comes after the final norm and is left out."""
    import torch

    states = []
    model.eval()
    with torch.no_grad():
        for prompt in prompts:
            enc = tokenizer(prompt, return_tensors="pt", truncation=True, max_length=max_length)
            out = model(**enc, output_hidden_states=True)
            last = int(enc["attention_mask"][0].sum()) - 1
            layers = model.config.num_hidden_layers
            states.append(torch.stack([out.hidden_states[i][0, last] for i in range(layers)]))
    return torch.stack(states, dim=1)


def distance_table(states) -> dict[int, list[float]]:
    """{n: [d(l, n) for l in 0..L-1-n]}: blocks never reach the final layer (l + n <= L - 1)."""
    layers = states.shape[0]
    table = {}
    for n in range(1, layers - 1):
        table[n] = [float(angular_distance(states[start], states[start + n]).mean()) for start in range(layers - n)]
    return table


def best_block(table: dict[int, list[float]], n: int) -> tuple[int, float]:
    """The start layer whose n-layer block changes the residual stream least, and its distance."""
    row = table[n]
    start = min(range(len(row)), key=row.__getitem__)
    return start, row[start]


def deepest_block(num_layers: int, n: int) -> int:
    """The simple variant: the n layers just before the last one."""
    return num_layers - 1 - n
