"""Shared pieces of the oracle scripts: seeded f32 weights computed in f64, argument parsing, output."""
import argparse
import os

import torch

import st


class Weights:
    """Seeded random weights. Each tensor is drawn in float32 (that is what the safetensors file
    holds, so tfc and torch read identical values) and used in float64 for the math."""

    def __init__(self, seed, grad=False):
        self.gen = torch.Generator().manual_seed(seed)
        self.stored = {}  # name -> f32 tensor written to weights.safetensors
        self.grad = grad
        self.leaves = {}  # with grad: name -> the float64 leaf tensor autograd fills .grad of

    def _keep(self, name, t32):
        assert name not in self.stored, name
        self.stored[name] = t32
        t = t32.double()
        if self.grad:
            t.requires_grad_(True)
            self.leaves[name] = t
        return t

    def normal(self, name, shape, std):
        return self._keep(name, torch.randn(shape, generator=self.gen, dtype=torch.float32) * std)

    def near_one(self, name, shape, spread=0.1):
        """Norm gains: 1 + small noise, so a gain that is ignored or misplaced shows."""
        return self._keep(name, 1.0 + spread * torch.randn(shape, generator=self.gen, dtype=torch.float32))

    def tokens(self, shape, vocab):
        return torch.randint(0, vocab, shape, generator=self.gen, dtype=torch.int64).to(torch.int32)


def parser(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--out", required=True, help="directory for weights/inputs/expected .safetensors")
    p.add_argument("--seed", type=int, default=0)
    return p


def write(out_dir, weights, inputs, expected, prefix=""):
    """weights: f32 tensors; inputs: as declared in the .tfx; expected: stored as F64."""
    os.makedirs(out_dir, exist_ok=True)
    if weights is not None:
        st.save(weights, os.path.join(out_dir, "weights.safetensors"))
    st.save(inputs, os.path.join(out_dir, prefix + "inputs.safetensors"))
    st.save({k: v.double() for k, v in expected.items()}, os.path.join(out_dir, prefix + "expected.safetensors"))


def causal_mask(t, p=0):
    """Boolean [t, p + t]: query q (absolute position p + q) sees key k when k <= q + p."""
    q = torch.arange(t).view(t, 1)
    k = torch.arange(p + t).view(1, p + t)
    return k <= q + p


def masked_softmax(scores, allowed):
    """softmax(where(allowed, s, -inf)) along the last axis."""
    return torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)
