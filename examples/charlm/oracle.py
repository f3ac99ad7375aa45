"""Float64 PyTorch reference for charlm (model.py): prints JSON with the prefill logits, the
logits of each greedy decode step (each step runs one token against the KV cache) and the greedy
tokens. Used by test/webgpu/host-charlm.test.ts.
Usage: /usr/bin/python3 oracle.py WEIGHTS.safetensors IDS(comma-separated) STEPS [--set k=v,...]"""
import json
import sys

import torch

import model as M


def main():
    weights, ids, steps = sys.argv[1], [int(t) for t in sys.argv[2].split(",")], int(sys.argv[3])
    c = dict(M.CONFIG)
    if len(sys.argv) > 5 and sys.argv[4] == "--set":
        for kv in sys.argv[5].split(","):
            k, v = kv.split("=")
            c[k] = type(c[k])(v)
    torch.set_num_threads(1)
    w = M.load_safetensors(weights, torch.float64)
    with torch.no_grad():
        logits, cache = M.forward(w, torch.tensor([ids]), None, c)
        out = {"prefill": logits[0].tolist(), "steps": [logits[0, -1].tolist()], "tokens": []}
        for s in range(steps):
            tok = int(out["steps"][-1] and torch.tensor(out["steps"][-1]).argmax())
            out["tokens"].append(tok)
            if s == steps - 1:
                break
            lg, cache = M.forward(w, torch.tensor([[tok]]), [(k, v) for k, v in cache], c)
            out["steps"].append(lg[0, -1].tolist())
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
