"""PyTorch oracle for examples/variants/gpt2-kv-int8.tfx: GPT-2 whose KV cache holds int8 values
with one scale per (token, head), written out in torch ops in float64. A new cache row x (dh values)
becomes q = cast_i8(round(x / s)) with s = max(max|x| / 127, qmin); the attention reads q * s.

  /usr/bin/python3 test/oracle/kv_int8_oracle.py --out DIR --seed 0 --layers 2 --d 64 --heads 4 \
      --vocab 256 --ctx 64 --batch 2 --seq 8 --steps 3 --min-margin 5e-4

Writes weights.safetensors, inputs/expected.safetensors (prefill: the prompt, an empty cache) and
decode{i}_inputs/expected.safetensors for i < steps (one token per row, the previous call's
present as past). Cache tensors: past.{l}.key / .value (I8 [B, heads, P, dh]) and .key_scale /
.value_scale (F32 [B, heads, P, 1]); expected present.* likewise (values as I8 then compared
exactly, scales as F64). Scales go to the next step as f32, as a device stores them.

Rounding boundaries: an f32 device computes x / s about 1e-5 off the float64 value, so an element
within that of a half-integer may round the other way (one step, s, apart). With --min-margin M the
oracle takes the first seed from --seed on whose every quantized x / s is at least M from a
half-integer (prefill and every step), so a device run must round exactly as float64 does; the seed
and the margin go to meta.json. Without it the seed is used as given.

Also in meta.json: the f32-cache model's logits error (gpt2_oracle.forward, the same weights and
tokens): max |int8 - f32| / max |f32| per call, what the quantization costs.
"""
import json
import math
import os

import torch

import sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench", "oracle"))  # common, st, gpt2_oracle: shipped for tfc bench
import common
import gpt2_oracle


def quantize(x, qmin, margins):
    """x [B, H, T, dh] -> (q, s): q = cast_i8(round(x / s)) (truncate, saturate), s [B, H, T, 1]."""
    s = torch.clamp(x.abs().amax(dim=-1, keepdim=True) / 127.0, min=qmin)
    r = x / s
    if r.numel() > 0:
        margins.append(float((r - torch.floor(r) - 0.5).abs().min()))
    q = torch.clamp(torch.trunc(torch.round(r)), -128, 127)
    return q, s


def forward(p, a, tokens, past, margins):
    """tokens [B, T] -> logits, present [(kq, ks, vq, vs)] per layer; past: the same list."""
    B, T = tokens.shape
    P = past[0][0].shape[2]
    H, dh = a.heads, a.d // a.heads
    x = p["wte"][tokens.long()] + p["wpe"][torch.arange(P, P + T)]
    allowed = common.causal_mask(T, P)
    present = []
    for l in range(a.layers):
        h = f"h.{l}."
        y = gpt2_oracle.layernorm(x, p[h + "ln_1.weight"], p[h + "ln_1.bias"], a.eps)
        qkv = y @ p[h + "attn.c_attn.weight"] + p[h + "attn.c_attn.bias"]
        q, k, v = (t.view(B, T, H, dh).permute(0, 2, 1, 3) for t in qkv.split(a.d, dim=-1))
        kq, ks = quantize(k, a.qmin, margins)
        vq, vs = quantize(v, a.qmin, margins)
        pk, pks, pv, pvs = past[l]
        kc, ksc = torch.cat([pk, kq], dim=2), torch.cat([pks, ks], dim=2)
        vc, vsc = torch.cat([pv, vq], dim=2), torch.cat([pvs, vs], dim=2)
        present.append((kc, ksc, vc, vsc))
        att = common.masked_softmax(q @ (kc * ksc).transpose(-1, -2) / math.sqrt(dh), allowed)
        o = (att @ (vc * vsc)).permute(0, 2, 1, 3).reshape(B, T, a.d)
        x = x + o @ p[h + "attn.c_proj.weight"] + p[h + "attn.c_proj.bias"]
        y = gpt2_oracle.layernorm(x, p[h + "ln_2.weight"], p[h + "ln_2.bias"], a.eps)
        m = gpt2_oracle.gelu_new(y @ p[h + "mlp.c_fc.weight"] + p[h + "mlp.c_fc.bias"])
        x = x + m @ p[h + "mlp.c_proj.weight"] + p[h + "mlp.c_proj.bias"]
    x = gpt2_oracle.layernorm(x, p["ln_f.weight"], p["ln_f.bias"], a.eps)
    return x @ p["wte"].T, present


def as_stored(present):
    """The cache as the next call receives it: scales rounded to f32 (values are exact integers)."""
    return [(kq, ks.float().double(), vq, vs.float().double()) for kq, ks, vq, vs in present]


def cache(prefix, layers, dtype):
    out = {}
    for l, (kq, ks, vq, vs) in enumerate(layers):
        out[f"{prefix}.{l}.key"] = kq.to(torch.int8)
        out[f"{prefix}.{l}.key_scale"] = ks.to(dtype)
        out[f"{prefix}.{l}.value"] = vq.to(torch.int8)
        out[f"{prefix}.{l}.value_scale"] = vs.to(dtype)
    return out


def rel_error(got, want):
    return float((got - want).abs().max() / want.abs().max())


def run(a, seed):
    """Prefill + a.steps decode steps at one seed: (weights, calls, margin, f32-cache errors)."""
    w = common.Weights(seed)
    p = gpt2_oracle.make_weights(w, a)
    tokens = w.tokens((a.batch, a.seq), a.vocab)
    steps = [w.tokens((a.batch, 1), a.vocab) for _ in range(a.steps)]
    dh = a.d // a.heads
    z8 = torch.zeros(a.batch, a.heads, 0, dh, dtype=torch.float64)
    z1 = torch.zeros(a.batch, a.heads, 0, 1, dtype=torch.float64)
    past = [(z8, z1, z8, z1) for _ in range(a.layers)]
    f32_past = [(z8, z8) for _ in range(a.layers)]
    margins, calls, errors = [], [], []
    with torch.no_grad():
        for t in [tokens] + steps:
            logits, present = forward(p, a, t, past, margins)
            ref, f32_past = gpt2_oracle.forward(p, a, t, f32_past)
            errors.append(rel_error(logits, ref))
            calls.append((t, past, logits, present))
            past = as_stored(present)
    return w, calls, min(margins), errors


def main():
    ap = common.parser(__doc__)
    gpt2_oracle.add_args(ap)
    ap.add_argument("--steps", type=int, default=1, help="decode steps after the prefill")
    ap.add_argument("--qmin", type=float, default=1e-6, help="smallest scale (the example's qmin)")
    ap.add_argument("--min-margin", type=float, default=0.0, help="search seeds until every x / s is this far from a half-integer")
    ap.add_argument("--tries", type=int, default=400)
    a = ap.parse_args()
    for seed in range(a.seed, a.seed + a.tries):
        w, calls, margin, errors = run(a, seed)
        if margin >= a.min_margin:
            break
    else:
        raise SystemExit(f"no seed in {a.seed}..{a.seed + a.tries - 1} keeps every x / s {a.min_margin} from a half-integer")
    for i, (t, past, logits, present) in enumerate(calls):
        prefix = "" if i == 0 else f"decode{i - 1}_"
        common.write(a.out, w.stored if i == 0 else None, {"tokens": t, **cache("past", past, torch.float32)},
                     {"logits": logits, **cache("present", present, torch.float64)}, prefix=prefix)
    with open(os.path.join(a.out, "meta.json"), "w") as f:
        json.dump({"seed": seed, "margin": margin, "f32_cache_logits_error": errors}, f)


if __name__ == "__main__":
    main()
