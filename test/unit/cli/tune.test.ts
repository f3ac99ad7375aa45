// `tfc tune` mechanics without a device: candidates per shape, winner selection (a wrong candidate
// never wins), the cache's deterministic JSON, and compile reading the cache into Schedule.byShape.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type CandidateResult, attentionCandidates, matmulCandidates, outputError, pickWinner, tuneGroups, withCandidate } from '../../../src/cli/tune.js';
import { compilePlan } from '../../../src/kernel/compile-plan.js';
import { chooseAttentionSchedule } from '../../../src/kernel/lower-attention.js';
import { type MatmulSchedule, chooseSchedule, lavapipeLimits, scheduleShapeKey, webgpuDefaultLimits } from '../../../src/kernel/schedule.js';
import { applyTuneCache, attentionFits, emptyTuneCache, matmulFits, readTuneCache, serializeTuneCache, tuneCachePath, tuneKey, withEntries, type TuneEntry } from '../../../src/kernel/tune-cache.js';
import { compileSource } from '../../../src/cli/bench.js';

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
  it('reads back what it wrote; a missing or garbled file is empty', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tfc-tune-'));
    const path = join(dir, 'tune.json');
    expect(readTuneCache(path)).toEqual(emptyTuneCache);
    const c = withEntries(emptyTuneCache, [entry('x', direct)]);
    writeFileSync(path, serializeTuneCache(c));
    expect(readTuneCache(path).entries[tuneKey('webgpu:test', 'matmul', 'x')]?.schedule).toEqual(direct);
    writeFileSync(path, '{not json');
    expect(readTuneCache(path)).toEqual(emptyTuneCache);
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
    expect(applyTuneCache(g, base, big, 'webgpu:test', webgpuDefaultLimits).used).toEqual([]);
  });
});
