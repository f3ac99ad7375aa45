// scatter(dest, index, values) on WebGPU against the float64 interpreter, and where its result
// lives: in dest's own buffer when nothing reads dest later (an input's buffer becomes the output:
// no copy, and `keepOnDevice` hands back the very buffer the caller passed), in a buffer of its
// own after a copy otherwise (dest read later, dest a weight). Out-of-range offsets are dropped.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkSource } from '../../src/check/check-source.js';
import { compilePlan } from '../../src/compile/plan.js';
import type { Graph } from '../../src/graph/ir.js';
import { interpret } from '../../src/interp/interpret.js';
import type { Plan } from '../../src/kernel/plan/plan.js';
import { runPipeline } from '../../src/passes/driver.js';
import { createPassContext } from '../../src/passes/pass.js';
import { pipelines } from '../../src/passes/pipeline.js';
import type { AcquiredDevice } from '../../src/runtime/device.js';
import { type DeviceTensor, type HostTensor, createSession } from '../../src/runtime/session.js';
import { targetLimitsOf } from '../../src/runtime/target.js';
import type { Tensor64 } from '../../src/base/tensor.js';
import { testDevice } from './helpers.js';

const header = `dims N, M
input pool: f32[N]
input at: i32[M]
input vals: f32[M]
`;
const sources = {
  inPlace: `${header}output out: f32[N]\nmodel m {\n  out = scatter(pool, at, vals)\n}\n`,
  readBefore: `${header}output out: f32[N]\noutput twice: f32[N]\nmodel m {\n  twice = pool * 2\n  out = scatter(pool, at, vals)\n}\n`,
  readAfter: `${header}output out: f32[N]\noutput twice: f32[N]\nmodel m {\n  out = scatter(pool, at, vals)\n  twice = pool * 2\n}\n`,
  intoTemp: `${header}output out: f32[N]\nmodel m {\n  t = pool * 2\n  out = scatter(t, at, vals) + 1\n}\n`,
  intoWeight: `dims M\ninput at: i32[M]\ninput vals: f32[M]\nweight w: f32[12] = "w"\noutput out: f32[12]\nmodel m {\n  out = scatter(w, at, vals)\n}\n`,
};

function graph(src: string): Graph {
  const r = checkSource(src, 'scatter.tfx', new Map());
  if (r.graph === undefined) throw new Error(r.diagnostics.map((d) => d.message).join('; '));
  return r.graph;
}

function plan(g: Graph, dev: AcquiredDevice): Plan {
  return compilePlan(runPipeline(g, pipelines.webgpu, createPassContext({ target: 'webgpu' })), { target: targetLimitsOf(dev) });
}

const t = (dtype: 'f32' | 'i32', data: number[]): Tensor64 => ({ dtype, shape: [data.length], data: Float64Array.from(data) });
const N = 12;
const poolData = Array.from({ length: N }, (_, i) => i * 0.5 - 2);
const inputs = (at: number[], vals: number[]): Map<string, Tensor64> =>
  new Map([
    ['pool', t('f32', poolData)],
    ['at', t('i32', at)],
    ['vals', t('f32', vals)],
  ]);
const bufferOf = (p: Plan, name: string): number | undefined => p.outputs.find((o) => o.name === name)?.buffer;
const inputBuffer = (p: Plan, name: string): number | undefined => p.buffers.find((b) => b.kind === 'input' && b.name === name)?.id;

let dev: AcquiredDevice;
beforeAll(async () => {
  dev = await testDevice();
});
afterAll(() => dev.device.destroy());

describe('scatter', () => {
  const cases: [keyof typeof sources, boolean][] = [
    ['inPlace', true],
    ['readBefore', true],
    ['readAfter', false],
    ['intoTemp', true],
  ];
  for (const [name, inPlace] of cases) {
    it(`${name}: WebGPU equals the interpreter; ${inPlace ? 'written in place (no copy kernel)' : 'a copy first (dest is read later)'}`, async () => {
      const g = graph(sources[name]);
      const ins = inputs([7, 0, 11, 3], [10, 20, 30, 40]);
      const want = interpret(g, { inputs: ins, weights: new Map() }).outputs;
      // The interpreter's scatter: pool with 4 elements replaced (the test's own expectation for `out`).
      if (name === 'inPlace') expect(Array.from(want.get('out')?.data ?? [])).toEqual(poolData.map((x, i) => ({ 7: 10, 0: 20, 11: 30, 3: 40 })[i] ?? x));
      const p = plan(g, dev);
      expect(p.kernels.some((k) => k.name.includes('scatter_copy'))).toBe(!inPlace);
      if (name === 'inPlace' || name === 'readBefore') expect(bufferOf(p, 'out')).toBe(inputBuffer(p, 'pool'));
      if (name === 'readAfter') expect(bufferOf(p, 'out')).not.toBe(inputBuffer(p, 'pool'));
      const s = await createSession(dev, p);
      try {
        const got = (await s.run(ins)).outputs;
        for (const [o, w] of want) expect(Array.from(got.get(o)?.data ?? []), o).toEqual(Array.from(w.data));
      } finally {
        s.dispose();
      }
    });
  }

  it('into a weight: a copy, so the weight is the same on the next run', async () => {
    const g = graph(sources.intoWeight);
    const p = plan(g, dev);
    expect(p.kernels.some((k) => k.name.includes('scatter_copy'))).toBe(true);
    const s = await createSession(dev, p);
    try {
      s.loadWeights(new Map([['w', { shape: [N], data: poolData }]]));
      const first = await s.run(new Map([['at', t('i32', [1, 2])], ['vals', t('f32', [5, 6])]]));
      expect(Array.from(first.outputs.get('out')?.data ?? [])).toEqual(poolData.map((x, i) => (i === 1 ? 5 : i === 2 ? 6 : x)));
      const second = await s.run(new Map([['at', t('i32', [4])], ['vals', t('f32', [9])]]));
      expect(Array.from(second.outputs.get('out')?.data ?? [])).toEqual(poolData.map((x, i) => (i === 4 ? 9 : x)));
    } finally {
      s.dispose();
    }
  });

  it('drops offsets outside dest on the GPU (the interpreter reports them)', async () => {
    const g = graph(sources.inPlace);
    expect(() => interpret(g, { inputs: inputs([-1, 2], [1, 2]), weights: new Map() })).toThrow(/scatter index -1 is out of range \[0, 12\)/);
    const s = await createSession(dev, plan(g, dev));
    try {
      const got = await s.run(inputs([-1, 2, N, N + 100], [1, 2, 3, 4]));
      expect(Array.from(got.outputs.get('out')?.data ?? [])).toEqual(poolData.map((x, i) => (i === 2 ? 2 : x)));
    } finally {
      s.dispose();
    }
  });

  it('keepOnDevice of an in-place output: the caller\'s device tensor itself; an uploaded input\'s buffer is handed over', async () => {
    const p = plan(graph(sources.inPlace), dev);
    const s = await createSession(dev, p);
    const host = (at: number[], vals: number[]): Map<string, HostTensor | DeviceTensor> => new Map<string, HostTensor | DeviceTensor>(inputs(at, vals));
    try {
      // Host pool, kept: the session's upload buffer becomes the caller's.
      const r1 = await s.run(host([0], [100]), { keepOnDevice: ['out'] });
      const b1 = r1.deviceOutputs.get('out');
      expect(b1).toBeDefined();
      // Another host run must not write into b1 (the session made itself a fresh buffer).
      const r2 = await s.run(host([1], [200]), { keepOnDevice: ['out'] });
      const b2 = r2.deviceOutputs.get('out');
      expect(b2?.buffer).not.toBe(b1?.buffer);
      // b1 as the pool: the result is written into b1 itself (the same GPUBuffer comes back).
      if (b1 === undefined || b2 === undefined) throw new Error('no kept outputs');
      const r3 = await s.run(new Map<string, HostTensor | DeviceTensor>([...host([2], [300]), ['pool', b1]]), { keepOnDevice: ['out'] });
      expect(r3.deviceOutputs.get('out')?.buffer).toBe(b1.buffer);
      // Read b1 back through a run that writes nothing new at a visible place (index past the end).
      const r4 = await s.run(new Map<string, HostTensor | DeviceTensor>([...host([N], [0]), ['pool', b1]]));
      expect(Array.from(r4.outputs.get('out')?.data ?? [])).toEqual(poolData.map((x, i) => (i === 0 ? 100 : i === 2 ? 300 : x)));
      const r5 = await s.run(new Map<string, HostTensor | DeviceTensor>([...host([N], [0]), ['pool', b2]]));
      expect(Array.from(r5.outputs.get('out')?.data ?? [])).toEqual(poolData.map((x, i) => (i === 1 ? 200 : x)));
      b1.buffer.destroy();
      b2.buffer.destroy();
    } finally {
      s.dispose();
    }
  });
});
