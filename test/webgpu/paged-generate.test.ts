// `generatePaged` (src/runtime/paged.ts) on WebGPU with examples/variants/gpt2-paged.tfx: several
// prompts of different lengths share one page pool; sequences join and leave between steps; a
// sequence's pages come from the allocator as it grows and go back when it leaves. Every
// sequence's greedy tokens must equal decoding it alone with the contiguous gpt2-kv.tfx; a pool
// smaller than the sequences' total forces pages to be reused; running out of pages is a clear
// error, with every page back in the allocator. With a sliding window (--set window=6), the pages
// before each sequence's window are freed as it grows: the tokens equal those of the same model
// keeping every page, in a pool too small to keep them all.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AcquiredDevice } from '../../src/runtime/device.js';
import { RuntimeError } from '../../src/runtime/errors.js';
import { PageAllocator } from '../../src/runtime/pages.js';
import { type PagedStep, generatePaged, pagedGeometry } from '../../src/runtime/paged.js';
import type { Session } from '../../src/runtime/session.js';
import { testDevice } from './helpers.js';
import { decodeAlone, decodeSession } from './kv-decode.js';

const config = { vocab: 64, ctx: 32, d: 32, heads: 2, layers: 2 };
const PAGE = 4;
const geo = { layers: 2, heads: 2, headDim: 16, vocab: 64 };

const WINDOW = 6;

let dev: AcquiredDevice;
let paged: Session;
let windowed: Session;
let single: Session;
beforeAll(async () => {
  dev = await testDevice();
  paged = await decodeSession(dev, 'examples/variants/gpt2-paged.tfx', { ...config, page: PAGE });
  windowed = await decodeSession(dev, 'examples/variants/gpt2-paged.tfx', { ...config, page: PAGE, window: WINDOW });
  single = await decodeSession(dev, 'examples/variants/gpt2-kv.tfx', config);
}, 600_000);
afterAll(() => dev.device.destroy());

const model = (): { session: Session; context: number } => ({ session: paged, context: config.ctx });

describe('generatePaged: several sequences over one page pool', () => {
  it('reads the cache geometry from the plan', () => {
    expect(pagedGeometry(paged.plan)).toEqual({ layers: 2, kvHeads: 2, pageSize: PAGE, headDim: 16, vocab: 64 });
    expect(() => pagedGeometry(single.plan)).toThrow(/not a paged-cache model: it has no input 'lengths'/);
  });

  it('greedy tokens equal each sequence decoded alone (gpt2-kv); sequences join and leave; pages are reused', { timeout: 600_000 }, async () => {
    const prompts = [
      [3, 17, 42],
      [5, 9, 11, 2, 60, 33],
      [7, 7, 1, 50],
      [12, 40],
    ];
    const steps = [6, 8, 5, 4];
    const want = await Promise.all(prompts.map((p, i) => decodeAlone(single, geo, p, steps[i] ?? 0)));
    // Without reuse the sequences need 2 + 4 + 2 + 2 pages of 4 tokens (prompt + all but the last
    // token cached): 10 > 6, so some must take pages an earlier one gave back.
    const NP = 6;
    const allocator = new PageAllocator(NP, PAGE);
    const events: PagedStep[] = [];
    const held: number[] = [];
    const r = await generatePaged(
      model(),
      prompts.map((prompt, i) => ({ prompt, maxNewTokens: steps[i] ?? 0 })),
      {
        temperature: 0,
        maxBatch: 2,
        allocator,
        onStep: (e) => {
          events.push(e);
          held.push(NP - e.allocator.freeCount);
        },
      },
    );
    expect(r.sequences.map((s) => s.tokens)).toEqual(want);
    expect(r.sequences.map((s) => s.stopReason)).toEqual(['max-new-tokens', 'max-new-tokens', 'max-new-tokens', 'max-new-tokens']);
    // Every page is back; none was ever held twice at once and the pool was never over-full.
    expect(allocator.freeCount).toBe(NP);
    expect(allocator.sequences).toEqual([]);
    expect(Math.max(...held)).toBeLessThanOrEqual(NP);
    for (const e of events) {
      const pages = e.rows.flatMap((x) => x.pages);
      expect(new Set(pages).size, 'pages held by two rows at once').toBe(pages.length);
      // Each row holds exactly the pages for its cached tokens plus the call's new ones.
      for (const x of e.rows) expect(x.firstPage + x.pages.length).toBe(Math.ceil((x.length + (e.kind === 'prefill' ? prompts[x.seq]?.length ?? 0 : 1)) / PAGE));
      expect(e.rows.every((x) => x.firstPage === 0)).toBe(true); // no window: nothing trimmed
    }
    // Reuse: some page served two different sequences over the run.
    const users = new Map<number, Set<number>>();
    for (const e of events) for (const x of e.rows) for (const p of x.pages) users.set(p, (users.get(p) ?? new Set()).add(x.seq));
    expect([...users.values()].some((s) => s.size >= 2)).toBe(true);
    expect(users.size).toBeLessThanOrEqual(NP);
    // Joining mid-run: sequence 2's prompt runs after decode steps, and it then decodes beside sequence 1.
    const firstPrefill2 = events.findIndex((e) => e.kind === 'prefill' && e.rows[0]?.seq === 2);
    expect(events.slice(0, firstPrefill2).some((e) => e.kind === 'decode')).toBe(true);
    expect(events.some((e) => e.kind === 'decode' && e.rows.some((x) => x.seq === 1) && e.rows.some((x) => x.seq === 2))).toBe(true);
    expect(Math.max(...r.decodeRows)).toBe(2);
    // One dispatch per kernel per decode step, whatever the rows' lengths and pages: the decode path
    // only. (The count depends on B: one row (B * T = 1) takes the GEMV path, with its own kernels.)
    const byRows = new Map<number, Set<number>>();
    r.decodeRows.forEach((rows, i) => byRows.set(rows, (byRows.get(rows) ?? new Set()).add(r.decodeDispatches[i] ?? -1)));
    expect([...byRows.values()].map((s) => s.size)).toEqual([...byRows.values()].map(() => 1));
    expect(Math.max(...r.decodeDispatches)).toBeLessThan(paged.plan.steps.length);
    expect(r.prefillMs).toHaveLength(4);
  });

  it('a sequence that reaches the context stops with context-full, its tokens still those decoded alone', { timeout: 600_000 }, async () => {
    const prompt = Array.from({ length: 30 }, (_, i) => (i * 7 + 3) % 64);
    // Slots 30 and 31 take the first two new tokens; the third has no slot left in ctx = 32.
    const want = await decodeAlone(single, geo, prompt, 3);
    const r = await generatePaged(model(), [{ prompt, maxNewTokens: 10 }], { temperature: 0, pages: 8 });
    expect(r.sequences[0]?.tokens).toEqual(want);
    expect(r.sequences[0]?.stopReason).toBe('context-full');
  });

  it('out of pages: a RuntimeError naming the pool, not garbage tokens; every page back in the allocator', { timeout: 600_000 }, async () => {
    const allocator = new PageAllocator(3, PAGE);
    // 3 pages hold 12 tokens; the sequence needs a 4th page for its 13th.
    const run = generatePaged(model(), [{ prompt: [1, 2, 3], maxNewTokens: 20 }], { temperature: 0, allocator });
    await expect(run).rejects.toThrow(RuntimeError);
    await expect(run).rejects.toThrow(/^out of KV-cache pages: sequence 0 needs 1 more page\(s\) of 4 tokens to hold 13 tokens, and 0 of the pool's 3 are free/);
    expect(allocator.freeCount).toBe(3);
    // A prompt longer than the whole pool is refused before its call.
    await expect(generatePaged(model(), [{ prompt: Array.from({ length: 13 }, () => 1), maxNewTokens: 1 }], { allocator })).rejects.toThrow(/out of KV-cache pages/);
    expect(allocator.freeCount).toBe(3);
  });

  it('sampling: each sequence draws from its own generator, so the batch around it does not change its tokens', { timeout: 600_000 }, async () => {
    const requests = [{ prompt: [4, 8, 15] }, { prompt: [16, 23, 42, 1, 2] }, { prompt: [9] }];
    const opts = { temperature: 1.5, seed: 5, maxNewTokens: 6 };
    const together = await generatePaged(model(), requests, opts);
    const oneByOne = await generatePaged(model(), requests, { ...opts, maxBatch: 1 });
    expect(together.sequences).toEqual(oneByOne.sequences);
    expect(together.sequences.map((s) => s.tokens.length)).toEqual([6, 6, 6]);
    // Sampling, not argmax: the greedy tokens differ somewhere.
    const greedy = await generatePaged(model(), requests, { ...opts, temperature: 0 });
    expect(greedy.sequences.map((s) => s.tokens)).not.toEqual(together.sequences.map((s) => s.tokens));
  });

  it('sliding window: pages before the window are freed as sequences grow; tokens equal keeping every page', { timeout: 600_000 }, async () => {
    const requests = [
      { prompt: [3, 17, 42, 8, 1, 9, 30], maxNewTokens: 14 },
      { prompt: [5, 9], maxNewTokens: 16 },
      { prompt: [7, 7, 1, 50], maxNewTokens: 10 },
    ];
    const model = { session: windowed, context: config.ctx };
    // Every page kept (no window given: first_page stays 0, the mask alone applies the window).
    const kept = await generatePaged(model, requests, { temperature: 0, maxBatch: 2 });
    // A decode step at length n keeps positions n - 5 .. n: at most 3 pages of 4 per sequence.
    const allocator = new PageAllocator(6, PAGE);
    const events: PagedStep[] = [];
    const slid = await generatePaged({ ...model, window: WINDOW }, requests, { temperature: 0, maxBatch: 2, allocator, onStep: (e) => events.push(e) });
    expect(slid.sequences.map((x) => x.tokens)).toEqual(kept.sequences.map((x) => x.tokens));
    expect(slid.sequences.map((x) => x.tokens.length)).toEqual([14, 16, 10]);
    for (const e of events) {
      for (const x of e.rows) {
        expect(x.pages.length, `sequence ${x.seq} at ${x.length}`).toBeLessThanOrEqual(3);
        // The row's first kept page holds its window's first position.
        if (e.kind === 'decode') expect(x.firstPage).toBe(Math.floor(Math.max(0, x.length - WINDOW + 1) / PAGE));
      }
    }
    expect(events.some((e) => e.rows.some((x) => x.firstPage > 0))).toBe(true);
    expect(allocator.freeCount).toBe(6);
    // Keeping every page does not fit in those 6 (sequence 1 alone needs 5 pages, two run at once).
    await expect(generatePaged(model, requests, { temperature: 0, maxBatch: 2, pages: 6 })).rejects.toThrow(/out of KV-cache pages/);
  });
});
