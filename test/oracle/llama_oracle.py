"""PyTorch oracle for examples/llama.tfx: a Llama-style decoder (RMSNorm, rotate-half RoPE,
grouped-query attention, SwiGLU, no biases) with Hugging Face names; Linear weights are [out, in].
Written out in torch ops in float64. Two steps share one set of weights:
  prefill: inputs.safetensors (tokens [B, T], empty past.{l}.key/value [B, kv_heads, 0, dh])
           -> expected.safetensors (logits, present.{l}.key/value)
  decode:  decode_inputs.safetensors (one more token per row, past = the prefill's present)
           -> decode_expected.safetensors
The script also checks that prefill + decode equals one full pass over T + 1 tokens.

  /usr/bin/python3 test/oracle/llama_oracle.py --out DIR --seed 0 --layers 2 --d 64 --heads 8 \
      --kv-heads 2 --ffn 96 --vocab 256 --batch 2 --seq 16
"""
import math

import torch

import os
import sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench", "oracle"))  # common, st, gpt2_oracle: shipped for tfc bench
import common


def rmsnorm(x, g, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * g


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def rope(x, pos, theta):
    """x [B, H, T, dh] at absolute positions pos [T] (Hugging Face's rotate-half form)."""
    dh = x.shape[-1]
    inv_freq = 1.0 / (theta ** (torch.arange(0, dh, 2, dtype=torch.float64) / dh))
    freqs = pos.double().view(-1, 1) * inv_freq.view(1, -1)
    emb = torch.cat([freqs, freqs], dim=-1)
    return x * emb.cos() + rotate_half(x) * emb.sin()


def make_weights(w, a):
    d, dh = a.d, a.d // a.heads
    s = 1.0 / math.sqrt(d)
    p = {"embed": w.normal("model.embed_tokens.weight", (a.vocab, d), 1.0)}
    for l in range(a.layers):
        m = f"model.layers.{l}."
        p[m + "in"] = w.near_one(m + "input_layernorm.weight", (d,))
        p[m + "q"] = w.normal(m + "self_attn.q_proj.weight", (a.heads * dh, d), s)
        p[m + "k"] = w.normal(m + "self_attn.k_proj.weight", (a.kv_heads * dh, d), s)
        p[m + "v"] = w.normal(m + "self_attn.v_proj.weight", (a.kv_heads * dh, d), s)
        p[m + "o"] = w.normal(m + "self_attn.o_proj.weight", (d, a.heads * dh), s)
        p[m + "post"] = w.near_one(m + "post_attention_layernorm.weight", (d,))
        p[m + "gate"] = w.normal(m + "mlp.gate_proj.weight", (a.ffn, d), s)
        p[m + "up"] = w.normal(m + "mlp.up_proj.weight", (a.ffn, d), s)
        p[m + "down"] = w.normal(m + "mlp.down_proj.weight", (d, a.ffn), 1.0 / math.sqrt(a.ffn))
    p["norm"] = w.near_one("model.norm.weight", (d,))
    p["lm_head"] = w.normal("lm_head.weight", (a.vocab, d), s)
    return p


def forward(p, a, tokens, past):
    """tokens [B, T]; past: per layer (k, v) [B, kv_heads, P, dh] -> logits, present (P + T)."""
    B, T = tokens.shape
    P = past[0][0].shape[2]
    H, KV, dh = a.heads, a.kv_heads, a.d // a.heads
    G = H // KV
    pos = torch.arange(P, P + T)
    allowed = common.causal_mask(T, P)
    x = p["embed"][tokens.long()]
    present = []
    for l in range(a.layers):
        m = f"model.layers.{l}."
        y = rmsnorm(x, p[m + "in"], a.eps)
        q = (y @ p[m + "q"].T).view(B, T, H, dh).transpose(1, 2)
        k = (y @ p[m + "k"].T).view(B, T, KV, dh).transpose(1, 2)
        v = (y @ p[m + "v"].T).view(B, T, KV, dh).transpose(1, 2)
        q, k = rope(q, pos, a.theta), rope(k, pos, a.theta)
        k = torch.cat([past[l][0], k], dim=2)
        v = torch.cat([past[l][1], v], dim=2)
        present.append((k, v))
        # Hugging Face's repeat_kv: query head h reads KV head h // G.
        kr = k.repeat_interleave(G, dim=1)
        vr = v.repeat_interleave(G, dim=1)
        att = common.masked_softmax(q @ kr.transpose(-1, -2) / math.sqrt(dh), allowed)
        o = (att @ vr).transpose(1, 2).reshape(B, T, H * dh)
        x = x + o @ p[m + "o"].T
        y = rmsnorm(x, p[m + "post"], a.eps)
        x = x + (torch.nn.functional.silu(y @ p[m + "gate"].T) * (y @ p[m + "up"].T)) @ p[m + "down"].T
    x = rmsnorm(x, p["norm"], a.eps)
    return x @ p["lm_head"].T, present


def named(prefix, present):
    out = {}
    for l, (k, v) in enumerate(present):
        out[f"{prefix}.{l}.key"] = k
        out[f"{prefix}.{l}.value"] = v
    return out


def main():
    ap = common.parser(__doc__)
    ap.add_argument("--vocab", type=int, default=256)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", dest="kv_heads", type=int, default=2)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--ffn", type=int, default=96)
    ap.add_argument("--eps", type=float, default=1e-6)
    ap.add_argument("--theta", type=float, default=10000.0)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seq", type=int, default=16)
    a = ap.parse_args()
    w = common.Weights(a.seed)
    p = make_weights(w, a)
    dh = a.d // a.heads
    tokens = w.tokens((a.batch, a.seq), a.vocab)
    nxt = w.tokens((a.batch, 1), a.vocab)
    empty = [(torch.zeros(a.batch, a.kv_heads, 0, dh, dtype=torch.float64),) * 2 for _ in range(a.layers)]
    with torch.no_grad():
        logits, present = forward(p, a, tokens, empty)
        logits2, present2 = forward(p, a, nxt, present)
        full, _ = forward(p, a, torch.cat([tokens, nxt], dim=1), empty)
    # The cache is right: decoding one token after prefill gives the full pass's last row.
    assert torch.allclose(logits2[:, -1], full[:, -1], rtol=0, atol=1e-9), "KV-cache step disagrees"
    empty32 = {k: v.float() for k, v in named("past", empty).items()}
    common.write(a.out, w.stored, {"tokens": tokens, **empty32}, {"logits": logits, **named("present", present)})
    # The decode step's past is the prefill's present; stored as f32 for a CLI-style run, while
    # the e2e test feeds the interpreter's own f64 present back instead.
    past32 = {k: v.float() for k, v in named("past", present).items()}
    common.write(a.out, None, {"tokens": nxt, **past32}, {"logits": logits2, **named("present", present2)},
                 prefix="decode_")


if __name__ == "__main__":
    main()
