"""PyTorch oracle for examples/transformer.tfx: the original encoder-decoder Transformer
("Attention is all you need": post-LN, ReLU FFN, sinusoidal positions, embeddings scaled by
sqrt(d)). The layers are torch's own nn.Transformer in float64, so the names are its state-dict
names (in_proj_weight [3d, d] packs q, k, v; Linear weights are [out, in]); around it sit
src_embed/tgt_embed and a `generator` Linear to the vocabulary.

  /usr/bin/python3 test/oracle/transformer_oracle.py --out DIR --seed 0 --layers 2 --d 64 \
      --heads 4 --ffn 128 --vocab 256 --batch 2 --src 11 --tgt 7
"""
import math

import torch

import os
import sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench", "oracle"))  # common, st, gpt2_oracle: shipped for tfc bench
import common


def sinusoid(n, d):
    """pe[t, 2i] = sin(t / 10000^(2i/d)), pe[t, 2i + 1] = cos(t / 10000^(2i/d))."""
    pos = torch.arange(n, dtype=torch.float64).view(n, 1)
    two_i = torch.arange(0, d, 2, dtype=torch.float64).view(1, -1)
    angle = pos / torch.pow(torch.tensor(10000.0, dtype=torch.float64), two_i / d)
    pe = torch.zeros(n, d, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle)
    return pe


def build(w, a):
    """The seeded model: torch's nn.Transformer in float64 plus the embeddings and the generator."""
    net = torch.nn.Transformer(d_model=a.d, nhead=a.heads, num_encoder_layers=a.layers,
                               num_decoder_layers=a.layers, dim_feedforward=a.ffn, dropout=0.0,
                               layer_norm_eps=a.eps, batch_first=True, norm_first=False).double()
    # train() with dropout 0 is deterministic and keeps torch off its fused inference fast path,
    # so the reference is the plain composition of ops.
    net.train()
    state = {}
    for name, t in net.state_dict().items():
        if name.endswith("norm1.weight") or name.endswith("norm2.weight") or name.endswith("norm3.weight") \
                or name.endswith("norm.weight"):
            state[name] = w.near_one(name, tuple(t.shape))
        elif name.endswith("bias"):
            state[name] = w.normal(name, tuple(t.shape), 0.1)
        else:
            state[name] = w.normal(name, tuple(t.shape), 1.0 / math.sqrt(t.shape[-1]))
    with torch.no_grad():
        net.load_state_dict(state)
    return {
        "net": net,
        "src_embed": w.normal("src_embed.weight", (a.vocab, a.d), 1.0 / math.sqrt(a.d)),
        "tgt_embed": w.normal("tgt_embed.weight", (a.vocab, a.d), 1.0 / math.sqrt(a.d)),
        "gen_w": w.normal("generator.weight", (a.vocab, a.d), 1.0 / math.sqrt(a.d)),
        "gen_b": w.normal("generator.bias", (a.vocab,), 0.1),
    }


def forward(m, a, src, tgt):
    """src [B, S], tgt [B, T] -> logits [B, T, vocab]."""
    xs = m["src_embed"][src.long()] * math.sqrt(a.d) + sinusoid(src.shape[1], a.d)
    xt = m["tgt_embed"][tgt.long()] * math.sqrt(a.d) + sinusoid(tgt.shape[1], a.d)
    # An additive float mask: 0 where key <= query, -inf above the diagonal.
    t = tgt.shape[1]
    tgt_mask = torch.zeros(t, t, dtype=torch.float64).masked_fill(~common.causal_mask(t), float("-inf"))
    y = m["net"](xs, xt, tgt_mask=tgt_mask)
    return y @ m["gen_w"].T + m["gen_b"]


def main():
    ap = common.parser(__doc__)
    ap.add_argument("--vocab", type=int, default=256)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--ffn", type=int, default=128)
    ap.add_argument("--eps", type=float, default=1e-5)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--src", type=int, default=11)
    ap.add_argument("--tgt", type=int, default=7)
    a = ap.parse_args()

    w = common.Weights(a.seed)
    m = build(w, a)
    src = w.tokens((a.batch, a.src), a.vocab)
    tgt = w.tokens((a.batch, a.tgt), a.vocab)
    with torch.no_grad():
        logits = forward(m, a, src, tgt)
    common.write(a.out, w.stored, {"src": src, "tgt": tgt}, {"logits": logits})


if __name__ == "__main__":
    main()
