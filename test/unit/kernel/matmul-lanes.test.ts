// The subgroup-broadcast matmul without a device: which operand layouts allow vector loads
// (hasVectorRuns), what the chooser's per-node step picks (specializeMatmul), that a schedule the
// node cannot take fails naming its field, and what the kernel looks like (verified, one subgroup,
// every A load broadcast, vec4 slots declared as such in WGSL and read as float4 in CUDA).
import { describe, expect, it } from 'vitest';
import { printCuda } from '../../../codegen/cuda/print.js';
import { printWgsl } from '../../../codegen/wgsl/print.js';
import type { Graph, Node } from '../../../src/graph/ir.js';
import { type Kernel, forEachExpr, forEachStmt } from '../../../src/kernel/ir/ir.js';
import { lowerToKernels } from '../../../src/kernel/lower/lower.js';
import { evalSize } from '../../../src/kernel/plan/plan.js';
import { hasVectorRuns } from '../../../src/kernel/lower/view.js';
import { type MatmulSchedule, type Schedule, ScheduleError, chooseSchedule, cudaLimits, laneMatmulTemplate, lavapipeLimits, specializeMatmul, webgpuDefaultLimits } from '../../../src/kernel/schedule/schedule.js';
import { verifyKernel } from '../../../src/kernel/ir/verify.js';
import { graphOf } from './helpers.js';

const node = (g: Graph, id: number): Node => {
  const n = g.nodes[id];
  if (n === undefined) throw new Error(`no %${id}`);
  return n;
};

// A head merge [B, H, T, dh] -> [B, T, H * dh] (the view fold-views makes for a projection's A),
// a transposed weight, a slice at an offset of 2 (not aligned) and one at 4.
const views = graphOf(`graph v(B, T) {
  %0 = input {name="x"} : f32[B,4,T,16]
  %1 = view %0 {map=(i0, i1, i2) => read(0, i0, div(i2, 16), i1, mod(i2, 16)), shape=dims[B,T,64]} : f32[B,T,64]
  %2 = input {name="w"} : f32[50,64]
  %3 = view %2 {map=(i0, i1) => read(0, i1, i0), shape=dims[64,50]} : f32[64,50]
  %4 = input {name="y"} : f32[T,12]
  %5 = view %4 {map=(i0, i1) => read(0, i0, add(i1, 2)), shape=dims[T,8]} : f32[T,8]
  %6 = view %4 {map=(i0, i1) => read(0, i0, add(i1, 4)), shape=dims[T,8]} : f32[T,8]
  %7 = input {name="z"} : f32[T,10]
  output "a" = %1
  output "b" = %3
  output "c" = %5
  output "d" = %6
  output "e" = %7
}`);

describe('hasVectorRuns', () => {
  it('a plain tensor: along its last axis when the extent is a multiple of 4', () => {
    expect(hasVectorRuns(views, node(views, 0), 3, 4)).toBe(true);
    expect(hasVectorRuns(views, node(views, 0), 2, 4)).toBe(false); // T: not a constant, not contiguous
    expect(hasVectorRuns(views, node(views, 7), 1, 4)).toBe(false); // 10 is no multiple of 4
  });
  it('a head merge: K = h * dh + d runs in fours inside each head', () => {
    expect(hasVectorRuns(views, node(views, 1), 2, 4)).toBe(true);
  });
  it('a transposed weight: runs along the axis that is the source last axis', () => {
    expect(hasVectorRuns(views, node(views, 3), 0, 4)).toBe(true);
    expect(hasVectorRuns(views, node(views, 3), 1, 4)).toBe(false);
  });
  it('a slice: only when its offset keeps the runs aligned', () => {
    expect(hasVectorRuns(views, node(views, 5), 1, 4)).toBe(false);
    expect(hasVectorRuns(views, node(views, 6), 1, 4)).toBe(true);
  });
});

const mm = (k: number, n: number, transposed: boolean): Graph =>
  graphOf(`graph m(T) {
  %0 = input {name="a"} : f32[T,${k}]
  %1 = input {name="w"} : f32[${transposed ? `${n},${k}` : `${k},${n}`}]
  ${transposed ? `%2 = view %1 {map=(i0, i1) => read(0, i1, i0), shape=dims[${k},${n}]} : f32[${k},${n}]\n  %3 = matmul %0, %2 : f32[T,${n}]\n  output "y" = %3` : `%2 = matmul %0, %1 : f32[T,${n}]\n  output "y" = %2`}
}`);
const matmulNode = (g: Graph): Node => {
  const n = g.nodes.find((x) => x.op === 'matmul');
  if (n === undefined) throw new Error('no matmul');
  return n;
};
const template = chooseSchedule(lavapipeLimits).matmul;

describe('specializeMatmul (the chooser per node)', () => {
  it('lavapipe defaults to the lane schedule, vector widths unset', () => {
    expect(template.laneBroadcast).toBe(true);
    expect(template.aVector).toBeUndefined();
    expect(chooseSchedule(webgpuDefaultLimits).matmul.laneBroadcast).toBeUndefined();
  });
  it('vec4 loads where K and N allow, scalar otherwise', () => {
    const pick = (k: number, n: number, t: boolean): [unknown, unknown] => {
      const g = mm(k, n, t);
      const s = specializeMatmul(g, matmulNode(g), template);
      return [s.aVector, s.bVector];
    };
    expect(pick(768, 3072, false)).toEqual([4, 4]);
    expect(pick(768, 50, true)).toEqual([4, 4]); // B^T contiguous along K
    expect(pick(768, 50, false)).toEqual([4, 1]); // N = 50: rows of B not aligned
    expect(pick(30, 64, false)).toEqual([1, 1]); // K = 30: no whole K steps of 4
  });
  it('keeps fields a schedule sets', () => {
    const g = mm(768, 3072, false);
    const s = specializeMatmul(g, matmulNode(g), { ...template, aVector: 1, bVector: 1 });
    expect([s.aVector, s.bVector]).toEqual([1, 1]);
  });
});

describe('illegal lane schedules fail naming the field', () => {
  const lower = (g: Graph, matmul: MatmulSchedule, target = lavapipeLimits): unknown => {
    try {
      lowerToKernels(g, target, { ...chooseSchedule(target), matmul });
      return undefined;
    } catch (e) {
      return e;
    }
  };
  const cases: [string, Graph, MatmulSchedule, string][] = [
    ['vector A with K = 30', mm(30, 64, false), { ...template, aVector: 4, bVector: 1 }, 'matmul.aVector'],
    ['vector B with N = 50', mm(64, 50, false), { ...template, aVector: 4, bVector: 4 }, 'matmul.bVector'],
    ['tile rows not a multiple of the lanes', mm(64, 64, false), { ...template, tileRows: 12, threadRows: 12 }, 'matmul.tileRows'],
    ['tile columns not lanes x columns per lane', mm(64, 64, false), { ...template, tileCols: 24 }, 'matmul.threadRows'],
  ];
  for (const [what, g, s, field] of cases) {
    it(what, () => {
      const e = lower(g, s);
      expect(e).toBeInstanceOf(ScheduleError);
      expect((e as ScheduleError).field).toBe(field);
      expect((e as Error).message).toContain(`illegal schedule: ${field}:`);
    });
  }
  it('a target without subgroups', () => {
    const e = lower(mm(64, 64, false), template, { ...lavapipeLimits, subgroupSize: 0 });
    expect((e as ScheduleError).field).toBe('matmul.laneBroadcast');
  });
});

describe('the lane kernel', () => {
  const g = mm(768, 3072, false);
  const program = lowerToKernels(g, lavapipeLimits);
  // T rows: the decode kernels (T <= 1: the streaming kSplit partials and their reduction, the
  // weight being [K, N]) first, then the lane kernel (T > 1).
  expect(program.kernels.map((x) => x.when?.op)).toEqual(['<=', '<=', '>']);
  expect(program.kernels.map((x) => x.schedule.kind)).toEqual(['tiled_matmul', 'map', 'tiled_matmul']);
  const k = program.kernels[2] as Kernel;
  it('is one subgroup per workgroup, verified, every A value broadcast from a literal lane', () => {
    expect(k.workgroupSize).toEqual([lavapipeLimits.subgroupSize, 1, 1]);
    expect(verifyKernel(k, lavapipeLimits)).toEqual([]);
    const lanes = new Set<number>();
    forEachExpr(k.body, (e) => {
      if (e.kind === 'subgroup' && e.op === 'broadcast' && e.lane?.kind === 'lit') lanes.add(e.lane.value);
    });
    expect([...lanes].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(k.shared).toEqual([]); // no workgroup tiles, no barriers
    let barriers = 0;
    forEachStmt(k.body, (s) => void (s.kind === 'barrier' && barriers++));
    expect(barriers).toBe(0);
  });
  it('declares vector slots as vec4 in WGSL and reads float4 in CUDA', () => {
    expect(k.buffers.map((b) => b.vector)).toEqual([4, 4, undefined]);
    const wgsl = printWgsl(k);
    expect(wgsl).toContain('var<storage, read> a: array<vec4<f32>>;');
    expect(wgsl).toContain('subgroupBroadcast(');
    // CUDA: the same schedule with a warp of 32 lanes (a GPU would not choose it; it must still print).
    const { mmaMatmul: _tensorCores, ...cudaBase } = chooseSchedule(cudaLimits);
    const cuda = lowerToKernels(g, cudaLimits, { ...cudaBase, matmul: laneMatmulTemplate(32) }).kernels[0] as Kernel;
    expect(cuda.workgroupSize).toEqual([32, 1, 1]);
    expect(printCuda(cuda)).toContain('reinterpret_cast<const float4*>(a)');
  });
  it('the verifier rejects a scalar load from a vector slot', () => {
    const bad: Kernel = { ...k, body: [{ kind: 'let', name: 'oops', type: 'f32', init: { kind: 'load', slot: 0, index: { kind: 'lit', type: 'u32', value: 0 }, type: 'f32' } }, ...k.body] };
    expect(verifyKernel(bad, lavapipeLimits).join('\n')).toContain('scalar load from vector buffer a');
  });
});

describe('decode-path temps', () => {
  it('are sized for the rows the path runs with, not for a long prompt', () => {
    // x [T, 768] @ w [768, 2304] (+ an rmsnorm fold): the decode path (T <= 1) has the streaming
    // partials [24 tiles, rows, 2304] (and, with normFold 'separate', the norm's [rows, 768]); at
    // T = 1024 they must still hold one row (a [24, 1024, 2304] f32 temp is 226 MB, over lavapipe's
    // 128 MiB binding).
    const g = graphOf(`graph m(T) {
  %0 = input {name="x"} : f32[T,768]
  %1 = input {name="g"} : f32[768]
  %2 = input {name="w"} : f32[768,2304]
  %3 = fused_matmul %0, %2, %1 {epilogue=(i0, i1) => acc(), eps=0.00001, norm="rmsnorm"} : f32[T,2304]
  output "y" = %3
}`);
    const tempsOf = (s?: Schedule): number[] => {
      const p = lowerToKernels(g, lavapipeLimits, s);
      return [...(p.temps ?? new Map()).values()].map((t) => evalSize(t.elements, new Map([['T', 1024]]))).sort((x, y) => x - y);
    };
    // The chooser's decode kernel (decodeNormFold 'separate' on lavapipe): prefill's norm temp
    // [1024, 768], decode's norm temp [1, 768] and partials [24, 1, 2304].
    expect(tempsOf()).toEqual([768, 24 * 2304, 1024 * 768]);
    // Normalizing on load in the decode kernel: no decode norm temp.
    const base = chooseSchedule(lavapipeLimits);
    const d = base.decodeMatmul;
    if (d?.streaming === undefined) throw new Error('lavapipe has a streaming decode schedule');
    expect(tempsOf({ ...base, decodeMatmul: { ...d, streaming: { ...d.streaming, normFold: 'inline' } } })).toEqual([24 * 2304, 1024 * 768]);
  });
});
