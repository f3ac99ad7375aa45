"""PyTorch autograd oracle for `grad` (issue 17): the cross-entropy loss of a model's logits
against seeded targets (mean over tokens), and its gradient w.r.t. every weight, in float64 from
the same seeded f32 weights as the forward oracles. Writes weights.safetensors, inputs.safetensors
(the model's inputs plus `targets`) and expected.safetensors (`loss` and `grad.<weight name>`).

  /usr/bin/python3 test/oracle/grad_oracle.py --model gpt2 --out DIR --seed 0 --layers 2 --d 64 \
      --heads 4 --vocab 256 --ctx 64 --batch 2 --seq 8
--model llama (empty KV cache, P = 0) and --model transformer (--src, --tgt) likewise.
"""
import torch

import os
import sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench", "oracle"))  # common, st, gpt2_oracle: shipped for tfc bench
import common
import gpt2_oracle
import llama_oracle
import transformer_oracle


def cross_entropy(logits, targets):
    v = logits.shape[-1]
    return torch.nn.functional.cross_entropy(logits.reshape(-1, v), targets.reshape(-1).long())


def main():
    ap = common.parser(__doc__)
    ap.add_argument("--model", required=True, choices=["gpt2", "llama", "transformer"])
    ap.add_argument("--vocab", type=int, default=256)
    ap.add_argument("--ctx", type=int, default=64)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", dest="kv_heads", type=int, default=2)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--ffn", type=int, default=96)
    ap.add_argument("--eps", type=float, default=1e-5)
    ap.add_argument("--theta", type=float, default=10000.0)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seq", type=int, default=8)
    ap.add_argument("--src", type=int, default=5)
    a = ap.parse_args()
    w = common.Weights(a.seed, grad=True)
    if a.model == "gpt2":
        p = gpt2_oracle.make_weights(w, a)
        tokens = w.tokens((a.batch, a.seq), a.vocab)
        inputs = {"tokens": tokens}
        logits, _ = gpt2_oracle.forward(p, a, tokens)
        params = dict(w.leaves)
    elif a.model == "llama":
        p = llama_oracle.make_weights(w, a)
        tokens = w.tokens((a.batch, a.seq), a.vocab)
        dh = a.d // a.heads
        empty = [(torch.zeros(a.batch, a.kv_heads, 0, dh, dtype=torch.float64),) * 2 for _ in range(a.layers)]
        inputs = {"tokens": tokens, **{k: v.float() for k, v in llama_oracle.named("past", empty).items()}}
        logits, _ = llama_oracle.forward(p, a, tokens, empty)
        params = dict(w.leaves)
    else:
        m = transformer_oracle.build(w, a)
        src = w.tokens((a.batch, a.src), a.vocab)
        tgt = w.tokens((a.batch, a.seq), a.vocab)
        inputs = {"src": src, "tgt": tgt}
        logits = transformer_oracle.forward(m, a, src, tgt)
        # nn.Transformer's parameters are its own tensors (load_state_dict copied the leaves).
        params = {k: v for k, v in w.leaves.items() if not k.startswith(("encoder.", "decoder."))}
        params.update(dict(m["net"].named_parameters()))
    targets = w.tokens(tuple(logits.shape[:-1]), a.vocab)
    loss = cross_entropy(logits, targets)
    loss.backward()
    expected = {"loss": loss.detach()}
    for name, t in params.items():
        assert t.grad is not None, name
        expected["grad." + name] = t.grad
    common.write(a.out, w.stored, {**inputs, "targets": targets}, expected)


if __name__ == "__main__":
    main()
