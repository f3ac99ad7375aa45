"""PyTorch reference of `tfc train` on charlm: the same initial weights, the same windows in the
same order, the same schedule, AdamW(weight_decay=0.01) + clip_grad_norm_(1.0) as
examples/charlm/train.py. Prints one JSON object: the loss of every step (before its update).

Input (stdin, JSON): {"weights": PATH, "ids": [...train ids...], "offsets": [[...] per step],
"seq": T, "lr": peak, "warmup": W, "dtype": "float32"|"float64"}."""
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples", "charlm"))
import model as M  # noqa: E402


def main():
    a = json.load(sys.stdin)
    dtype = torch.float64 if a.get("dtype") == "float64" else torch.float32
    torch.set_num_threads(1)
    w = {k: v.to(dtype).requires_grad_(True) for k, v in M.load_safetensors(a["weights"]).items()}
    opt = torch.optim.AdamW(list(w.values()), lr=a["lr"], weight_decay=0.01)
    data = torch.tensor(a["ids"], dtype=torch.long)
    T = a["seq"]
    steps = len(a["offsets"])
    losses = []
    for step, offs in enumerate(a["offsets"]):
        lr = a["lr"] * min(1.0, (step + 1) / max(1, a["warmup"])) * max(0.1, 1 - step / steps)
        for g in opt.param_groups:
            g["lr"] = lr
        x = torch.stack([data[i : i + T] for i in offs])
        y = torch.stack([data[i + 1 : i + T + 1] for i in offs])
        logits, _ = M.forward(w, x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(w.values()), 1.0)
        opt.step()
        losses.append(loss.item())
    print(json.dumps({"losses": losses}))


if __name__ == "__main__":
    main()
