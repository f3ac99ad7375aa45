"""PyTorch oracle for examples/variants/*.tfx (all but gpt2-kv, which gpt2_oracle.py --kv covers):
the small GPT-2 of gpt2_oracle.py with the attention twist of each file, in float64.

  /usr/bin/python3 test/oracle/variants_oracle.py --variant alibi --out DIR --seed 0 \
      --batch 2 --seq 19
The sizes are the files' own config defaults (vocab 256, ctx 128, d 64, heads 4, layers 2).
"""
import math

import torch

import os
import sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench", "oracle"))  # common, st, gpt2_oracle: shipped for tfc bench
import common
import gpt2_oracle

VARIANTS = ["alibi", "sliding-window", "softcap", "prefix-lm", "document-mask", "mqa", "relative-bias",
            "plain-attention", "score-mods", "local-global", "sinks", "streaming"]
WINDOW, CAP, MAX_DIST = 8, 5.0, 8  # the config values in the .tfx files
MODS_CAP = 1.0  # score-mods.tfx's cap
SINK_TOKENS = 2  # streaming.tfx's sink_tokens


def main():
    ap = common.parser(__doc__)
    ap.add_argument("--variant", required=True, choices=VARIANTS)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seq", type=int, default=19)
    a = ap.parse_args()
    a.vocab, a.ctx, a.d, a.heads, a.layers, a.eps = 256, 128, 64, 4, 2, 1e-5
    v = a.variant
    B, T, H, d = a.batch, a.seq, a.heads, a.d
    dh = d // H

    w = common.Weights(a.seed)
    p = gpt2_oracle.make_weights(w, a)
    if v in ("alibi", "relative-bias"):  # no absolute positions in these files
        del w.stored["wpe.weight"]
    if v == "mqa":  # replace the fused projection by [d, d + 2 dh]
        for l in range(a.layers):
            for suffix, shape in (("weight", (d, d + 2 * dh)), ("bias", (d + 2 * dh,))):
                name = f"h.{l}.attn.c_attn.{suffix}"
                del w.stored[name]
                p[name] = w.normal(name, shape, 1.0 / math.sqrt(d) if suffix == "weight" else 0.1)
    if v == "relative-bias":
        rel = w.normal("rel_bias.weight", (2 * MAX_DIST + 1, H), 1.0)
    if v == "sinks":  # gpt-oss: one learned logit per head and layer
        sinks = [w.normal(f"h.{l}.attn.sinks", (H,), 1.0) for l in range(a.layers)]
    tokens = w.tokens((B, T), a.vocab)
    inputs = {"tokens": tokens}

    qi = torch.arange(T).view(T, 1)
    ki = torch.arange(T).view(1, T)
    causal = ki <= qi
    if v == "prefix-lm":
        prefix = torch.randint(0, T + 1, (B,), generator=w.gen, dtype=torch.int64)
        prefix[0] = T // 3  # one row with a mid-sequence prefix whatever the seed
        inputs["prefix_len"] = prefix.to(torch.int32)
        allowed = (causal.view(1, 1, T, T) | (ki.view(1, 1, 1, T) < prefix.view(B, 1, 1, 1)))
    elif v == "document-mask":
        # Packed rows: document ids rise along the row at random boundaries.
        starts = (torch.rand((B, T), generator=w.gen) < 0.2).to(torch.int64)
        doc = torch.cumsum(starts, dim=1)
        inputs["doc"] = doc.to(torch.int32)
        allowed = causal.view(1, 1, T, T) & (doc.view(B, 1, T, 1) == doc.view(B, 1, 1, T))
    elif v == "sliding-window":
        allowed = causal & (qi - ki < WINDOW)
    elif v == "streaming":
        allowed = causal & ((ki < SINK_TOKENS) | (qi - ki < WINDOW))
    else:
        allowed = causal
    if v == "plain-attention":
        # An additive mask with a large negative number (not -inf) as many callers build it,
        # plus a few extra masked keys in row 1 beyond causality.
        extra = torch.rand((B, 1, T, T), generator=w.gen) < 0.1
        extra[0] = False
        keep = causal.view(1, 1, T, T) & ~(extra & (ki != qi).view(1, 1, T, T))
        mask = torch.where(keep, torch.tensor(0.0), torch.tensor(-1e9)).to(torch.float32)
        inputs["mask"] = mask

    def modify(s, l):
        if v == "alibi":
            slope = torch.tensor([2.0 ** (-8.0 * (h + 1) / H) for h in range(H)], dtype=torch.float64)
            return s + slope.view(H, 1, 1) * (ki - qi).double()
        if v == "softcap":
            return CAP * torch.tanh(s / CAP)
        if v == "score-mods":
            m = torch.where(s > MODS_CAP, MODS_CAP + (s - MODS_CAP) / 8.0, s)
            return m * torch.sigmoid(m)
        if v == "relative-bias":
            idx = (ki - qi).clamp(-MAX_DIST, MAX_DIST) + MAX_DIST  # [T, T]
            return s + rel[idx].permute(2, 0, 1)  # [H, T, T]
        return s

    with torch.no_grad():
        x = p["wte"][tokens.long()]
        if v not in ("alibi", "relative-bias"):
            x = x + p["wpe"][torch.arange(T)]
        for l in range(a.layers):
            h = f"h.{l}."
            y = gpt2_oracle.layernorm(x, p[h + "ln_1.weight"], p[h + "ln_1.bias"], a.eps)
            qkv = y @ p[h + "attn.c_attn.weight"] + p[h + "attn.c_attn.bias"]
            if v == "mqa":
                q, k, vv = qkv.split([d, dh, dh], dim=-1)
                q = q.view(B, T, H, dh).transpose(1, 2)
                k, vv = k.view(B, 1, T, dh), vv.view(B, 1, T, dh)
            else:
                q, k, vv = (t.view(B, T, H, dh).transpose(1, 2) for t in qkv.split(d, dim=-1))
            s = q @ k.transpose(-1, -2) / math.sqrt(dh)
            if v == "plain-attention":
                att = torch.softmax(s + inputs["mask"].double(), dim=-1)
            elif v == "sinks":  # softmax over [scores, sink], the sink's column dropped (as gpt-oss)
                col = sinks[l].view(1, H, 1, 1).expand(B, H, T, 1)
                att = torch.softmax(torch.cat([s.masked_fill(~causal, -math.inf), col], dim=-1), dim=-1)[..., :-1]
            elif v == "local-global":  # even layers: sliding window; odd layers: causal
                att = common.masked_softmax(s, causal & (qi - ki < WINDOW) if l % 2 == 0 else causal)
            else:
                att = common.masked_softmax(modify(s, l), allowed)
            o = (att @ vv).transpose(1, 2).reshape(B, T, d)
            x = x + o @ p[h + "attn.c_proj.weight"] + p[h + "attn.c_proj.bias"]
            y = gpt2_oracle.layernorm(x, p[h + "ln_2.weight"], p[h + "ln_2.bias"], a.eps)
            m = gpt2_oracle.gelu_new(y @ p[h + "mlp.c_fc.weight"] + p[h + "mlp.c_fc.bias"])
            x = x + m @ p[h + "mlp.c_proj.weight"] + p[h + "mlp.c_proj.bias"]
        x = gpt2_oracle.layernorm(x, p["ln_f.weight"], p["ln_f.bias"], a.eps)
        logits = x @ p["wte"].T
    common.write(a.out, w.stored, inputs, {"logits": logits})


if __name__ == "__main__":
    main()
