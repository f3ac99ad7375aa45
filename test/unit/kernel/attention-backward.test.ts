// The fused attention backward kernel's shape (src/kernel/attention/backward.ts): one kernel per
// fused_attention_grad, verified kernel IR, block sparsity of both roles against the truth (the
// mask evaluated per element), and the training plan of charlm: one backward kernel per layer and
// no buffer that grows like T x S, where the unfused backward has them.
import { describe, expect, it } from 'vitest';
import { compilePlan } from '../../../src/compile/plan.js';
import { DiagnosticSink } from '../../../src/diag/diagnostic.js';
import type { Graph, Node, ScalarExpr } from '../../../src/graph/ir.js';
import { parseGraph } from '../../../src/graph/parse.js';
import { countBackwardKvTiles, countTiles } from '../../../src/kernel/attention/count.js';
import type { AttentionBackwardSchedule } from '../../../src/kernel/attention/schedule.js';
import { verifyKernels } from '../../../src/kernel/ir/verify.js';
import { lowerToKernels } from '../../../src/kernel/lower/lower.js';
import { type Plan, evalSize } from '../../../src/kernel/plan/plan.js';
import { chooseSchedule, lavapipeLimits, webgpuDefaultLimits } from '../../../src/kernel/schedule/schedule.js';
import { runPipeline } from '../../../src/passes/driver.js';
import { createPassContext } from '../../../src/passes/pass.js';
import { pipelines } from '../../../src/passes/pipeline.js';
import { trainingLossGrad } from '../../helpers/training.js';

function gradGraphOf(mask: string, extra = '', hq = 2, hkv = 2): { g: Graph; n: Node } {
  const text = `graph attn(B, T) {
  %0 = input {name="q"} : f32[B,${hq},T,16]
  %1 = input {name="k"} : f32[B,${hkv},T,16]
  %2 = input {name="v"} : f32[B,${hkv},T,8]
  %3 = input {name="o"} : f32[B,${hq},T,8]
  %4 = input {name="lse"} : f32[B,${hq},T]
  %5 = input {name="do"} : f32[B,${hq},T,8]
  %6 = input {name="len"} : i32[B]
  %7 = fused_attention_grad %0, %1, %2, %3, %4, %5${extra} {mask=${mask}, scale=0.25} : f32[B,${hq},T,16]
  %8 = fused_attention_grad_k %7 : f32[B,${hkv},T,16]
  %9 = fused_attention_grad_v %7 : f32[B,${hkv},T,8]
  output "dq" = %7
  output "dk" = %8
  output "dv" = %9
}`;
  const sink = new DiagnosticSink();
  const g = parseGraph(text, 'bwd.ir', sink);
  expect(sink.items.map((d) => d.message)).toEqual([]);
  if (g === undefined) throw new Error('no graph');
  const n = g.nodes.find((x) => x.op === 'fused_attention_grad');
  if (n === undefined) throw new Error('no fused_attention_grad');
  return { g, n };
}

/** The mask at one element (index, const, read and the comparisons/arithmetic these masks use). */
function evalMask(e: ScalarExpr, idx: readonly number[], reads: (operand: number, at: readonly number[]) => number): number {
  const r = (x: ScalarExpr): number => evalMask(x, idx, reads);
  switch (e.kind) {
    case 'index':
      return idx[e.axis] ?? NaN;
    case 'const':
      return e.value;
    case 'read':
      return reads(e.operand, e.indices.map(r));
    case 'dim':
      throw new Error('no dims in these masks');
    case 'apply': {
      const [a = NaN, b = NaN] = e.args.map(r);
      const ops: Record<string, number> = { le: +(a <= b), lt: +(a < b), and: +(a !== 0 && b !== 0), or: +(a !== 0 || b !== 0), sub: a - b };
      const v = ops[e.op];
      if (v === undefined) throw new Error(`reference has no ${e.op}`);
      return v;
    }
  }
}

/** (query tile, key tile) pairs per batch and query head with a visible element. */
function neededTiles(n: Node, B: number, Hq: number, T: number, s: AttentionBackwardSchedule, reads: (operand: number, at: readonly number[]) => number): number {
  const a = n.attrs['mask'];
  if (a === undefined || a.kind !== 'lambda') throw new Error('no mask');
  let needed = 0;
  for (let b = 0; b < B; b++)
    for (let h = 0; h < Hq; h++)
      for (let q0 = 0; q0 < T; q0 += s.tileRows)
        for (let k0 = 0; k0 < T; k0 += s.tileCols) {
          let any = false;
          for (let q = q0; q < Math.min(q0 + s.tileRows, T) && !any; q++) for (let k = k0; k < Math.min(k0 + s.tileCols, T) && !any; k++) any = evalMask(a.body, [b, h, q, k], reads) !== 0;
          if (any) needed++;
        }
  return needed;
}

const tiles: AttentionBackwardSchedule = { tileRows: 4, tileCols: 8, lanes: 4 };
const lens = [37, 0, 12];

describe('fused attention backward kernel', () => {
  // `bounded`: the loops' bounds already skip tiles (conjuncts linear in the looped index; a key
  // tile past a row's length for the dK/dV role); else only the per-tile class does.
  const masks: readonly { what: string; mask: string; extra?: string; hq?: number; hkv?: number; bounded: boolean }[] = [
    { what: 'causal', mask: '(b, h, q, k) => le(k, q)', bounded: true },
    { what: 'sliding window 5, GQA 4/2', mask: '(b, h, q, k) => and(le(k, q), lt(sub(q, k), 5))', hq: 4, hkv: 2, bounded: true },
    { what: 'sink tokens or window', mask: '(b, h, q, k) => or(lt(k, 2), and(le(k, q), lt(sub(q, k), 4)))', bounded: false },
    { what: 'per-row length read(6, b)', mask: '(b, h, q, k) => lt(k, read(6, b))', extra: ', %6', bounded: true },
  ];
  for (const m of masks) {
    it(`visits exactly the live tiles in both roles: ${m.what}`, () => {
      const { g, n } = gradGraphOf(m.mask, m.extra, m.hq, m.hkv);
      const [B, T, Hq] = [3, 37, m.hq ?? 2];
      const dims = new Map([['B', B], ['T', T]]);
      const tensors = new Map([[6, lens]]);
      const reads = (_operand: number, at: readonly number[]): number => lens[at[0] ?? 0] ?? NaN;
      const needed = neededTiles(n, B, Hq, T, tiles, reads);
      const kv = countBackwardKvTiles(g, n, dims, tiles, tensors);
      const q = countTiles(g, n, dims, { rows: tiles.tileRows, heads: 1, cols: tiles.tileCols }, tensors);
      for (const c of [kv, q]) {
        expect(c.tiles).toBe(B * Hq * Math.ceil(T / 4) * Math.ceil(T / 8));
        expect(c.visited).toBe(needed);
        if (m.bounded) expect(c.iterated).toBeLessThan(c.tiles);
        else expect(c.iterated).toBe(c.tiles);
        // Fully visible tiles skip the mask (with a window under the tile width, none is).
        if (m.what === 'causal') expect(c.partial).toBeLessThan(c.visited);
        else expect(c.partial).toBeLessThanOrEqual(c.visited);
      }
    });
  }

  it('lowers to one verified kernel writing dQ, dK and dV', () => {
    for (const m of masks) {
      const { g } = gradGraphOf(m.mask, m.extra, m.hq, m.hkv);
      for (const target of [lavapipeLimits, webgpuDefaultLimits]) {
        const p = lowerToKernels(g, target, { ...chooseSchedule(target), attentionBackward: tiles });
        expect(p.kernels.map((k) => k.op)).toEqual(['fused_attention_grad']);
        expect(verifyKernels(p, target)).toEqual([]);
        const roles = p.kernels[0]?.buffers.filter((b) => b.access === 'read_write').map((b) => b.role);
        expect(roles).toEqual(['d_q', 'd_k', 'd_v']);
      }
    }
  });
});

/** Doubling T (= S) at most doubles a buffer; a T x S buffer quadruples. */
const growsLikeTS = (plan: Plan): string[] =>
  plan.buffers.filter((b) => evalSize(b.elements, new Map([['B', 1], ['T', 512]])) / evalSize(b.elements, new Map([['B', 1], ['T', 256]])) > 2).map((b) => `${b.id} ${b.kind}`);

describe('charlm training plan (loss and gradients, T symbolic)', () => {
  const plan = (fused: boolean): Plan => {
    const g = trainingLossGrad('examples/charlm/charlm.tfx', fused, {});
    return compilePlan(runPipeline(g, pipelines.webgpu, createPassContext({ target: 'webgpu', verify: true })), { target: lavapipeLimits });
  };
  it('attention fused before grad: one backward kernel per layer, no T x S buffer, no softmax', () => {
    const p = plan(true);
    expect(p.steps.filter((s) => s.kernel.includes('fused_attention_grad'))).toHaveLength(2);
    expect(p.steps.filter((s) => /softmax|attention_l\d_grad_matmul/.test(s.kernel))).toEqual([]);
    expect(growsLikeTS(p)).toEqual([]);
  });
  it('the unfused attention backward has T x S buffers (what the check above would catch)', () => {
    expect(growsLikeTS(plan(false)).length).toBeGreaterThan(0);
  });
});

describe('relative-bias training plan: the learned table gradient in the fused backward (attention/backward-table.ts)', () => {
  const config = { vocab: 64, ctx: 32, d: 32, heads: 2, layers: 2 };
  const plan = (fused: boolean, target = lavapipeLimits): Plan => {
    const g = trainingLossGrad('examples/variants/relative-bias.tfx', fused, config);
    return compilePlan(runPipeline(g, pipelines.webgpu, createPassContext({ target: 'webgpu', verify: true })), { target });
  };
  it('per layer one backward kernel and one table reduce kernel; no T x S buffer, no softmax; verified kernels on both WebGPU limits', () => {
    for (const target of [lavapipeLimits, webgpuDefaultLimits]) {
      const p = plan(true, target);
      expect(p.steps.filter((s) => s.kernel.includes('fused_attention_grad')).map((s) => s.kernel)).toHaveLength(2);
      expect(p.steps.filter((s) => s.kernel.includes('attention_table_reduce'))).toHaveLength(2);
      expect(p.steps.filter((s) => /softmax|attention_grad_matmul/.test(s.kernel))).toEqual([]);
      expect(growsLikeTS(p)).toEqual([]);
    }
  });
  it('the unfused backward of the same model has T x S buffers', () => {
    expect(growsLikeTS(plan(false)).length).toBeGreaterThan(0);
  });
  it('a table read twice under score(): one value and one index tile per read site, registers or global partial rows by the owned entries', () => {
    // s * temp[h] + bias[k]: two tables (2 + 5 entries), two sites.
    const text = `graph attn(B, T) {
  %0 = input {name="q"} : f32[B,2,T,16]
  %1 = input {name="k"} : f32[B,2,T,16]
  %2 = input {name="v"} : f32[B,2,T,8]
  %3 = input {name="o"} : f32[B,2,T,8]
  %4 = input {name="lse"} : f32[B,2,T]
  %5 = input {name="do"} : f32[B,2,T,8]
  %6 = weight {name="temp"} : f32[2]
  %7 = weight {name="bias"} : f32[${'BIAS'}]
  %8 = fused_attention_grad %0, %1, %2, %3, %4, %5, %6, %7 {dscore=(b, h, q, k) => read(6, h), mask=(b, h, q, k) => le(k, q), scale=0.25, score=(b, h, q, k) => add(mul(score(), read(6, h)), read(7, k)), table_grads=[6, 7]} : f32[B,2,T,16]
  %9 = fused_attention_grad_t %8 {operand=6} : f32[2]
  %10 = fused_attention_grad_t %8 {operand=7} : f32[${'BIAS'}]
  output "dq" = %8
  output "dtemp" = %9
  output "dbias" = %10
}`;
    for (const [bias, inRegisters] of [[5, true], [600, false]] as const) {
      const sink = new DiagnosticSink();
      const g = parseGraph(text.replaceAll('BIAS', String(bias)), 'bwd.ir', sink);
      expect(sink.items.map((d) => d.message)).toEqual([]);
      if (g === undefined) throw new Error('no graph');
      const p = lowerToKernels(g, lavapipeLimits, { ...chooseSchedule(lavapipeLimits), attentionBackward: tiles });
      expect(p.kernels.map((k) => k.op)).toEqual(['fused_attention_grad', 'attention_table_reduce']);
      expect(verifyKernels(p, lavapipeLimits)).toEqual([]);
      const [bwd, reduce] = p.kernels;
      expect(bwd?.shared.filter((s) => /^t[vi]_tile/.test(s.name)).map((s) => `${s.type}[${s.length}]`).sort()).toEqual(['f32[32]', 'f32[32]', 'u32[32]', 'u32[32]']);
      expect(bwd?.buffers.filter((b) => b.access === 'read_write').map((b) => b.role)).toEqual(['d_q', 'd_k', 'd_v', 'partials']);
      expect(reduce?.buffers.map((b) => `${b.role} ${b.access}`)).toEqual(['partials read', 'd_t6 read_write', 'd_t7 read_write']);
      // 2 + bias entries over max(Br, Bc) * lanes threads: a private array, or none past 16 per thread.
      const privates: string[] = [];
      const walk = (ss: readonly { kind: string; name?: string; body?: unknown; then?: unknown; else?: unknown }[]): void => {
        for (const s of ss) {
          if (s.kind === 'private_array' && s.name?.startsWith('acc_t') === true) privates.push(s.name);
          for (const k of ['body', 'then', 'else'] as const) if (Array.isArray(s[k])) walk(s[k] as never);
        }
      };
      walk((bwd?.body ?? []) as never);
      expect(privates.length, `${bias} entries`).toBe(inRegisters ? 1 : 0);
    }
  });
});
