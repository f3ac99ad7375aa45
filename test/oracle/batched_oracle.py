"""PyTorch oracle for examples/variants/gpt2-batched.tfx: one decode call for a batch of sequences
with different cache lengths. Each sequence is run alone through gpt2_oracle.forward (its history,
then its new tokens with the history's cache); the batched inputs pack those caches into S slots
per row (slots past a row's length hold noise, which the mask must ignore), and the expected
present caches are the packed caches with each row's new slots written.

  /usr/bin/python3 test/oracle/batched_oracle.py --out DIR --seed 0 --lengths 5,0,11 --new 2 --slots 16
With --window W every query sees only its W most recent positions (the sliding-window paged model).
"""
import torch

import os
import sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench", "oracle"))  # common, st, gpt2_oracle: shipped for tfc bench
import common
import gpt2_oracle


def main():
    ap = common.parser(__doc__)
    gpt2_oracle.add_args(ap)
    ap.add_argument("--lengths", default="5,0,11", help="tokens already cached per sequence")
    ap.add_argument("--new", type=int, default=1, help="new tokens per sequence (T)")
    ap.add_argument("--slots", type=int, default=16, help="cache slots per sequence (S)")
    a = ap.parse_args()
    lengths = [int(x) for x in a.lengths.split(",")]
    B, T, S, H, dh = len(lengths), a.new, a.slots, a.heads, a.d // a.heads
    assert all(n + T <= S for n in lengths), "every row needs lengths[b] + T <= S"
    w = common.Weights(a.seed)
    p = gpt2_oracle.make_weights(w, a)
    history = [w.tokens((1, n), a.vocab) for n in lengths]
    new = w.tokens((B, T), a.vocab)
    noise = [(torch.randn((B, H, S, dh), generator=w.gen, dtype=torch.float64),
              torch.randn((B, H, S, dh), generator=w.gen, dtype=torch.float64)) for _ in range(a.layers)]
    past = [(k.clone(), v.clone()) for k, v in noise]
    present = [(k.clone(), v.clone()) for k, v in noise]
    logits = []
    with torch.no_grad():
        for b, n in enumerate(lengths):
            if n > 0:
                _, cache = gpt2_oracle.forward(p, a, history[b])
            else:
                cache = [(torch.zeros(1, H, 0, dh, dtype=torch.float64),) * 2 for _ in range(a.layers)]
            out, grown = gpt2_oracle.forward(p, a, new[b:b + 1], cache)
            logits.append(out[0])
            for l in range(a.layers):
                for i in range(2):
                    past[l][i][b, :, :n] = cache[l][i][0]
                    present[l][i][b, :, :n + T] = grown[l][i][0]
    inputs = {"tokens": new, "lengths": torch.tensor(lengths, dtype=torch.int32), **gpt2_oracle.kv("past", past, torch.float32)}
    common.write(a.out, w.stored, inputs, {"logits": torch.stack(logits), **gpt2_oracle.kv("present", present, torch.float64)})


if __name__ == "__main__":
    main()
