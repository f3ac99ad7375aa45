"""Trains charlm (model.py, = charlm.tfx) on the license texts that Debian's base-files package
ships in /usr/share/common-licenses, and writes charlm.safetensors and vocab.json.
Run: /usr/bin/python3 examples/charlm/train.py [--steps N]   (Debian's python3-torch, CPU)."""
import argparse
import json
import os
import time

import torch
import torch.nn.functional as F

import model as M

HERE = os.path.dirname(os.path.abspath(__file__))
# Real files only (GPL, LGPL, GFDL are symlinks to the newest version).
CORPUS = ["GPL-1", "GPL-2", "GPL-3", "LGPL-2", "LGPL-2.1", "LGPL-3", "GFDL-1.2", "GFDL-1.3",
          "Apache-2.0", "Artistic", "MPL-1.1", "MPL-2.0", "CC0-1.0", "BSD"]


def corpus_text():
    parts = []
    for name in CORPUS:
        with open(os.path.join("/usr/share/common-licenses", name), encoding="utf-8", errors="replace") as f:
            parts.append(f.read())
    text = "\n".join(parts).replace("\t", "    ")
    chars = M.vocab_chars()
    return "".join(ch if ch in chars else " " for ch in text)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=700)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=64, help="training window (the model runs up to ctx)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--minutes", type=float, default=12.0, help="stop early after this much time")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    c = M.CONFIG
    chars = M.vocab_chars()
    assert len(chars) == c["vocab"]
    text = corpus_text()
    data = torch.tensor([chars.index(ch) for ch in text], dtype=torch.long)
    print(f"corpus: {len(text)} characters from {len(CORPUS)} files")

    w = {}
    for name, shape in M.weight_shapes().items():
        if name.endswith("norm.weight") or name.endswith("layernorm.weight"):
            w[name] = torch.ones(shape)
        else:
            w[name] = torch.randn(shape) * (0.02 if "embed" in name else shape[-1] ** -0.5)
        w[name].requires_grad_(True)
    opt = torch.optim.AdamW(list(w.values()), lr=3e-3, weight_decay=0.01)
    T = a.seq
    start = time.time()
    for step in range(a.steps):
        lr = 3e-3 * min(1.0, (step + 1) / 100) * max(0.1, 1 - step / a.steps)
        for g in opt.param_groups:
            g["lr"] = lr
        ix = torch.randint(0, len(data) - T - 1, (a.batch,))
        x = torch.stack([data[i : i + T] for i in ix])
        y = torch.stack([data[i + 1 : i + T + 1] for i in ix])
        logits, _ = M.forward(w, x)
        loss = F.cross_entropy(logits.reshape(-1, c["vocab"]), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(w.values()), 1.0)
        opt.step()
        if step % 50 == 0 or step == a.steps - 1:
            print(f"step {step} loss {loss.item():.3f} ({time.time() - start:.0f} s)", flush=True)
        if time.time() - start > a.minutes * 60:
            print(f"stopping after {step + 1} steps (time limit)")
            break
    M.save_safetensors(os.path.join(HERE, "charlm.safetensors"), w)
    with open(os.path.join(HERE, "vocab.json"), "w") as f:
        json.dump({"chars": list(chars), "unknown": chars.index(" ")}, f, indent=0)
        f.write("\n")
    with torch.no_grad():
        ids = [chars.index(ch) for ch in "This License"]
        for _ in range(80):
            lg, _ = M.forward(w, torch.tensor([ids[-c["ctx"]:]]))
            ids.append(int(lg[0, -1].argmax()))
        print("greedy sample:", repr("".join(chars[i] for i in ids)))


if __name__ == "__main__":
    main()
