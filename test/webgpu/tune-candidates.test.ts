// Every schedule `tfc tune` may choose is correct: at small, odd shapes (K, N and T not multiples
// of the tiles or of 4) every candidate of every matmul and attention shape of GPT-2, a Llama-style
// decoder (GQA, RoPE, SwiGLU) and a sliding-window model runs on WebGPU within 1e-4 of the float64
// interpreter, prefill and one-token shapes. The tuner checks each candidate before it may win;
// this test makes sure none of its search space is wrong in the first place (a rejected candidate
// here is a lowering bug, not a tuning result).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { benchCompilation } from '../../src/cli/bench.js';
import { scheduleText, tune } from '../../src/cli/tune.js';
import { testDevice } from './helpers.js';

const cases: [string, string, Record<string, number>, Record<string, number>][] = [
  ['gpt2 prefill', 'examples/gpt2.tfx', { layers: 1, d: 36, heads: 3, vocab: 67, ctx: 16 }, { B: 1, T: 7 }],
  ['gpt2 one token', 'examples/gpt2.tfx', { layers: 1, d: 36, heads: 3, vocab: 67, ctx: 16 }, { B: 2, T: 1 }],
  ['llama prefill', 'examples/variants/llama-nocache.tfx', { layers: 1, d: 40, heads: 4, kv_heads: 2, ffn: 52, vocab: 61 }, { B: 1, T: 9 }],
  ['sliding window', 'examples/variants/sliding-window.tfx', { layers: 1, d: 36, heads: 3, vocab: 67 }, { B: 1, T: 13 }],
];

describe('every tune candidate matches the float64 interpreter at odd shapes', () => {
  for (const [label, file, set, dims] of cases) {
    it(`${label}: ${file} --set ${Object.entries(set).map(([k, v]) => `${k}=${v}`).join(',')} at ${JSON.stringify(dims)}`, { timeout: 600_000 }, async () => {
      const dev = await testDevice();
      const g = benchCompilation(readFileSync(file, 'utf8'), file, new Map(Object.entries(set)), true);
      const r = await tune(dev, g.graph, new Map(Object.entries(dims)), { repeats: 1, tolerance: 1e-4, seed: 3 });
      expect(r.groups.length).toBeGreaterThan(1);
      let checked = 0;
      for (const gr of r.groups) {
        expect(gr.results).toHaveLength(gr.candidates.length);
        for (const c of gr.results) {
          const what = `${gr.kind} ${gr.shape}: ${scheduleText(c.schedule)}`;
          expect(c.note === undefined || !c.note.startsWith('failed'), `${what}: ${c.note}`).toBe(true);
          expect(c.ok, `${what}: error ${c.error}`).toBe(true);
          expect(c.error, what).toBeLessThanOrEqual(1e-4);
          checked++;
        }
      }
      console.log(`${label}: ${checked} candidates over ${r.groups.length} shapes, all within 1e-4`);
      expect(checked).toBeGreaterThan(r.groups.length);
    });
  }
});
