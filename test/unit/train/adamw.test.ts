// AdamW + global-norm clipping appended as graph ops (src/train/adamw.ts), run by the float64
// interpreter for three steps, against torch.optim.AdamW + clip_grad_norm_ in float64 on the
// same weights and gradients: the trajectories agree to 1e-12 relative (float64 rounding only).
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import type { Tensor64 } from '../../../src/base/tensor.js';
import { interpret } from '../../../src/interp/interpret.js';
import { strAttr } from '../../../src/graph/ir.js';
import { adamNames, appendAdamW, defaultAdamW } from '../../../src/train/adamw.js';
import { verifyGraph } from '../../../src/graph/verify.js';
import { tensorFor, tfxGraph } from '../../helpers/tensors.js';

const src = `
weight w1: f32[3, 4]
weight w2: f32[5]
input g1: f32[3, 4]
input g2: f32[5]
output s: f32[5]
model m {
  s = w2 * 2.0 + sum(sum(w1))
}
`;

interface Case {
  readonly weights: Record<string, number[]>;
  readonly grads: Record<string, number[]>[];
  readonly lrs: number[];
}

function torchAdamW(c: Case, clip: number, h: { beta1: number; beta2: number; eps: number; weightDecay: number } = defaultAdamW): Record<string, number[]>[] {
  const py = `
import json, sys, torch
c = json.load(sys.stdin)
w = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in c["weights"].items()}
opt = torch.optim.AdamW(list(w.values()), lr=1.0, betas=(${h.beta1}, ${h.beta2}), eps=${h.eps}, weight_decay=${h.weightDecay})
out = []
for grads, lr in zip(c["grads"], c["lrs"]):
    for g in opt.param_groups:
        g["lr"] = lr
    for k, p in w.items():
        p.grad = torch.tensor(grads[k], dtype=torch.float64)
    torch.nn.utils.clip_grad_norm_(list(w.values()), ${clip})
    opt.step()
    out.append({k: p.detach().tolist() for k, p in w.items()})
print(json.dumps(out))
`;
  const r = spawnSync('/usr/bin/python3', ['-c', py], { input: JSON.stringify(c), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout) as Record<string, number[]>[];
}

function tensor(shape: number[], data: number[]): Tensor64 {
  return { dtype: 'f32', shape, data: Float64Array.from(data) };
}

describe('appendAdamW', () => {
  const base = tfxGraph(src, 'adamw.tfx');
  const inputId = (name: string): number => base.nodes.find((n) => n.op === 'input' && strAttr(n, 'name') === name)?.id ?? -1;
  const shapes: Record<string, number[]> = { w1: [3, 4], w2: [5] };
  const flat = (name: string, seed: number, scale: number): number[] => Array.from(tensorFor('f32', shapes[name] ?? [], seed, 11, scale).data);

  for (const [label, gradScale] of [
    ['clipping active (||G|| > 1)', 3],
    ['clipping inactive (||G|| < 1)', 0.05],
  ] as const) {
    it(`matches torch.optim.AdamW + clip_grad_norm_ over three steps, ${label}`, () => {
      const g = appendAdamW(base, new Map([['w1', inputId('g1')], ['w2', inputId('g2')]]), defaultAdamW);
      verifyGraph(g);
      const c: Case = {
        weights: { w1: flat('w1', 1, 1), w2: flat('w2', 2, 1) },
        grads: [0, 1, 2].map((s) => ({ w1: flat('w1', 10 + s, gradScale), w2: flat('w2', 20 + s, gradScale) })),
        lrs: [0.1, 0.05, 0.02],
      };
      const want = torchAdamW(c, defaultAdamW.clipNorm);
      const state = new Map<string, Tensor64>();
      for (const [k, v] of Object.entries(c.weights)) {
        state.set(k, tensor(shapes[k] ?? [], v));
        state.set(adamNames.m(k), tensor(shapes[k] ?? [], v.map(() => 0)));
        state.set(adamNames.v(k), tensor(shapes[k] ?? [], v.map(() => 0)));
      }
      let sawClip = false;
      c.grads.forEach((grads, i) => {
        const t = i + 1;
        const inputs = new Map<string, Tensor64>([
          ['g1', tensor([3, 4], grads['w1'] ?? [])],
          ['g2', tensor([5], grads['w2'] ?? [])],
          [adamNames.lr, tensor([], [c.lrs[i] ?? 0])],
          [adamNames.bc1, tensor([], [1 - 0.9 ** t])],
          [adamNames.bc2, tensor([], [1 - 0.999 ** t])],
          ...['w1', 'w2'].flatMap((k) => [adamNames.m(k), adamNames.v(k)].map((n) => [n, state.get(n) as Tensor64] as const)),
        ]);
        const weights = new Map(['w1', 'w2'].map((k) => [k, state.get(k) as Tensor64]));
        const out = interpret(g, { inputs, weights }).outputs;
        for (const [name, tensorOut] of out) if (name !== 's') state.set(name, tensorOut);
        sawClip ||= (out.get(adamNames.gradNorm)?.data[0] ?? 0) > 1;
        for (const k of ['w1', 'w2']) {
          const got = Array.from(out.get(k)?.data ?? []);
          const ref = want[i]?.[k] ?? [];
          expect(got.length).toBe(ref.length);
          const scale = Math.max(...ref.map(Math.abs));
          const err = Math.max(...got.map((x, j) => Math.abs(x - (ref[j] ?? NaN)))) / scale;
          expect(err, `${k} after step ${t}`).toBeLessThanOrEqual(1e-12);
        }
      });
      expect(sawClip).toBe(gradScale > 1);
    });
  }

  it('hyperInputs: betas, eps, weight decay and clip fed as inputs give torch\'s AdamW with those values', () => {
    const h = { beta1: 0.8, beta2: 0.99, eps: 1e-6, weightDecay: 0.1, clipNorm: 0.5 };
    const g = appendAdamW(base, new Map([['w1', inputId('g1')], ['w2', inputId('g2')]]), { ...defaultAdamW, hyperInputs: true });
    verifyGraph(g);
    // The constants are gone: the values come from the inputs only.
    const inputs = g.nodes.filter((n) => n.op === 'input').map((n) => strAttr(n, 'name'));
    for (const name of Object.values(adamNames.hyper)) expect(inputs).toContain(name);
    const c: Case = { weights: { w1: flat('w1', 3, 1), w2: flat('w2', 4, 1) }, grads: [0, 1, 2].map((s) => ({ w1: flat('w1', 30 + s, 2), w2: flat('w2', 40 + s, 2) })), lrs: [0.1, 0.05, 0.02] };
    const want = torchAdamW(c, h.clipNorm, h);
    const state = new Map<string, Tensor64>();
    for (const [k, v] of Object.entries(c.weights)) {
      state.set(k, tensor(shapes[k] ?? [], v));
      state.set(adamNames.m(k), tensor(shapes[k] ?? [], v.map(() => 0)));
      state.set(adamNames.v(k), tensor(shapes[k] ?? [], v.map(() => 0)));
    }
    c.grads.forEach((grads, i) => {
      const t = i + 1;
      const feeds = new Map<string, Tensor64>([
        ['g1', tensor([3, 4], grads['w1'] ?? [])],
        ['g2', tensor([5], grads['w2'] ?? [])],
        [adamNames.lr, tensor([], [c.lrs[i] ?? 0])],
        [adamNames.bc1, tensor([], [1 - h.beta1 ** t])],
        [adamNames.bc2, tensor([], [1 - h.beta2 ** t])],
        ...Object.entries(adamNames.hyper).map(([key, name]) => [name, tensor([], [h[key as keyof typeof h]])] as const),
        ...['w1', 'w2'].flatMap((k) => [adamNames.m(k), adamNames.v(k)].map((n) => [n, state.get(n) as Tensor64] as const)),
      ]);
      const out = interpret(g, { inputs: feeds, weights: new Map(['w1', 'w2'].map((k) => [k, state.get(k) as Tensor64])) }).outputs;
      for (const [name, tensorOut] of out) if (name !== 's') state.set(name, tensorOut);
      expect(out.get(adamNames.gradNorm)?.data[0] ?? 0).toBeGreaterThan(h.clipNorm); // clipping active
      for (const k of ['w1', 'w2']) {
        const got = Array.from(out.get(k)?.data ?? []);
        const ref = want[i]?.[k] ?? [];
        const scale = Math.max(...ref.map(Math.abs));
        expect(Math.max(...got.map((x, j) => Math.abs(x - (ref[j] ?? NaN)))) / scale, `${k} after step ${t}`).toBeLessThanOrEqual(1e-12);
      }
    });
  });

  it('refuses a gradient for a name that is not a weight', () => {
    expect(() => appendAdamW(base, new Map([['nope', inputId('g1')]]))).toThrow(/'nope' is not a weight/);
  });
});
