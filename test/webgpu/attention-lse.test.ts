// The attention LSE output on WebGPU (lavapipe): a graph that writes `softmax(s) @ v` and
// `logsumexp(s, axis=-1)` of the same scores goes through the webgpu pipeline (fuse-attention
// turns the logsumexp into `fused_attention_lse`), and both outputs are compared with the float64
// interpreter on the unfused graph: causal, full, fully masked rows (LSE -inf, output 0), logits
// of +-1e4, GQA, the split-K decode path at T = 1 (the combine writes the LSE), per-batch lengths
// 0 (a batch with no keys), f16. The unfused pipeline (the logsumexp kernel) is checked the same
// way, and the LSE adds no kernel.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DiagnosticSink } from '../../src/diag/diagnostic.js';
import type { Graph } from '../../src/graph/ir.js';
import { parseGraph } from '../../src/graph/parse.js';
import { interpret } from '../../src/interp/interpret.js';
import { makeTensor, type Tensor64 } from '../../src/base/tensor.js';
import { compilePlan } from '../../src/compile/plan.js';
import type { AttentionSchedule } from '../../src/kernel/attention/schedule.js';
import type { Plan } from '../../src/kernel/plan/plan.js';
import { chooseSchedule, lavapipeLimits } from '../../src/kernel/schedule/schedule.js';
import { runPipeline } from '../../src/passes/driver.js';
import { createPassContext } from '../../src/passes/pass.js';
import { pipelines, unfusedPipeline } from '../../src/passes/pipeline.js';
import type { AcquiredDevice } from '../../src/runtime/device.js';
import { f16Bits, f16FromBits } from '../../src/runtime/convert.js';
import { createSession, type Session } from '../../src/runtime/session.js';
import { relError } from '../helpers/tensors.js';
import { seeded, testDevice } from './helpers.js';

let dev: AcquiredDevice;
beforeAll(async () => {
  dev = await testDevice();
});

// Small tiles: T = 17 spans several query and key tiles; 4 cache partitions for decode.
const small: AttentionSchedule = { tileRows: 8, tileCols: 8, lanes: 8, useSubgroups: true, splits: 4, decodeMaxT: 1 };
// The CPU schedule's kernel (direct K/V, rows per thread, P by shuffle) and the fold without subgroups.
const directShuffle: AttentionSchedule = { ...small, rowsPerThread: 2, isDirect: true, shuffleP: true };
const directFold: AttentionSchedule = { ...small, useSubgroups: false, rowsPerThread: 4, isDirect: true };
// The long-prompt kernel (Q in registers, staged K/V, per-row-group sparsity), small.
const qInRegisters: AttentionSchedule = { ...small, rowsPerThread: 2, shuffleP: true, qInRegisters: true };

interface Case {
  readonly name: string;
  readonly hq: number;
  readonly hkv: number;
  /** Keys: `T` (self-attention) or `S` (a cache, S = sOf(T)). */
  readonly sOf?: (T: number) => number;
  readonly scale: number;
  /** A grid body over (b, head axes, qi, ki) giving the visible keys; absent: all keys. Reads operand 0 = `len`. */
  readonly mask?: string;
  readonly B?: number;
  readonly Ts: readonly number[];
  /** Integer q and k of magnitude up to 25: q.k reaches +-1e4. */
  readonly bigLogits?: boolean;
  readonly lengths?: (T: number) => number[];
  readonly schedule?: AttentionSchedule | undefined;
  readonly unfused?: boolean;
  /** f16 q, k, v (scores and LSE math in f32 in the kernel; O and LSE stored as f16). */
  readonly f16?: boolean;
}

/**
 * The user's form: s = where(mask, q @ kT * scale, -inf); o = softmax(s) @ v; lse = logsumexp(s).
 * GQA is spelled as Llama does (q viewed [B,Hkv,G,T,dk], k [B,Hkv,1,S,dk]).
 */
function irOf(c: Case, withLse = true): string {
  const kv = c.sOf === undefined ? 'T' : 'S';
  const g = c.hq / c.hkv;
  const gqa = g > 1;
  const sc = gqa ? `B,${c.hkv},${g},T,${kv}` : `B,${c.hq},T,${kv}`;
  const rows = gqa ? `B,${c.hkv},${g},T` : `B,${c.hq},T`;
  const lines = [
    `graph attn(B, T${kv === 'S' ? ', S' : ''}) {`,
    `  %q = input {name="q"} : f32[B,${c.hq},T,16]`,
    `  %k = input {name="k"} : f32[B,${c.hkv},${kv},16]`,
    `  %v = input {name="v"} : f32[B,${c.hkv},${kv},16]`,
  ];
  if (c.lengths !== undefined) lines.push(`  %len = input {name="len"} : i32[B]`);
  if (gqa) {
    lines.push(`  %qg = reshape %q {shape=dims[B,${c.hkv},${g},T,16]} : f32[B,${c.hkv},${g},T,16]`);
    lines.push(`  %kg = reshape %k {shape=dims[B,${c.hkv},1,${kv},16]} : f32[B,${c.hkv},1,${kv},16]`);
    lines.push(`  %vg = reshape %v {shape=dims[B,${c.hkv},1,${kv},16]} : f32[B,${c.hkv},1,${kv},16]`);
    lines.push(`  %kt = permute %kg {perm=[0,1,2,4,3]} : f32[B,${c.hkv},1,16,${kv}]`);
    lines.push(`  %dot = matmul %qg, %kt : f32[${sc}]`);
  } else {
    lines.push(`  %kt = permute %k {perm=[0,1,3,2]} : f32[B,${c.hkv},16,${kv}]`);
    lines.push(`  %dot = matmul %q, %kt : f32[${sc}]`);
  }
  lines.push(`  %c = const {value=${c.scale.toFixed(4)}} : f32[]`, `  %s0 = mul %dot, %c : f32[${sc}]`);
  let s = '%s0';
  if (c.mask !== undefined) {
    const reads = c.lengths !== undefined ? ' %len' : '';
    // Over [B, 1, T, S] (or [B, 1, 1, T, S] for the GQA view): an index predicate the pass inlines.
    const [params, shape] = gqa ? ['b, h1, h2, qi, ki', `B,1,1,T,${kv}`] : ['b, hh, qi, ki', `B,1,T,${kv}`];
    lines.push(`  %m = grid${reads} {body=(${params}) => ${c.mask}, shape=dims[${shape}]} : bool[${shape}]`);
    lines.push(`  %ninf = const {value=-inf} : f32[]`, `  %s = where %m, %s0, %ninf : f32[${sc}]`);
    s = '%s';
  }
  const ax = gqa ? 4 : 3;
  lines.push(`  %p = softmax ${s} {axis=${ax}} : f32[${sc}]`);
  lines.push(`  %o = matmul %p, ${gqa ? '%vg' : '%v'} : f32[${gqa ? `B,${c.hkv},${g},T,16` : `B,${c.hq},T,16`}]`);
  if (withLse) lines.push(`  %lse = logsumexp ${s} {axes=[${ax}], keepdims=false} : f32[${rows}]`);
  lines.push(`  output "o" = %o`);
  if (withLse) lines.push(`  output "lse" = %lse`);
  lines.push('}');
  const text = lines.join('\n');
  return c.f16 === true ? text.replace(/f32\[/g, 'f16[') : text;
}

function parse(text: string): Graph {
  const sink = new DiagnosticSink();
  const g = parseGraph(text, 'attention-lse.ir', sink);
  expect(sink.items.map((d) => d.message)).toEqual([]);
  if (g === undefined) throw new Error('no graph');
  return g;
}

function planOf(g: Graph, fused: boolean, schedule: AttentionSchedule | undefined): { graph: Graph; plan: Plan } {
  const ctx = createPassContext({ verify: true, target: 'webgpu' });
  const graph = runPipeline(g, fused ? pipelines.webgpu : unfusedPipeline('webgpu'), ctx);
  const base = chooseSchedule(lavapipeLimits);
  return { graph, plan: compilePlan(graph, { target: lavapipeLimits, schedule: schedule === undefined ? base : { ...base, attention: schedule } }) };
}

/**
 * LSE error: max over rows of |got - want| / max(|want|, 1), and -inf exactly where the reference
 * is -inf (a fully masked row); NaN anywhere is Infinity.
 */
function lseError(got: ArrayLike<number>, want: Tensor64): number {
  let worst = 0;
  for (let i = 0; i < want.data.length; i++) {
    const w = want.data[i] ?? NaN;
    const g = got[i] ?? NaN;
    if (Number.isNaN(g)) return Infinity;
    if (w === -Infinity || g === -Infinity) {
      if (w !== g) return Infinity;
      continue;
    }
    worst = Math.max(worst, Math.abs(g - w) / Math.max(Math.abs(w), 1));
  }
  return worst;
}

function feeds(c: Case, T: number, seed: number): Map<string, Tensor64> {
  const S = c.sOf?.(T) ?? T;
  const B = c.B ?? 1;
  const big = (n: number, s: number): number[] => Array.from(seeded(n, s), (x) => Math.round(x * 25));
  const small = (n: number, s: number): number[] => Array.from(seeded(n, s));
  // f16: exact f16 values (the interpreter does not round f16 inputs).
  const dt = c.f16 === true ? 'f16' : 'f32';
  const r = (xs: number[]): number[] => (c.f16 === true ? xs.map((x) => f16FromBits(f16Bits(x))) : xs);
  const m = new Map<string, Tensor64>([
    ['q', makeTensor(dt, [B, c.hq, T, 16], r((c.bigLogits === true ? big : small)(B * c.hq * T * 16, seed)))],
    ['k', makeTensor(dt, [B, c.hkv, S, 16], r((c.bigLogits === true ? big : small)(B * c.hkv * S * 16, seed + 1)))],
    ['v', makeTensor(dt, [B, c.hkv, S, 16], r(small(B * c.hkv * S * 16, seed + 2)))],
  ]);
  if (c.lengths !== undefined) m.set('len', makeTensor('i32', [B], c.lengths(T)));
  return m;
}

const causal = 'le(ki, qi)';
const cases: Case[] = [
  { name: 'causal', hq: 2, hkv: 2, scale: 0.25, mask: causal, Ts: [1, 17, 40], unfused: true },
  { name: 'full (no mask), B = 2', hq: 2, hkv: 2, scale: 0.25, B: 2, Ts: [1, 17] },
  // Rows q < 11 see no key: LSE -inf and output 0 (at T = 1 through the split-K combine).
  { name: 'fully masked rows (q < 11)', hq: 2, hkv: 2, scale: 0.25, mask: 'and(le(ki, qi), ge(qi, 11))', Ts: [1, 17], unfused: true },
  { name: 'logits of +-1e4', hq: 2, hkv: 2, scale: 1.0, mask: causal, bigLogits: true, Ts: [1, 17], unfused: true },
  { name: 'GQA (4 query heads on 2 KV heads)', hq: 4, hkv: 2, scale: 0.25, mask: causal, Ts: [1, 17] },
  // Decode: one query over a cache of S = T + 40 keys; T = 1 runs split-K (4 partitions) + combine.
  { name: 'KV cache, causal over S = T + 40 (split-K decode at T = 1)', hq: 2, hkv: 2, scale: 0.25, mask: 'le(ki, add(qi, dim(S-T)))', sOf: (T) => T + 40, Ts: [1, 9] },
  // Per-batch lengths 0 and 5: batch 0 has no keys, so all its rows are -inf / 0, in both paths.
  {
    name: 'KV cache with lengths 0 and 5 (a batch with no keys), decode and prefill',
    hq: 2,
    hkv: 2,
    scale: 0.25,
    mask: 'lt(ki, read(0, b))',
    sOf: (T) => T + 40,
    B: 2,
    lengths: () => [0, 5],
    Ts: [1, 9],
    unfused: true,
  },
];
// f16 with fully masked rows (-inf is an f16 value); LSE values near log(T), rounded once to f16.
cases.push({ name: 'f16, causal with rows q < 11 fully masked', hq: 2, hkv: 2, scale: 0.25, mask: 'and(le(ki, qi), ge(qi, 11))', Ts: [1, 17, 40], f16: true });
const withSchedule = (names: readonly string[], schedule: AttentionSchedule, label: string): Case[] =>
  cases.filter((c) => names.includes(c.name)).map((c) => ({ ...c, name: `${c.name} (${label})`, schedule, unfused: false }));
cases.push(
  ...withSchedule(['causal', 'fully masked rows (q < 11)', 'KV cache, causal over S = T + 40 (split-K decode at T = 1)', 'logits of +-1e4'], directShuffle, 'direct K/V, 2 rows/thread, P by shuffle'),
  ...withSchedule(['fully masked rows (q < 11)', 'GQA (4 query heads on 2 KV heads)'], directFold, 'direct K/V, 4 rows/thread, workgroup-memory reductions'),
  ...withSchedule(['causal', 'fully masked rows (q < 11)', 'GQA (4 query heads on 2 KV heads)', 'KV cache, causal over S = T + 40 (split-K decode at T = 1)'], qInRegisters, 'Q in registers, staged K/V'),
  { ...cases[0], name: 'causal (tiles chosen for lavapipe)', schedule: undefined, unfused: false } as Case,
);

/** Worst errors seen per path, printed at the end (the figures in docs/passes.md "Attention LSE"). */
const worst = { fusedOut: 0, fusedLse: 0, unfusedOut: 0, unfusedLse: 0 };

describe('attention with an LSE output on WebGPU vs the float64 interpreter', () => {
  const sessions: Session[] = [];
  afterAll(() => {
    sessions.forEach((s) => s.dispose());
    console.log(`attention LSE worst errors: fused out ${worst.fusedOut.toExponential(2)}, fused LSE ${worst.fusedLse.toExponential(2)}, unfused out ${worst.unfusedOut.toExponential(2)}, unfused LSE ${worst.unfusedLse.toExponential(2)}`);
  });
  for (const c of cases) {
    it(c.name, async () => {
      const g = parse(irOf(c));
      const fused = planOf(g, true, 'schedule' in c ? c.schedule : small);
      // The logsumexp became the attention's LSE: one fused_attention, one fused_attention_lse.
      expect(fused.graph.nodes.map((n) => n.op).filter((op) => op.startsWith('fused_attention') || op === 'logsumexp' || op === 'softmax')).toEqual(['fused_attention', 'fused_attention_lse']);
      const paths: [string, Plan][] = [['fused', fused.plan]];
      if (c.unfused === true) paths.push(['unfused', planOf(g, false, undefined).plan]);
      for (const [path, plan] of paths) {
        const s = await createSession(dev, plan);
        sessions.push(s);
        let seed = 5;
        for (const T of c.Ts) {
          const inputs = feeds(c, T, (seed += 3));
          const want = interpret(g, { inputs, weights: new Map() }).outputs;
          const r = await s.run(inputs);
          const at = `${path}, T=${T}`;
          const wo = want.get('o');
          const wl = want.get('lse');
          if (wo === undefined || wl === undefined) throw new Error('no reference');
          expect(r.outputs.get('lse')?.shape, at).toEqual(wl.shape);
          const eo = relError(r.outputs.get('o')?.data ?? [], wo);
          const el = lseError(r.outputs.get('lse')?.data ?? [], wl);
          // Output: f32 vs float64, 1e-4 relative (floor 1e-2 of the output's scale), as in
          // attention.test.ts. LSE: |got - want| <= 1e-5 * max(|want|, 1) per row (f32 has 2^-24
          // relative; the dot products and the log add a few ulps), -inf exactly where masked.
          // f16: the stored values round once to f16 (2^-11 = 4.9e-4 relative): output 2e-3 (as
          // robustness-numerics), LSE 6e-4.
          expect(eo, `output ${at}`).toBeLessThan(c.f16 === true ? 2e-3 : 1e-4);
          expect(el, `LSE ${at}`).toBeLessThanOrEqual(c.f16 === true ? 6e-4 : 1e-5);
          if (c.f16 === true) console.log(`f16 attention LSE at T=${T}: output ${eo.toExponential(2)}, LSE ${el.toExponential(2)}`);
          if (path === 'fused') {
            // One attention kernel for prefill; the split and the combine for decode (T = 1).
            expect(s.stats.lastDispatches, `launches at T=${T}`).toBe(T <= 1 ? 2 : 1);
            if (c.f16 !== true) {
              worst.fusedOut = Math.max(worst.fusedOut, eo);
              worst.fusedLse = Math.max(worst.fusedLse, el);
            }
          } else {
            worst.unfusedOut = Math.max(worst.unfusedOut, eo);
            worst.unfusedLse = Math.max(worst.unfusedLse, el);
          }
          // Rows that see no key: LSE exactly -inf and output exactly 0 (no NaN).
          const lse = r.outputs.get('lse')?.data ?? [];
          const out = r.outputs.get('o')?.data ?? [];
          for (let row = 0; row < wl.data.length; row++) {
            if (wl.data[row] !== -Infinity) continue;
            expect(lse[row], `${at} row ${row}`).toBe(-Infinity);
            for (let j = 0; j < 16; j++) expect(out[row * 16 + j], `${at} row ${row}`).toBe(0);
          }
        }
      }
    }, 300_000);
  }
});

describe('the LSE adds no kernel', () => {
  it('the same steps and kernels as the attention without LSE: prefill, split, combine', () => {
    const c = cases[0];
    if (c === undefined) throw new Error('no case');
    const withLse = planOf(parse(irOf(c)), true, small).plan;
    const without = planOf(parse(irOf(c, false)), true, small).plan;
    expect(withLse.steps.map((s) => s.kernel)).toEqual(without.steps.map((s) => s.kernel));
    const names = withLse.steps.map((s) => s.kernel);
    expect(names).toHaveLength(3);
    expect(names[0]).toMatch(/_fused_attention$/);
    expect(names[1]).toMatch(/_fused_attention_split$/);
    expect(names[2]).toMatch(/_fused_attention_combine$/);
    expect(withLse.kernels).toHaveLength(3);
    // The LSE buffer is written by the prefill kernel and by the combine, read by no step.
    const lse = withLse.outputs.find((o) => o.name === 'lse')?.buffer;
    const writers = withLse.steps.filter((s) => s.bindings.some((b) => b.buffer === lse && b.access === 'read_write')).map((s) => s.kernel);
    expect(writers).toHaveLength(2);
    expect(writers[0]).toMatch(/fused_attention$/);
    expect(writers[1]).toMatch(/fused_attention_combine$/);
  });
});
