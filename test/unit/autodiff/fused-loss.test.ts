// The fused cross-entropy (src/ops/cross-entropy.ts, src/autodiff/fused-loss.ts) against the
// catalog-op loss it replaces: the loss and every weight gradient of charlm (untied head
// `@ transpose(lm_head)`), GPT-2 tiny (tied `@ transpose(wte)`), the encoder-decoder (a head with a
// bias) and a plain `h @ W` head agree on the float64 interpreter within 1e-9.
import { describe, expect, it } from 'vitest';
import { interpret } from '../../../src/interp/interpret.js';
import { verifyGraph } from '../../../src/graph/verify.js';
import { fusedTrainingGrad, trainingFeeds } from '../../helpers/training.js';

const models = [
  { file: 'examples/charlm/charlm.tfx', config: { layers: 1, d: 32, ffn: 64 }, transposed: true, bias: false, vocab: 96 },
  { file: 'examples/gpt2.tfx', config: { vocab: 64, ctx: 32, d: 32, heads: 2, layers: 2 }, transposed: true, bias: false, vocab: 64 },
  { file: 'examples/transformer.tfx', config: { vocab: 64, d: 32, heads: 4, layers: 1, ffn: 64 }, transposed: true, bias: true, vocab: 64 },
];

describe('fused cross-entropy vs the unfused loss (float64 interpreter)', () => {
  for (const m of models) {
    it(m.file, () => {
      const dims = { B: 2, T: 7, ...(m.file.endsWith('transformer.tfx') ? { S: 5 } : {}) };
      const fused = fusedTrainingGrad(m.file, m.config, dims, true);
      const unfused = fusedTrainingGrad(m.file, m.config, dims, false);
      expect(verifyGraph(fused)).toEqual([]);
      const ce = fused.nodes.filter((n) => n.op === 'fused_cross_entropy');
      expect(ce).toHaveLength(1);
      expect(ce[0]?.attrs['transpose_w']).toEqual({ kind: 'bool', value: m.transposed });
      expect(ce[0]?.operands.length).toBe(m.bias ? 4 : 3);
      expect(unfused.nodes.some((n) => n.op === 'fused_cross_entropy')).toBe(false);
      const { weights, inputs } = trainingFeeds(unfused, new Map(Object.entries(dims)), 3, m.vocab);
      const want = interpret(unfused, { inputs, weights }).outputs;
      const got = interpret(fused, { inputs, weights }).outputs;
      expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
      let worst = 0;
      for (const [name, ref] of want) {
        const x = got.get(name);
        const scale = Math.max(...ref.data.map(Math.abs), 1e-30);
        const err = Math.max(...ref.data.map((v, j) => Math.abs(v - (x?.data[j] ?? NaN)))) / scale;
        worst = Math.max(worst, err);
        expect(err, name).toBeLessThanOrEqual(1e-9);
      }
      console.log(`${m.file}: loss + ${want.size - 1} gradients, fused vs unfused cross-entropy worst ${worst.toExponential(2)}`);
    });
  }
});
