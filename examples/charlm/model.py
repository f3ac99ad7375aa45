"""charlm in PyTorch: the same computation as charlm.tfx, with the same (Hugging Face) weight
names. train.py trains it; test/e2e/host-charlm.test.ts runs it in float64 as the oracle."""
import json
import math
import struct

import torch
import torch.nn.functional as F

CONFIG = dict(vocab=96, d=64, heads=4, kv_heads=2, layers=2, ffn=192, eps=1e-5, theta=10000.0, ctx=128)


def vocab_chars():
    """'\\n' then the 95 printable ASCII characters: id = index in this string."""
    return "\n" + "".join(chr(c) for c in range(32, 127))


def weight_shapes(c=CONFIG):
    d, dh = c["d"], c["d"] // c["heads"]
    s = {"model.embed_tokens.weight": (c["vocab"], d), "model.norm.weight": (d,), "lm_head.weight": (c["vocab"], d)}
    for l in range(c["layers"]):
        p = f"model.layers.{l}."
        s[p + "input_layernorm.weight"] = (d,)
        s[p + "self_attn.q_proj.weight"] = (c["heads"] * dh, d)
        s[p + "self_attn.k_proj.weight"] = (c["kv_heads"] * dh, d)
        s[p + "self_attn.v_proj.weight"] = (c["kv_heads"] * dh, d)
        s[p + "self_attn.o_proj.weight"] = (d, c["heads"] * dh)
        s[p + "post_attention_layernorm.weight"] = (d,)
        s[p + "mlp.gate_proj.weight"] = (c["ffn"], d)
        s[p + "mlp.up_proj.weight"] = (c["ffn"], d)
        s[p + "mlp.down_proj.weight"] = (d, c["ffn"])
    return s


def rmsnorm(x, w, eps):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * w


def rope(x, pos, theta):
    # rotate-half form: pair i is (i, i + half), angle = pos * theta^(-2i/dh)
    dh = x.shape[-1]
    half = dh // 2
    inv = theta ** (torch.arange(half, dtype=x.dtype) * (-2.0 / dh))
    ang = pos.to(x.dtype)[:, None] * inv[None, :]
    ang = torch.cat([ang, ang], dim=-1)
    x1, x2 = x[..., :half], x[..., half:]
    return x * torch.cos(ang) + torch.cat([-x2, x1], dim=-1) * torch.sin(ang)


def forward(w, tokens, past=None, c=CONFIG):
    """tokens: [B, T] int64; past: list of (k, v) [B, kv_heads, P, dh] per layer or None.
    Returns logits [B, T, vocab] and the new cache (present)."""
    B, T = tokens.shape
    H, KV, dh = c["heads"], c["kv_heads"], c["d"] // c["heads"]
    P = 0 if past is None else past[0][0].shape[2]
    pos = torch.arange(P, P + T)
    x = w["model.embed_tokens.weight"][tokens]
    present = []
    for l in range(c["layers"]):
        p = f"model.layers.{l}."
        h = rmsnorm(x, w[p + "input_layernorm.weight"], c["eps"])
        q = (h @ w[p + "self_attn.q_proj.weight"].T).view(B, T, H, dh).transpose(1, 2)
        k = (h @ w[p + "self_attn.k_proj.weight"].T).view(B, T, KV, dh).transpose(1, 2)
        v = (h @ w[p + "self_attn.v_proj.weight"].T).view(B, T, KV, dh).transpose(1, 2)
        q, k = rope(q, pos, c["theta"]), rope(k, pos, c["theta"])
        if past is not None:
            k = torch.cat([past[l][0], k], dim=2)
            v = torch.cat([past[l][1], v], dim=2)
        present.append((k, v))
        kr = k.repeat_interleave(H // KV, dim=1)
        vr = v.repeat_interleave(H // KV, dim=1)
        s = q @ kr.transpose(-1, -2) / math.sqrt(dh)
        S = P + T
        causal = torch.arange(S)[None, :] <= (torch.arange(T)[:, None] + P)
        s = s.masked_fill(~causal, float("-inf"))
        o = (torch.softmax(s, dim=-1) @ vr).transpose(1, 2).reshape(B, T, H * dh)
        x = x + o @ w[p + "self_attn.o_proj.weight"].T
        h = rmsnorm(x, w[p + "post_attention_layernorm.weight"], c["eps"])
        g = F.silu(h @ w[p + "mlp.gate_proj.weight"].T) * (h @ w[p + "mlp.up_proj.weight"].T)
        x = x + g @ w[p + "mlp.down_proj.weight"].T
    logits = rmsnorm(x, w["model.norm.weight"], c["eps"]) @ w["lm_head.weight"].T
    return logits, present


def save_safetensors(path, tensors):
    """Minimal safetensors writer (f32, names sorted) so that no extra package is needed."""
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().to(torch.float32).contiguous()
        b = t.numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def load_safetensors(path, dtype=torch.float64):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    out = {}
    for name, m in header.items():
        if name == "__metadata__":
            continue
        assert m["dtype"] == "F32", m
        a, b = m["data_offsets"]
        t = torch.frombuffer(bytearray(data[8 + n + a : 8 + n + b]), dtype=torch.float32)
        out[name] = t.reshape(m["shape"]).to(dtype)
    return out
