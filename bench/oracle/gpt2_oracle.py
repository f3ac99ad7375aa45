"""PyTorch oracle for examples/gpt2.tfx: GPT-2 with Hugging Face names and layouts (Conv1D weights
are [in, out]), written out in torch ops in float64. Writes weights/inputs/expected .safetensors.

  /usr/bin/python3 bench/oracle/gpt2_oracle.py --out DIR --seed 0 --layers 2 --d 64 --heads 4 \
      --vocab 256 --ctx 64 --batch 2 --seq 32
With --kv it serves examples/variants/gpt2-kv.tfx instead: inputs.safetensors holds the tokens and
an empty cache (past.{l}.key/value [B, heads, 0, dh]), expected.safetensors the logits and
present.{l}.key/value; decode_inputs/decode_expected.safetensors are one more token per row with
the prefill's present as past. --window W: every query sees only its W most recent positions
(examples/variants/gpt2-paged.tfx --set window=W; `tfc bench decode`'s tfc-paged-sw row).
"""
import math

import torch

import common


def gelu_new(x):
    # Hugging Face's gelu_new: the tanh approximation.
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


def layernorm(x, g, b, eps):
    return torch.nn.functional.layer_norm(x, (x.shape[-1],), g, b, eps)


def make_weights(w, a):
    d, s = a.d, 1.0 / math.sqrt(a.d)
    p = {}
    p["wte"] = w.normal("wte.weight", (a.vocab, d), 0.5)
    p["wpe"] = w.normal("wpe.weight", (a.ctx, d), 0.5)
    for l in range(a.layers):
        h = f"h.{l}."
        p[h + "ln_1.weight"] = w.near_one(h + "ln_1.weight", (d,))
        p[h + "ln_1.bias"] = w.normal(h + "ln_1.bias", (d,), 0.1)
        p[h + "attn.c_attn.weight"] = w.normal(h + "attn.c_attn.weight", (d, 3 * d), s)
        p[h + "attn.c_attn.bias"] = w.normal(h + "attn.c_attn.bias", (3 * d,), 0.1)
        p[h + "attn.c_proj.weight"] = w.normal(h + "attn.c_proj.weight", (d, d), s)
        p[h + "attn.c_proj.bias"] = w.normal(h + "attn.c_proj.bias", (d,), 0.1)
        p[h + "ln_2.weight"] = w.near_one(h + "ln_2.weight", (d,))
        p[h + "ln_2.bias"] = w.normal(h + "ln_2.bias", (d,), 0.1)
        p[h + "mlp.c_fc.weight"] = w.normal(h + "mlp.c_fc.weight", (d, 4 * d), s)
        p[h + "mlp.c_fc.bias"] = w.normal(h + "mlp.c_fc.bias", (4 * d,), 0.1)
        p[h + "mlp.c_proj.weight"] = w.normal(h + "mlp.c_proj.weight", (4 * d, d), 1.0 / math.sqrt(4 * d))
        p[h + "mlp.c_proj.bias"] = w.normal(h + "mlp.c_proj.bias", (d,), 0.1)
    p["ln_f.weight"] = w.near_one("ln_f.weight", (d,))
    p["ln_f.bias"] = w.normal("ln_f.bias", (d,), 0.1)
    return p


def forward(p, a, tokens, past=None):
    """tokens [B, T] -> logits [B, T, vocab], present [(k, v)] per layer ([B, heads, P + T, dh]).
    past: optional list of (k, v) from an earlier call (the KV cache)."""
    B, T = tokens.shape
    P = 0 if past is None else past[0][0].shape[2]
    H, dh = a.heads, a.d // a.heads
    pos = torch.arange(P, P + T)
    x = p["wte"][tokens.long()] + p["wpe"][pos]
    allowed = common.causal_mask(T, P)
    window = getattr(a, "window", None)
    if window is not None:
        # Sliding window: query at position P + q sees keys k with P + q - k < window.
        allowed = allowed & (torch.arange(P, P + T).view(T, 1) - torch.arange(P + T).view(1, P + T) < window)
    present = []
    for l in range(a.layers):
        h = f"h.{l}."
        y = layernorm(x, p[h + "ln_1.weight"], p[h + "ln_1.bias"], a.eps)
        qkv = y @ p[h + "attn.c_attn.weight"] + p[h + "attn.c_attn.bias"]
        q, k, v = qkv.split(a.d, dim=-1)
        q, k, v = (t.view(B, T, H, dh).permute(0, 2, 1, 3) for t in (q, k, v))
        if past is not None:
            k = torch.cat([past[l][0], k], dim=2)
            v = torch.cat([past[l][1], v], dim=2)
        present.append((k, v))
        att = common.masked_softmax(q @ k.transpose(-1, -2) / math.sqrt(dh), allowed)
        o = (att @ v).permute(0, 2, 1, 3).reshape(B, T, a.d)
        x = x + o @ p[h + "attn.c_proj.weight"] + p[h + "attn.c_proj.bias"]
        y = layernorm(x, p[h + "ln_2.weight"], p[h + "ln_2.bias"], a.eps)
        m = gelu_new(y @ p[h + "mlp.c_fc.weight"] + p[h + "mlp.c_fc.bias"])
        x = x + m @ p[h + "mlp.c_proj.weight"] + p[h + "mlp.c_proj.bias"]
    x = layernorm(x, p["ln_f.weight"], p["ln_f.bias"], a.eps)
    return x @ p["wte"].T, present


def add_args(ap):
    ap.add_argument("--vocab", type=int, default=256)
    ap.add_argument("--ctx", type=int, default=64)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--eps", type=float, default=1e-5)
    ap.add_argument("--window", type=int, default=None, help="sliding window: a query sees its WINDOW most recent positions (gpt2-paged.tfx --set window)")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seq", type=int, default=32)
    ap.add_argument("--kv", action="store_true", help="write prefill + decode files for gpt2-kv.tfx")


def main():
    ap = common.parser(__doc__)
    add_args(ap)
    a = ap.parse_args()
    w = common.Weights(a.seed)
    p = make_weights(w, a)
    tokens = w.tokens((a.batch, a.seq), a.vocab)
    if not a.kv:
        with torch.no_grad():
            logits, _ = forward(p, a, tokens)
        common.write(a.out, w.stored, {"tokens": tokens}, {"logits": logits})
        return
    dh = a.d // a.heads
    nxt = w.tokens((a.batch, 1), a.vocab)
    empty = [(torch.zeros(a.batch, a.heads, 0, dh, dtype=torch.float64),) * 2 for _ in range(a.layers)]
    with torch.no_grad():
        logits, present = forward(p, a, tokens, empty)
        logits2, present2 = forward(p, a, nxt, present)
        full, _ = forward(p, a, torch.cat([tokens, nxt], dim=1))
    assert torch.allclose(logits2[:, -1], full[:, -1], rtol=0, atol=1e-9), "KV-cache step disagrees"
    common.write(a.out, w.stored, {"tokens": tokens, **kv("past", empty, torch.float32)},
                 {"logits": logits, **kv("present", present, torch.float64)})
    common.write(a.out, None, {"tokens": nxt, **kv("past", present, torch.float32)},
                 {"logits": logits2, **kv("present", present2, torch.float64)}, prefix="decode_")


def kv(prefix, pairs, dtype):
    out = {}
    for l, (k, v) in enumerate(pairs):
        out[f"{prefix}.{l}.key"] = k.to(dtype)
        out[f"{prefix}.{l}.value"] = v.to(dtype)
    return out


if __name__ == "__main__":
    main()
