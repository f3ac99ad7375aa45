// `tfc tune` mechanics without a device: candidates per shape, the steps timed per shape (the
// kernels its schedule changes), winner selection (a wrong candidate never wins), the cache's
// deterministic JSON and its validation, and `tfc compile --tuned-for` reading the cache without
// ever asking for a GPU adapter (src/runtime/device.js is mocked to record any request).
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { kernelSummary, timeInterleaved, tuneTable } from '../../../src/cli/tune.js';
import { type CandidateResult, attentionCandidates, groupSteps, matmulCandidates, outputError, pickWinner, selectGroups, tuneGroups, withCandidate } from '../../../src/cli/tune-candidates.js';
import { main } from '../../../src/cli/main.js';
import { compilePlan } from '../../../src/compile/plan.js';
import { lowerToKernels } from '../../../src/kernel/lower/lower.js';
import type { Plan } from '../../../src/kernel/plan/plan.js';
import { type AttentionSchedule, chooseAttentionSchedule } from '../../../src/kernel/attention/schedule.js';
import { type MatmulSchedule, type Schedule, chooseSchedule, lavapipeLimits, scheduleShapeKey, webgpuDefaultLimits } from '../../../src/kernel/schedule/schedule.js';
import { applyTuneCache, attentionFits, emptyTuneCache, matmulFits, readTuneCache, resolveAdapter, serializeTuneCache, tuneCachePath, tuneKey, withEntries, type TuneCache, type TuneEntry } from '../../../src/kernel/schedule/tune-cache.js';
import { compileSource } from '../../../src/cli/bench.js';

// Every path to a GPU adapter goes through these two (src/runtime/device.ts loads `webgpu`);
// they record the call and fail, so a compile that asked for a device shows in `adapterRequests`.
const adapterRequests = vi.hoisted(() => [] as string[]);
vi.mock('../../../src/runtime/device.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../../src/runtime/device.js')>();
  return {
    ...real,
    acquireDevice: () => {
      adapterRequests.push('acquireDevice');
      return Promise.reject(new real.NoWebGpuError('mocked: no adapter in unit tests'));
    },
    hasWebGpu: () => {
      adapterRequests.push('hasWebGpu');
      return Promise.resolve({ ok: false, reason: 'mocked' });
    },
  };
});

const readOk = (path: string): TuneCache => {
  const r = readTuneCache(path);
  if (!r.ok) throw new Error(r.reason);
  return r.cache;
};

const src = `config {\n  m = 64\n  k = 64\n  n = 128\n}\ninput a: f32[m, k]\ninput b: f32[k, n]\ninput c: f32[n, k]\noutput y: f32[m, k]\nmodel mm {\n  y = (a @ b) @ c\n}\n`;
const graph = () => compileSource(src, 'tune.tfx', new Map(), true);
const direct: MatmulSchedule = { tileRows: 32, tileCols: 32, tileK: 16, threadRows: 4, threadCols: 4, isDirect: true };

describe('tfc tune candidates', () => {
  it('matmul: the chosen schedule first, deduplicated, every one within the limits', () => {
    for (const t of [lavapipeLimits, webgpuDefaultLimits]) {
      const cs = matmulCandidates(t);
      expect(cs[0]).toEqual(chooseSchedule(t).matmul);
      expect(cs.length).toBeGreaterThanOrEqual(3);
      expect(cs.length).toBeLessThanOrEqual(5);
      expect(new Set(cs.map((c) => JSON.stringify(c))).size).toBe(cs.length);
      for (const c of cs) expect(matmulFits(c, t)).toBe(true);
    }
  });
  it('attention: chosen first, subgroup schedules only where the target has subgroups', () => {
    const cpu = attentionCandidates(lavapipeLimits, 64, 64);
    expect(cpu[0]).toEqual(chooseAttentionSchedule(lavapipeLimits, 64, 64));
    expect(cpu.length).toBeGreaterThanOrEqual(3);
    const gpu = attentionCandidates(webgpuDefaultLimits, 64, 64);
    for (const c of gpu) {
      expect(c.useSubgroups).toBe(false);
      expect(attentionFits(c, webgpuDefaultLimits, 64, 64)).toBe(true);
    }
  });
  it('groups matmul nodes by shape', () => {
    const g = graph();
    const groups = tuneGroups(g, lavapipeLimits);
    expect(groups.map((x) => x.shape)).toEqual(['f32[64,64],f32[64,128]->f32[64,128]', 'f32[64,128],f32[128,64]->f32[64,64]']);
    expect(groups.every((x) => x.kind === 'matmul' && x.candidates.length === matmulCandidates(lavapipeLimits).length)).toBe(true);
  });
});

describe('the norm fold is a tuned choice', () => {
  it('a group folding a layernorm gets the default with the other normFold as its last candidate; others do not', () => {
    const src = readFileSync(new URL('../../../examples/gpt2.tfx', import.meta.url), 'utf8');
    const g = compileSource(src, 'gpt2.tfx', new Map(Object.entries({ layers: 1, d: 32, heads: 2, vocab: 64, ctx: 16 })), true);
    for (const [t, other] of [[lavapipeLimits, 'inline'], [webgpuDefaultLimits, 'separate']] as const) {
      const groups = tuneGroups(g, t).filter((gr) => gr.kind === 'matmul');
      const folds = (ids: readonly number[]): boolean => ids.some((id) => g.nodes[id]?.op === 'fused_matmul' && g.nodes[id]?.attrs['norm'] !== undefined);
      const withNorm = groups.filter((gr) => folds(gr.nodeIds));
      expect(withNorm.length).toBeGreaterThanOrEqual(2); // ln_1 + c_attn, ln_2 + c_fc (and ln_f + LM head)
      expect(groups.length).toBeGreaterThan(withNorm.length);
      for (const gr of groups) {
        const plain = matmulCandidates(t);
        if (!folds(gr.nodeIds)) {
          expect(gr.candidates).toEqual(plain);
          continue;
        }
        expect(gr.candidates.slice(0, plain.length)).toEqual(plain);
        expect(gr.candidates).toHaveLength(plain.length + 1);
        expect(gr.candidates[plain.length]).toEqual({ ...plain[0], normFold: other });
      }
    }
  });
});

describe('tfc tune winner', () => {
  const r = (ms: number, ok: boolean): CandidateResult => ({ schedule: { ...direct, tileK: ms }, error: ok ? 0 : 1, ok, medianMs: ok ? ms : NaN });
  it('the fastest checked candidate wins; a rejected one never does', () => {
    expect(pickWinner([r(5, true), { ...r(1, false), medianMs: 1 }, r(3, true)])?.medianMs).toBe(3);
    expect(pickWinner([{ ...r(1, false), medianMs: 1 }])).toBeUndefined();
  });
  it('output error is relative to the float64 values, and Infinity for a missing output or NaN', () => {
    const want = new Map([['y', { dtype: 'f32' as const, shape: [2], data: Float64Array.from([1, 100]) }]]);
    expect(outputError(want, new Map([['y', { data: [1, 101] }]]))).toBeCloseTo(1 / 101);
    expect(outputError(want, new Map())).toBe(Infinity);
    expect(outputError(want, new Map([['y', { data: [NaN, 100] }]]))).toBe(Infinity);
  });
});

describe('tfc tune times candidates interleaved', () => {
  it('one run of each candidate per round, each round starting one candidate later; times weighted per step', async () => {
    const calls: number[] = [];
    // A session whose run returns step timings (ns) of 1 ms x (candidate + 1) per step.
    const fake = (id: number, steps: number): Parameters<typeof timeInterleaved>[0][number] => ({
      session: { run: async () => (calls.push(id), { timing: Array.from({ length: steps }, () => ({ ns: 1e6 * (id + 1) })) }) } as never,
      timed: Array.from({ length: steps }, (_, i) => i),
      weight: Array.from({ length: steps }, (_, i) => i + 1),
    });
    const ms = await timeInterleaved([fake(0, 1), fake(1, 2), fake(2, 1)], new Map(), new Map(), 3);
    expect(calls).toEqual([0, 1, 2, 1, 2, 0, 2, 0, 1]);
    // candidate 1: two steps weighted 1 and 2, 2 ms each: 6 ms per run.
    expect(ms).toEqual([[1, 1, 1], [6, 6, 6], [3, 3, 3]]);
  });
});

describe('tune cache', () => {
  const entry = (shape: string, s: MatmulSchedule): TuneEntry => ({ adapter: 'webgpu:test', kind: 'matmul', shape, schedule: s, medianMs: 1, candidates: 4 });
  it('serializes deterministically whatever the insertion order', () => {
    const a = entry('x', direct);
    const b = entry('y', chooseSchedule(lavapipeLimits).matmul);
    const one = serializeTuneCache(withEntries(emptyTuneCache, [a, b]));
    const two = serializeTuneCache(withEntries(emptyTuneCache, [b, { ...a, schedule: { isDirect: true, threadCols: 4, threadRows: 4, tileCols: 32, tileK: 16, tileRows: 32 } }]));
    expect(one).toBe(two);
    expect(one.endsWith('\n')).toBe(true);
  });
  it('reads back what it wrote; a missing file is empty; a garbled one is reported, not guessed at', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tfc-tune-'));
    const path = join(dir, 'tune.json');
    expect(readOk(path)).toEqual(emptyTuneCache);
    const c = withEntries(emptyTuneCache, [entry('x', direct)]);
    writeFileSync(path, serializeTuneCache(c));
    expect(readOk(path).entries[tuneKey('webgpu:test', 'matmul', 'x')]?.schedule).toEqual(direct);
    const bad = (text: string): string => {
      writeFileSync(path, text);
      const r = readTuneCache(path);
      return r.ok ? 'ok' : r.reason;
    };
    expect(bad('{not json')).toMatch(/^not valid JSON/);
    expect(bad('[]')).toMatch(/^not a tfc tune cache/);
    expect(bad('{"version": 2, "entries": {}}')).toMatch(/^not a tfc tune cache/);
    const e = entry('x', direct);
    expect(bad(JSON.stringify({ version: 1, entries: { wrong: e } }))).toMatch(/stored under the wrong key/);
    expect(bad(JSON.stringify({ version: 1, entries: { [tuneKey(e.adapter, 'matmul', 'x')]: { ...e, schedule: { ...direct, tileK: 0 } } } }))).toMatch(/schedule\.tileK is not a positive integer/);
  });
  it('--tuned-for names an adapter exactly, without webgpu:, or by a part of exactly one', () => {
    const c = withEntries(emptyTuneCache, [
      { ...entry('x', direct), adapter: 'webgpu:llvmpipe (LLVM 15)' },
      { ...entry('x', direct), adapter: 'webgpu:NVIDIA H100' },
      { ...entry('x', direct), adapter: 'webgpu:NVIDIA H200' },
    ]);
    expect(resolveAdapter(c, 'webgpu:NVIDIA H100')).toEqual({ adapter: 'webgpu:NVIDIA H100' });
    expect(resolveAdapter(c, 'NVIDIA H200')).toEqual({ adapter: 'webgpu:NVIDIA H200' });
    expect(resolveAdapter(c, 'LLVMPIPE')).toEqual({ adapter: 'webgpu:llvmpipe (LLVM 15)' });
    expect(resolveAdapter(c, 'nvidia')).toEqual({ matches: ['webgpu:NVIDIA H100', 'webgpu:NVIDIA H200'] });
    expect(resolveAdapter(c, 'metal')).toEqual({ matches: [] });
  });
  it('path: --cache, then TFC_TUNE_CACHE, then ~/.cache/tfc/tune.json', () => {
    expect(tuneCachePath('/a.json', { TFC_TUNE_CACHE: '/b.json' })).toBe('/a.json');
    expect(tuneCachePath(undefined, { TFC_TUNE_CACHE: '/b.json' })).toBe('/b.json');
    expect(tuneCachePath(undefined, {})).toMatch(/\.cache[/\\]tfc[/\\]tune\.json$/);
  });
  it('compile uses a cached schedule for the same adapter and shape only', () => {
    const g = graph();
    const mm = g.nodes.find((n) => n.op === 'matmul' || n.op === 'fused_matmul');
    if (mm === undefined) throw new Error('no matmul');
    const shape = scheduleShapeKey(g, mm);
    const cache = withEntries(emptyTuneCache, [entry(shape, direct)]);
    const base = chooseSchedule(webgpuDefaultLimits);
    const other = applyTuneCache(g, base, cache, 'webgpu:other', webgpuDefaultLimits);
    expect(other.used).toEqual([]);
    expect(other.unfit).toEqual([]);
    expect(other.schedule).toBe(base);
    const hit = applyTuneCache(g, base, cache, 'webgpu:test', webgpuDefaultLimits);
    expect(hit.used).toHaveLength(1);
    expect(hit.schedule.byShape?.matmul?.[shape]).toEqual(direct);
    // The plan with the cached schedule is the plan compiled with that schedule forced for the shape.
    const wgsl = (s: typeof base) => compilePlan(g, { target: webgpuDefaultLimits, schedule: s }).kernels.map((k) => k.source.wgsl).join('\n');
    expect(wgsl(hit.schedule)).toBe(wgsl(withCandidate(base, 'matmul', shape, direct)));
    expect(wgsl(hit.schedule)).not.toBe(wgsl(base));
    // A schedule that does not fit the compile limits is not used.
    const big = withEntries(emptyTuneCache, [entry(shape, { tileRows: 64, tileCols: 64, tileK: 16, threadRows: 1, threadCols: 1 })]);
    const unfit = applyTuneCache(g, base, big, 'webgpu:test', webgpuDefaultLimits);
    expect(unfit.used).toEqual([]);
    expect(unfit.unfit).toHaveLength(1);
  });
});

// Attention between two matmul shapes (one of them used twice), and a layernorm no schedule touches.
const attnSrc = `config {
  t = 8
  d = 16
  heads = 2
  dh = d / heads
  scale = 1.0 / sqrt(dh)
}
input x: f32[t, d]
weight wqkv: f32[d, 3 * d] = "wqkv"
weight wo: f32[d, d] = "wo"
weight wo2: f32[d, d] = "wo2"
weight g: f32[d] = "g"
weight b: f32[d] = "b"
output y: f32[t, d]
fn heads_of(z: f32[t, d]) -> f32[heads, t, dh] {
  return permute(reshape(z, [t, heads, dh]), [1, 0, 2])
}
model attn {
  q, k, v = split(x @ wqkv, 3, axis=-1)
  p = softmax(heads_of(q) @ transpose(heads_of(k)) * scale)
  o = reshape(permute(p @ heads_of(v), [1, 0, 2]), [t, d])
  h = gelu(o @ wo) + x
  y = layernorm(h @ wo2 + h, g, b, eps=1e-5)
}
`;

describe('tfc tune times only the kernels a candidate changes', () => {
  const t = lavapipeLimits;
  const g = compileSource(attnSrc, 'attn.tfx', new Map(), true);
  const base = chooseSchedule(t);
  const sourceOf = (plan: Plan, step: number): string => {
    const name = plan.steps[step]?.kernel;
    return plan.kernels.find((k) => k.name === name)?.source.wgsl ?? `missing ${String(name)}`;
  };
  // Two schedules per kind that print different kernels (staged vs direct).
  const pair = (kind: 'matmul' | 'attention'): [MatmulSchedule | AttentionSchedule, MatmulSchedule | AttentionSchedule] => {
    if (kind === 'matmul') return [{ tileRows: 64, tileCols: 64, tileK: 16, threadRows: 4, threadCols: 4 }, direct];
    const cs = attentionCandidates(t, 8, 8);
    const staged = cs.find((c) => c.isDirect !== true);
    const direct2 = cs.find((c) => c.isDirect === true);
    if (staged === undefined || direct2 === undefined) throw new Error('need a staged and a direct attention candidate');
    return [staged, direct2];
  };

  it('the groups: two matmul shapes (one with two nodes) and the attention', () => {
    const groups = tuneGroups(g, t);
    expect(groups.map((gr) => `${gr.kind}:${gr.nodeIds.length}`).sort()).toEqual(['attention:1', 'matmul:1', 'matmul:2']);
  });

  it("the timed steps are exactly the steps whose kernel changes with that shape's schedule, and no others", () => {
    const all = new Set<number>();
    for (const gr of tuneGroups(g, t)) {
      const [a, b] = pair(gr.kind);
      const sa: Schedule = withCandidate(base, gr.kind, gr.shape, a);
      const sb: Schedule = withCandidate(base, gr.kind, gr.shape, b);
      const planA = compilePlan(g, { target: t, schedule: sa });
      const planB = compilePlan(g, { target: t, schedule: sb });
      expect(planB.steps).toHaveLength(planA.steps.length);
      // Independent of the kernels' origin: compare the two plans step by step.
      const changed = planA.steps.map((_, i) => i).filter((i) => sourceOf(planA, i) !== sourceOf(planB, i));
      expect(changed.length).toBe(gr.nodeIds.length); // one kernel per node at constant T
      expect(groupSteps(lowerToKernels(g, t, sa), gr.nodeIds)).toEqual(changed);
      expect(groupSteps(lowerToKernels(g, t, sb), gr.nodeIds)).toEqual(changed);
      for (const i of changed) all.add(i);
    }
    // The layernorm's kernel belongs to no group: it is never timed.
    const plan = compilePlan(g, { target: t, schedule: base });
    const untimed = plan.steps.map((_, i) => i).filter((i) => !all.has(i));
    expect(untimed.map((i) => plan.steps[i]?.kernel)).toEqual(['attn_layernorm']);
  });

  it('a plan compiled from the kept program is the plan compiled from scratch', () => {
    const program = lowerToKernels(g, t, base);
    expect(program.origin).toHaveLength(program.kernels.length);
    expect(JSON.stringify(compilePlan(g, { target: t, schedule: base, program }))).toBe(JSON.stringify(compilePlan(g, { target: t, schedule: base })));
  });

  it('--only selects by kind, shape or printed label; unknown selectors are returned', () => {
    const groups = tuneGroups(g, t);
    const mm = groups.find((gr) => gr.kind === 'matmul' && gr.nodeIds.length === 2);
    if (mm === undefined) throw new Error('no two-node matmul group');
    expect(selectGroups(groups, []).groups).toHaveLength(3);
    expect(selectGroups(groups, ['attention']).groups.map((gr) => gr.kind)).toEqual(['attention']);
    expect(selectGroups(groups, [mm.shape]).groups).toEqual([mm]);
    expect(selectGroups(groups, [`matmul ${mm.shape}`, 'conv']).groups).toEqual([mm]);
    expect(selectGroups(groups, [`matmul ${mm.shape}`, 'conv']).unknown).toEqual(['conv']);
  });

  it('the table names the timed kernels, the default row, ratios to it, and rejected rows without a time', () => {
    const staged: MatmulSchedule = { tileRows: 64, tileCols: 64, tileK: 16, threadRows: 4, threadCols: 4 };
    const timedKernels = ['mm_matmul', 'mm_matmul'];
    const ok: CandidateResult = { schedule: staged, error: 1e-7, ok: true, medianMs: 2, timedKernels };
    const fast: CandidateResult = { schedule: direct, error: 1e-7, ok: true, medianMs: 0.5, timedKernels };
    const wrong: CandidateResult = { schedule: { ...direct, tileK: 8 }, error: 1, ok: false, medianMs: NaN, timedKernels, note: 'wrong result' };
    const text = tuneTable({ adapter: 'webgpu:x', repeats: 3, entries: [], groups: [{ kind: 'matmul', shape: 's', nodeIds: [4, 9], distinct: 1, candidates: [staged, direct, wrong.schedule], results: [ok, fast, wrong], winner: fast }] });
    const lines = text.split('\n');
    expect(lines[0]).toMatch(/^tfc tune on webgpu:x: ms = median of 3 runs of the GPU time of each shape's own kernels/);
    expect(lines[2]).toBe('matmul s: 2 nodes (1 distinct, each timed once and counted per node); timed 2 steps: mm_matmul x2');
    // Schedules are padded to 40 columns before the notes.
    expect(lines[3]).toBe(`       2.000 ms  1.00x  err 1.0e-7  ok       ${'64x64 k16 4x4/thread staged'.padEnd(40)}  (default)`);
    expect(lines[4]).toBe('  *    0.500 ms  0.25x  err 1.0e-7  ok       32x32 k16 4x4/thread direct');
    expect(lines[5]).toBe(`           - ms      -  err 1.0e+0  REJECTED ${'32x32 k8 4x4/thread direct'.padEnd(40)}  (wrong result)`);
  });

  it('kernel summaries count steps per kernel in launch order', () => {
    expect(kernelSummary(['a', 'a', 'b', 'a'])).toBe('a x3, b');
    expect(kernelSummary(['a', 'b', 'c'], 2)).toBe('a, b, +1 more kernel');
  });
});

describe('tfc compile --tuned-for reads the cache file and never asks for a GPU adapter', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tfc-tune-cli-'));
  const file = join(dir, 'attn.tfx');
  writeFileSync(file, attnSrc);
  const g = compileSource(attnSrc, 'attn.tfx', new Map(), true);
  const mm = tuneGroups(g, webgpuDefaultLimits).find((gr) => gr.kind === 'matmul' && gr.nodeIds.length === 2);
  if (mm === undefined) throw new Error('no two-node matmul group');
  const adapter = 'webgpu:Test GPU (unit)';
  const cachePath = join(dir, 'tune.json');
  writeFileSync(cachePath, serializeTuneCache(withEntries(emptyTuneCache, [{ adapter, kind: 'matmul', shape: mm.shape, schedule: direct, medianMs: 1, candidates: 4 }])));
  const run = async (argv: string[], cache = cachePath): Promise<{ code: number; out: string; err: string }> => {
    const r = { code: 0, out: '', err: '' };
    r.code = await main(argv, { out: (x) => void (r.out += x), err: (x) => void (r.err += x), env: { TFC_TUNE_CACHE: cache } });
    return r;
  };
  const wgsl = (s: Schedule): string => compilePlan(g, { target: webgpuDefaultLimits, schedule: s }).kernels.map((k) => k.source.wgsl).join('\n');

  it('without --tuned-for: default schedules, no adapter request although the cache has entries', async () => {
    adapterRequests.length = 0;
    const r = await run(['compile', file, '--emit', 'wgsl', '--debug', '1']);
    expect(r.code).toBe(0);
    expect(adapterRequests).toEqual([]);
    expect(r.err).not.toContain('tuned schedule');
    const strip = (text: string): string => text.replace(/^\/\/.*$/gm, '');
    expect(strip(r.out)).toBe(strip(wgsl(chooseSchedule(webgpuDefaultLimits))));
  });

  it('--tuned-for ADAPTER applies its entries: the WGSL of the schedule forced for that shape', async () => {
    adapterRequests.length = 0;
    const a = await run(['compile', file, '--emit', 'wgsl', '--tuned-for', adapter, '--debug', '1']);
    const b = await run(['compile', file, '--emit', 'wgsl', '--tuned-for', 'test gpu']);
    const none = await run(['compile', file, '--emit', 'wgsl']);
    expect([a.code, b.code, none.code]).toEqual([0, 0, 0]);
    // -o artifacts too (manifest and host module come from the same plan).
    const out = join(dir, 'out');
    expect((await run(['compile', file, '-o', out, '--tuned-for', adapter])).code).toBe(0);
    const strip0 = (text: string): string => text.replace(/^\/\/.*$/gm, '');
    const kernelOf = (s: Schedule): string => strip0(compilePlan(g, { target: webgpuDefaultLimits, schedule: s }).kernels.find((k) => k.name === 'attn_fused_matmul')?.source.wgsl ?? '');
    const written = strip0(readFileSync(join(out, 'wgsl', 'attn_fused_matmul.wgsl'), 'utf8'));
    expect(written).toBe(kernelOf(withCandidate(chooseSchedule(webgpuDefaultLimits), 'matmul', mm.shape, direct)));
    expect(written).not.toBe(kernelOf(chooseSchedule(webgpuDefaultLimits)));
    expect(adapterRequests).toEqual([]);
    expect(a.err).toContain(`1 tuned schedule for ${adapter} from ${cachePath}`);
    expect(a.err).toContain(`matmul ${mm.shape}`);
    expect(b.out).toBe(a.out);
    // The forced schedule changes exactly that shape's kernels; compare with compilePlan directly.
    const strip = (text: string): string => text.replace(/^\/\/.*$/gm, '');
    const base = chooseSchedule(webgpuDefaultLimits);
    expect(strip(a.out)).toBe(strip(wgsl(withCandidate(base, 'matmul', mm.shape, direct))));
    expect(strip(none.out)).toBe(strip(wgsl(base)));
    expect(strip(a.out)).not.toBe(strip(none.out));
  });

  it('an adapter without entries, an ambiguous name, an empty or corrupted cache: clean errors, no device', async () => {
    adapterRequests.length = 0;
    const unknown = await run(['compile', file, '--emit', 'wgsl', '--tuned-for', 'Metal']);
    expect(unknown.code).toBe(2);
    expect(unknown.err).toBe(`tfc: error: --tuned-for 'Metal' has no entries in the tune cache '${cachePath}'; adapters with entries: ${adapter}\n`);
    const empty = await run(['compile', file, '--emit', 'wgsl', '--tuned-for', 'Metal'], join(dir, 'missing.json'));
    expect(empty.code).toBe(2);
    expect(empty.err).toMatch(/has no entries \(run 'tfc tune' on that machine/);
    const corrupt = join(dir, 'corrupt.json');
    writeFileSync(corrupt, '{"version": 1, "entries": {');
    const bad = await run(['compile', file, '--emit', 'wgsl', '--tuned-for', 'Test GPU'], corrupt);
    expect(bad.code).toBe(1);
    expect(bad.err).toContain(`${corrupt}: error[TFC311]: the tune cache is not valid JSON`);
    expect(bad.out).toBe('');
    // Entries for the adapter but none for this model's shapes: a warning, default schedules.
    const other = join(dir, 'other.json');
    writeFileSync(other, serializeTuneCache(withEntries(emptyTuneCache, [{ adapter, kind: 'matmul', shape: 'f32[1,2],f32[2,3]->f32[1,3]', schedule: direct, medianMs: 1, candidates: 4 }])));
    const miss = await run(['compile', file, '--emit', 'wgsl', '--tuned-for', adapter], other);
    expect(miss.code).toBe(0);
    expect(miss.err).toMatch(/warning: --tuned-for .* none of the 1 cached shape .* default schedules used/);
    const two = join(dir, 'two.json');
    writeFileSync(two, serializeTuneCache(withEntries(emptyTuneCache, [{ adapter, kind: 'matmul', shape: mm.shape, schedule: direct, medianMs: 1, candidates: 4 }, { adapter: 'webgpu:Other GPU', kind: 'matmul', shape: mm.shape, schedule: direct, medianMs: 1, candidates: 4 }])));
    const ambiguous = await run(['compile', file, '--emit', 'wgsl', '--tuned-for', 'gpu'], two);
    expect(ambiguous.code).toBe(2);
    expect(ambiguous.err).toBe(`tfc: error: --tuned-for 'gpu' matches several adapters (webgpu:Other GPU; ${adapter}): name one exactly; adapters with entries: webgpu:Other GPU; ${adapter}\n`);
    expect(adapterRequests).toEqual([]);
  });
});

describe('tfc tune: mistakes are reported before any device is started', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tfc-tune-pre-'));
  const file = join(dir, 'attn.tfx');
  writeFileSync(file, attnSrc);
  const plain = join(dir, 'plain.tfx');
  writeFileSync(plain, 'config {\n  n = 4\n}\ninput a: f32[n]\noutput y: f32[n]\nmodel plain {\n  y = exp(a) + 1.0\n}\n');
  const run = async (argv: string[]): Promise<{ code: number; out: string; err: string }> => {
    const r = { code: 0, out: '', err: '' };
    r.code = await main(argv, { out: (x) => void (r.out += x), err: (x) => void (r.err += x), env: {} });
    return r;
  };
  const cache = join(dir, 'tune.json');

  it('no matmul or attention: exit 2, one line', async () => {
    adapterRequests.length = 0;
    const r = await run(['tune', plain, '--cache', cache]);
    expect(r.code).toBe(2);
    expect(r.err).toBe(`tfc: error: nothing to tune: ${plain} has no matmul or attention after the webgpu passes\n`);
    expect(adapterRequests).toEqual([]);
  });
  it('an unknown --only group: exit 2, listing the shapes', async () => {
    adapterRequests.length = 0;
    const r = await run(['tune', file, '--cache', cache, '--only', 'conv']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^tfc: error: --only 'conv' matches no shape of .*; its shapes: matmul f32\[8,16\],f32\[16,48\]->f32\[8,48\]; attention .*; matmul f32\[8,16\],f32\[16,16\]->f32\[8,16\] \(or 'matmul', 'attention'\)\n$/);
    expect(adapterRequests).toEqual([]);
  });
  it('an unwritable cache path: exit 2; a corrupted cache: TFC311, exit 1, the file left as it was', async () => {
    adapterRequests.length = 0;
    const folder = await run(['tune', file, '--cache', dir]);
    expect(folder.code).toBe(2);
    expect(folder.err).toBe(`tfc: error: cannot write the tune cache '${dir}': it is a folder (pass --cache FILE)\n`);
    const under = join(file, 'x.json'); // a folder that is a file
    const notDir = await run(['tune', file, '--cache', under]);
    expect(notDir.code).toBe(2);
    expect(notDir.err).toMatch(/^tfc: error: cannot write the tune cache '.*x\.json': /);
    const corrupt = join(dir, 'corrupt.json');
    writeFileSync(corrupt, '{"version": 1, "entries": {');
    const bad = await run(['tune', file, '--cache', corrupt]);
    expect(bad.code).toBe(1);
    expect(bad.err).toContain(`${corrupt}: error[TFC311]: the tune cache is not valid JSON`);
    expect(readFileSync(corrupt, 'utf8')).toBe('{"version": 1, "entries": {');
    expect(adapterRequests).toEqual([]);
  });
  it('with no adapter: exit 1, saying tune needs one (the only step that asks for it)', async () => {
    adapterRequests.length = 0;
    const r = await run(['tune', file, '--cache', cache, '--only', 'attention']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/tfc: error: tfc tune needs a WebGPU adapter: mocked: no adapter in unit tests\n$/);
    expect(adapterRequests).toEqual(['acquireDevice']);
  });
});

describe('a cached schedule the node cannot take', () => {
  it('is one error line naming the schedule field, exit 1, no stack trace', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tfc-tune-bad-'));
    // K = 30: vector loads of A along K are illegal (no whole runs of 4); the entry asks for them.
    const src = 'config {\n  k = 30\n}\ndims T\ninput x: f32[T, k]\nweight w: f32[k, 64] = "w"\noutput y: f32[T, 64]\nmodel m {\n  y = x @ w\n}\n';
    const file = join(dir, 'm.tfx');
    writeFileSync(file, src);
    const g = compileSource(src, 'm.tfx', new Map(), true);
    const mm = tuneGroups(g, lavapipeLimits).find((gr) => gr.kind === 'matmul');
    if (mm === undefined) throw new Error('no matmul group');
    const adapter = 'webgpu:Test CPU (unit)';
    const bad: MatmulSchedule = { ...chooseSchedule(lavapipeLimits).matmul, aVector: 4, bVector: 1 };
    expect(matmulFits(bad, lavapipeLimits)).toBe(true); // legal for the target, not for this node
    const cachePath = join(dir, 'tune.json');
    writeFileSync(cachePath, serializeTuneCache(withEntries(emptyTuneCache, [{ adapter, kind: 'matmul', shape: mm.shape, schedule: bad, medianMs: 1, candidates: 1 }])));
    const r = { out: '', err: '' };
    const code = await main(['compile', file, '--emit', 'wgsl', '--limits', 'lavapipe', '--tuned-for', adapter], { out: (x) => void (r.out += x), err: (x) => void (r.err += x), env: { TFC_TUNE_CACHE: cachePath } });
    expect(code).toBe(1);
    // The cache's own notice line, then the error: one line, naming the field.
    const errors = r.err.split('\n').filter((l) => l.startsWith('tfc: error'));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^tfc: error: illegal schedule: matmul\.aVector: %\d+ \(matmul/);
    expect(r.err).not.toContain('    at ');
  });
});
