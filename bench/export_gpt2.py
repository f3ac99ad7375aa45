"""`tfc bench model` helper: the PyTorch oracle's GPT-2 (bench/oracle/gpt2_oracle.py) with seeded
weights, exported to ONNX with torch.onnx (float32, fixed shapes) for ONNX Runtime Web, plus the
weights, tokens and float64 expected logits as safetensors for tfc and the error check.

  /usr/bin/python3 bench/export_gpt2.py --out DIR --layers 2 --d 128 --heads 4 --vocab 512 \
      --ctx 256 --batch 1 --seq 128
Writes DIR/weights.safetensors, inputs.safetensors, expected.safetensors, model.onnx.
torch 1.13's exporter serializes the protobuf itself: the `onnx` python package is not needed.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "oracle"))
import common  # noqa: E402
import gpt2_oracle  # noqa: E402


class Gpt2(torch.nn.Module):
    def __init__(self, p, a):
        super().__init__()
        self.names = sorted(p)
        for i, n in enumerate(self.names):
            self.register_buffer(f"w{i}", p[n].float())
        self.a = a

    def forward(self, tokens):
        p = {n: getattr(self, f"w{i}") for i, n in enumerate(self.names)}
        logits, _ = gpt2_oracle.forward(p, self.a, tokens)
        return logits


def main():
    ap = common.parser(__doc__)
    gpt2_oracle.add_args(ap)
    a = ap.parse_args()
    w = common.Weights(a.seed)
    p = gpt2_oracle.make_weights(w, a)
    tokens = w.tokens((a.batch, a.seq), a.vocab)
    with torch.no_grad():
        logits, _ = gpt2_oracle.forward(p, a, tokens)
    common.write(a.out, w.stored, {"tokens": tokens}, {"logits": logits})
    model = Gpt2(p, a).eval()
    with torch.no_grad():
        torch.onnx.export(model, (tokens.long(),), os.path.join(a.out, "model.onnx"), input_names=["tokens"],
                          output_names=["logits"], opset_version=17, do_constant_folding=True)


if __name__ == "__main__":
    main()
