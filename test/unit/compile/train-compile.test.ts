// `tfc compile --train` (src/compile/train.ts, codegen/host/emit.ts addTrainer): the -o folder gets
// the training step's plan in train/, model.ts exports createTrainer, output is byte-identical from
// run to run (and `--emit host` equals the folder's model.ts), the step's plan has the inputs the
// runtime feeds (B and T symbolic, AdamW's hyperparameters as scalars), kernels equal to a forward
// kernel share its constant, and the combinations --train cannot serve are usage errors.
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../../src/cli/main.js';
import type { Manifest } from '../../../src/kernel/plan/manifest.js';

const tmp = mkdtempSync(join(tmpdir(), 'tfc-train-compile-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function tfc(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(args, { out: (t) => void (out += t), err: (t) => void (err += t), env: {} });
  return { code, out, err };
}

describe('tfc compile --train', () => {
  it('writes train/ and a model.ts with createTrainer, the same bytes every time', { timeout: 300_000 }, async () => {
    const a = await tfc('compile', 'examples/charlm/charlm.tfx', '--train', '-o', join(tmp, 'a'));
    expect(a.err).toMatch(/the training step \(\d+ kernels, \d+ steps\) in train\//);
    expect(a.code).toBe(0);
    // A second, independent compile: the same bytes (model.ts embeds both plans, trainPlan included).
    const emitted = await tfc('compile', 'examples/charlm/charlm.tfx', '--train', '--emit', 'host');
    const ts = readFileSync(join(tmp, 'a/model.ts'), 'utf8');
    expect(emitted.out).toBe(ts);
    expect(ts).toMatch(/^export async function createTrainer\(/m);
    expect(ts).toMatch(/^export const trainPlan: Plan = \{/m);
    expect(ts).toContain("targets: 'targets'");

    const m = JSON.parse(readFileSync(join(tmp, 'a/train/manifest.json'), 'utf8')) as Manifest;
    const inputs = new Map(m.buffers.filter((b) => b.kind === 'input').map((b) => [b.name ?? '', b]));
    const dims = (n: string): string => JSON.stringify(inputs.get(n)?.shape.map((e) => (e.kind === 'dim' ? e.name : e.kind === 'const' ? e.value : '?')));
    expect(dims('tokens')).toBe('["B","T"]');
    expect(dims('targets')).toBe('["B","T"]');
    for (const n of ['train.lr', 'train.bc1', 'train.bc2', 'train.beta1', 'train.beta2', 'train.eps', 'train.weight_decay', 'train.clip_norm']) expect(dims(n), n).toBe('[]');
    expect(inputs.has('past.0.key')).toBe(false); // the empty KV cache drops out
    const outputs = m.outputs.map((o) => o.name);
    expect(outputs).toContain('loss');
    expect(outputs).toContain('model.embed_tokens.weight');
    expect(outputs).toContain('adam.m.model.embed_tokens.weight');
    expect(readdirSync(join(tmp, 'a/train/wgsl')).length).toBe(m.kernels.length);

    // Kernels with the forward's WGSL reuse its constant: each distinct WGSL text is one constant.
    const forward = JSON.parse(readFileSync(join(tmp, 'a/manifest.json'), 'utf8')) as Manifest;
    const read = (sub: string) => (k: { wgsl: string }) => readFileSync(join(tmp, 'a', sub, k.wgsl), 'utf8');
    const texts = new Set([...forward.kernels.map(read('')), ...m.kernels.map(read('train'))]);
    expect(texts.size).toBeLessThan(forward.kernels.length + m.kernels.length); // some are shared
    expect(ts.match(/^const wgsl_\w+ = `/gm)?.length).toBe(texts.size);

  });

  it('without --train the module has no trainer', { timeout: 120_000 }, async () => {
    const r = await tfc('compile', 'examples/charlm/charlm.tfx', '--emit', 'host');
    expect(r.code).toBe(0);
    expect(r.out).not.toMatch(/createTrainer|trainPlan|LoadedTrainer/);
  });

  it('refuses what it cannot train: --dtype, --grad, CUDA, a model without logits', async () => {
    const cases: [string[], RegExp][] = [
      [['examples/charlm/charlm.tfx', '--dtype', 'f16'], /--train trains f32 weights \(not --dtype f16\)/],
      [['examples/charlm/charlm.tfx', '--grad'], /--train and --grad/],
      [['examples/charlm/charlm.tfx', '--target', 'cuda'], /--train compiles a WebGPU training step \(not --target cuda\)/],
      [['examples/variants/attention-lse.tfx'], /--train needs an output named 'logits'/],
    ];
    for (const [args, message] of cases) {
      const r = await tfc('compile', ...args, '--train', '--emit', 'host');
      expect(r.err, args.join(' ')).toMatch(message);
      expect(r.code, args.join(' ')).toBe(2);
    }
  });
});
