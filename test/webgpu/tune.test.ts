// `tfc tune` on the present adapter: every candidate is checked against the float64 interpreter
// before it may win (a corrupted candidate is rejected), only the tuned shape's kernels are timed,
// the CLI writes the cache, and `tfc compile --tuned-for ADAPTER` then uses it (plain compile does
// not). No assertions on time.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { benchCompilation } from '../../src/cli/bench.js';
import { main } from '../../src/cli/main.js';
import { tune } from '../../src/cli/tune.js';
import { compilePlan } from '../../src/compile/plan.js';
import { targetLimitsOf } from '../../src/runtime/target.js';
import { testDevice } from './helpers.js';

// One matmul shape (two nodes, the second with an epilogue) and an elementwise kernel (z) that is never timed.
const src = `config {\n  m = 16\n  k = 32\n  n = 32\n}\ninput a: f32[m, k]\ninput b: f32[k, n]\noutput y: f32[m, n]\noutput z: f32[m, k]\nmodel mm {\n  y = relu(a @ b) @ b + 1.0\n  z = exp(a)\n}\n`;

describe('tfc tune on WebGPU', () => {
  it('checks every candidate against the interpreter; a wrong one is rejected, never cached', async () => {
    const dev = await testDevice();
    const g = benchCompilation(src, 'tune.tfx', new Map(), true);
    const r = await tune(dev, g.graph, new Map(), { repeats: 1, corrupt: (_kind, i) => i === 0 });
    expect(r.groups).toHaveLength(1);
    const gr = r.groups[0];
    if (gr === undefined) throw new Error('no group');
    expect(gr.results).toHaveLength(gr.candidates.length);
    expect(gr.results[0]?.ok).toBe(false);
    expect(gr.results[0]?.note).toBe('wrong result');
    for (const c of gr.results.slice(1)) expect(c.error).toBeLessThan(1e-3);
    expect(gr.winner).not.toBe(gr.results[0]);
    // Timed: the group's two matmul kernels and not the exp kernel (kernel names come from the op).
    const steps = compilePlan(g.graph, { target: targetLimitsOf(dev) }).steps.map((s) => s.kernel);
    const matmulSteps = steps.filter((k) => k.includes('matmul'));
    expect(matmulSteps).toHaveLength(2);
    expect(steps.length).toBeGreaterThan(2);
    expect(gr.nodeIds).toHaveLength(2);
    for (const c of gr.results) expect(c.timedKernels).toEqual(matmulSteps);
    expect(r.entries.map((e) => JSON.stringify(e.schedule))).not.toContain(JSON.stringify(gr.results[0]?.schedule));
  });

  it('tfc tune writes the cache; compile uses it only with --tuned-for ADAPTER', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tfc-tune-'));
    const file = join(dir, 'mm.tfx');
    writeFileSync(file, src);
    const cache = join(dir, 'tune.json');
    const io = (env: Record<string, string>) => {
      const o = { out: '', err: '' };
      return { o, io: { out: (t: string) => void (o.out += t), err: (t: string) => void (o.err += t), env } };
    };
    const t = io({});
    expect(await main(['tune', file, '--repeats', '1', '--cache', cache], t.io)).toBe(0);
    expect(t.o.out).toMatch(/^matmul f32\[16,32\],f32\[32,32\]->f32\[16,32\]: 2 nodes; timed 2 steps: mm_fused_matmul, mm_fused_matmul_1$/m);
    expect(t.o.err).toContain('1 winner');
    expect(t.o.err).toMatch(/^\[1\/\d+\] matmul f32\[16,32\],f32\[32,32\]->f32\[16,32\] candidate 1\/\d+ /m);
    const text = readFileSync(cache, 'utf8');
    expect(text).toContain('|matmul|f32[16,32],f32[32,32]->f32[16,32]');
    const adapter = /winner for (.*) -> /.exec(t.o.err)?.[1];
    if (adapter === undefined) throw new Error(`no adapter in: ${t.o.err}`);
    const c = io({ TFC_TUNE_CACHE: cache });
    expect(await main(['compile', file, '--limits', 'lavapipe', '--debug', '1', '--tuned-for', adapter], c.io)).toBe(0);
    expect(c.o.err).toContain(`1 tuned schedule for ${adapter} from ${cache}`);
    const n = io({ TFC_TUNE_CACHE: cache });
    expect(await main(['compile', file, '--limits', 'lavapipe', '--debug', '1'], n.io)).toBe(0);
    expect(n.o.err).not.toContain('tuned schedule');
  });
});
