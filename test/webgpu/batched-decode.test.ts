// Continuous batching on WebGPU (examples/variants/gpt2-batched.tfx): sequences of different
// lengths decode together, one dispatch per kernel per step, and join or leave between steps (a
// joining sequence's prompt runs as its own B = 1 call into a fresh row, which is then copied into
// the batch's cache; a leaving one's row is reused). Every sequence's greedy tokens must equal
// those of decoding it alone with examples/variants/gpt2-kv.tfx (whose cache is its prefix).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AcquiredDevice } from '../../src/runtime/device.js';
import type { HostTensor, Session } from '../../src/runtime/session.js';
import { argmaxRow } from '../../src/runtime/speculative.js';
import { testDevice } from './helpers.js';
import { decodeAlone, decodeSession } from './kv-decode.js';

const config = { vocab: 64, ctx: 32, d: 32, heads: 2, layers: 2 };
const [H, DH, L, V, S] = [2, 16, 2, 64, 24];

let dev: AcquiredDevice;
let batched: Session;
let single: Session;
beforeAll(async () => {
  dev = await testDevice();
  batched = await decodeSession(dev, 'examples/variants/gpt2-batched.tfx', config);
  single = await decodeSession(dev, 'examples/variants/gpt2-kv.tfx', config);
});
afterAll(() => dev.device.destroy());

const alone = (prompt: readonly number[], steps: number): Promise<number[]> => decodeAlone(single, { layers: L, heads: H, headDim: DH, vocab: V }, prompt, steps);

describe('continuous batching: sequences of different lengths in one decode call', () => {
  it('greedy tokens equal decoding each sequence alone, with sequences joining and leaving between steps', async () => {
    const prompts = [
      [3, 17, 42],
      [5, 9, 11, 2, 60, 33],
      [7, 7, 1, 50],
      [12, 40],
    ];
    const steps = [6, 8, 5, 4];
    const want = await Promise.all(prompts.map((p, i) => alone(p, steps[i] ?? 0)));

    // Batch state: 3 rows, each with its cache [1, H, S, DH] slice, length and sequence.
    const rows = 3;
    const cache = new Map<string, Float32Array>();
    for (let l = 0; l < L; l++) for (const kv of ['key', 'value']) cache.set(`past.${l}.${kv}`, new Float32Array(rows * H * S * DH).fill(Number.NaN));
    const lengths = new Int32Array(rows);
    const seqOf: (number | undefined)[] = [undefined, undefined, undefined];
    const next = new Int32Array(rows);
    const got: number[][] = prompts.map(() => []);
    const rowSize = H * S * DH;
    const dispatches: number[] = [];

    /** A sequence joins row `row`: its prompt through a B = 1 call on an empty row, copied in. */
    const join = async (seq: number, row: number): Promise<void> => {
      const prompt = prompts[seq] ?? [];
      const ins = new Map<string, HostTensor>([
        ['tokens', { dtype: 'i32', shape: [1, prompt.length], data: prompt }],
        ['lengths', { dtype: 'i32', shape: [1], data: [0] }],
      ]);
      for (let l = 0; l < L; l++) for (const kv of ['key', 'value']) ins.set(`past.${l}.${kv}`, { shape: [1, H, S, DH], data: new Float32Array(rowSize) });
      const r = await batched.run(ins);
      for (const [name, buf] of cache) buf.set((r.outputs.get(name.replace('past', 'present'))?.data ?? []) as ArrayLike<number>, row * rowSize);
      lengths[row] = prompt.length;
      seqOf[row] = seq;
      const tok = argmaxRow(r.outputs.get('logits')?.data ?? [], prompt.length - 1, V);
      got[seq]?.push(tok);
      next[row] = tok;
    };

    /** One decode step for every row at once (idle rows compute on junk and are ignored). */
    const step = async (): Promise<void> => {
      const ins = new Map<string, HostTensor>([
        ['tokens', { dtype: 'i32', shape: [rows, 1], data: Array.from(next) }],
        ['lengths', { dtype: 'i32', shape: [rows], data: Array.from(lengths) }],
      ]);
      for (const [name, buf] of cache) ins.set(name, { shape: [rows, H, S, DH], data: buf });
      const r = await batched.run(ins);
      dispatches.push(batched.stats.lastDispatches);
      for (const [name, buf] of cache) buf.set((r.outputs.get(name.replace('past', 'present'))?.data ?? []) as ArrayLike<number>);
      const logits = r.outputs.get('logits')?.data ?? [];
      for (let row = 0; row < rows; row++) {
        const seq = seqOf[row];
        if (seq === undefined) continue;
        lengths[row] = (lengths[row] ?? 0) + 1;
        const tok = argmaxRow(logits, row, V);
        got[seq]?.push(tok);
        next[row] = tok;
        if ((got[seq]?.length ?? 0) >= (steps[seq] ?? 0)) seqOf[row] = undefined; // leaves
      }
    };

    await join(0, 0);
    await join(1, 1);
    for (let i = 0; i < 2; i++) await step();
    await join(2, 2); // joins while 0 and 1 are mid-sequence
    while (seqOf[0] !== undefined) await step();
    await join(3, 0); // reuses the row sequence 0 left
    while (seqOf.some((s) => s !== undefined)) await step();
    expect(got).toEqual(want);
    // One dispatch per kernel per step, the same whatever the rows' lengths and who is in the batch.
    expect(dispatches.length).toBeGreaterThanOrEqual(8);
    expect(new Set(dispatches).size).toBe(1);
    expect(dispatches[0]).toBeLessThan(batched.plan.steps.length); // the decode path only (no prefill kernels)
    for (let row = 0; row < rows; row++) expect(lengths[row]).toBeLessThanOrEqual(S);
  });
});
