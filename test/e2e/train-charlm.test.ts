// `tfc train` on charlm against PyTorch (test/oracle/train_oracle.py: examples/charlm/model.py's
// forward, F.cross_entropy, autograd, AdamW(weight_decay=0.01) + clip_grad_norm_(1.0), the same
// schedule) on the same initial weights and the same windows in the same order.
// The float64 interpreter (`--target interp`) follows PyTorch in float64 to 1e-9 per step; WebGPU
// (the fused training step, f32) follows PyTorch in float32 for 200 steps within 1e-3 per step
// (issue 17's bar), the loss curve and checkpoint are written, and `tfc run` reads the checkpoint.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkSource } from '../../src/check/check-source.js';
import { main } from '../../src/cli/main.js';
import { randomWeights } from '../../src/cli/random.js';
import { neededTensors } from '../../src/io/check-tensors.js';
import { readSafetensors, writeSafetensors } from '../../src/io/safetensors.js';
import { tokenizerFromChars } from '../../src/runtime/tokenizer.js';
import { batchOffsets, splitCorpus } from '../../src/train/data.js';

const model = 'examples/charlm/charlm.tfx';
const vocab = 'examples/charlm/vocab.json';

/** A fixed text: the start of the GPL-3 that Debian ships (tabs as spaces: charlm's vocabulary). */
function corpus(dir: string): string {
  const text = readFileSync('/usr/share/common-licenses/GPL-3', 'utf8').slice(0, 20000).replace(/\t/g, '    ');
  const f = join(dir, 'data.txt');
  writeFileSync(f, text);
  return f;
}

function initialWeights(dir: string): string {
  const r = checkSource(readFileSync(model, 'utf8'), model, new Map());
  if (r.graph === undefined) throw new Error('charlm does not check');
  const w = randomWeights(neededTensors(r.graph), 5, new Map(), []);
  const f = join(dir, 'init.safetensors');
  writeFileSync(f, writeSafetensors(w, 'f32'));
  return f;
}

interface Run {
  readonly losses: number[];
  readonly val: { step: number; loss: number }[];
}

async function tfcTrain(args: string[]): Promise<{ run: Run; err: string; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'tfc-train-'));
  let err = '';
  const code = await main(['train', model, '--out', dir, ...args], { out: () => undefined, err: (s) => (err += s), env: {} });
  expect(code, err).toBe(0);
  const doc = JSON.parse(readFileSync(join(dir, 'loss.json'), 'utf8')) as { train: { step: number; loss: number }[]; val: { step: number; loss: number }[] };
  return { run: { losses: doc.train.map((p) => p.loss), val: doc.val }, err, dir };
}

function torchLosses(weights: string, dataFile: string, o: { steps: number; batch: number; seq: number; lr: number; warmup: number; seed: number; dtype: 'float32' | 'float64' }): number[] {
  const tok = tokenizerFromChars(JSON.parse(readFileSync(vocab, 'utf8')));
  const train = splitCorpus(tok.encode(readFileSync(dataFile, 'utf8')), 0.1).train;
  const offsets = batchOffsets(o.seed, o.steps, o.batch, train.length, o.seq).map((a) => Array.from(a));
  const r = spawnSync('/usr/bin/python3', ['test/oracle/train_oracle.py'], {
    input: JSON.stringify({ weights, ids: Array.from(train), offsets, seq: o.seq, lr: o.lr, warmup: o.warmup, dtype: o.dtype }),
    encoding: 'utf8',
    maxBuffer: 64 << 20,
    env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' },
  });
  if (r.status !== 0) throw new Error(r.stderr);
  return (JSON.parse(r.stdout) as { losses: number[] }).losses;
}

describe('tfc train (charlm) against PyTorch', () => {
  it('the float64 interpreter follows PyTorch float64 to 1e-9 per step', { timeout: 600_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tfc-train-in-'));
    const data = corpus(dir);
    const init = initialWeights(dir);
    const o = { steps: 4, batch: 2, seq: 16, lr: 3e-3, warmup: 2, seed: 11, dtype: 'float64' as const };
    const { run, err } = await tfcTrain(['--data', data, '--vocab', vocab, '--weights', init, '--target', 'interp', '--steps', String(o.steps), '--batch', String(o.batch), '--seq', String(o.seq), '--lr', String(o.lr), '--warmup', String(o.warmup), '--seed', String(o.seed), '--eval-every', '4']);
    const want = torchLosses(init, data, o);
    expect(run.losses.length).toBe(o.steps);
    console.log(`tfc train --target interp vs PyTorch float64: max relative loss difference ${Math.max(...run.losses.map((l, i) => Math.abs(l - (want[i] ?? NaN)) / Math.abs(want[i] ?? 1))).toExponential(2)} over ${o.steps} steps`);
    run.losses.forEach((l, i) => expect(Math.abs(l - (want[i] ?? NaN)) / Math.abs(want[i] ?? 1), `step ${i + 1}: ${l} vs ${want[i]}`).toBeLessThanOrEqual(1e-9));
    // The updates moved the loss: step 4's differs from step 1's by more than the tolerance.
    expect(Math.abs((run.losses[3] ?? 0) - (run.losses[0] ?? 0))).toBeGreaterThan(1e-3);
    expect(err).toContain('validation loss');
  });

  it('WebGPU follows PyTorch float32 for 200 steps within 1e-3 per step; the checkpoint runs with tfc run --prompt', { timeout: 900_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tfc-train-gpu-'));
    const data = corpus(dir);
    const init = initialWeights(dir);
    const o = { steps: 200, batch: 4, seq: 32, lr: 3e-3, warmup: 30, seed: 3, dtype: 'float32' as const };
    const { run, err, dir: out } = await tfcTrain(['--data', data, '--vocab', vocab, '--weights', init, '--steps', String(o.steps), '--batch', String(o.batch), '--seq', String(o.seq), '--lr', String(o.lr), '--warmup', String(o.warmup), '--seed', String(o.seed), '--eval-every', '100']);
    const want = torchLosses(init, data, o);
    const diffs = run.losses.map((l, i) => Math.abs(l - (want[i] ?? NaN)));
    console.log(`tfc train (WebGPU) vs PyTorch float32: max |loss difference| ${Math.max(...diffs).toExponential(2)} over ${o.steps} steps; loss ${want[0]?.toFixed(3)} -> ${want[o.steps - 1]?.toFixed(3)}`);
    expect(run.losses.length).toBe(o.steps);
    diffs.forEach((d, i) => expect(d, `step ${i + 1}: ${run.losses[i]} vs ${want[i]}`).toBeLessThanOrEqual(1e-3));
    // It learned: the validation loss fell by more than a nat.
    expect((run.val[0]?.loss ?? 0) - (run.val[run.val.length - 1]?.loss ?? 0)).toBeGreaterThan(1);
    expect(err).toContain('tokens/s');
    expect(readFileSync(join(out, 'loss.svg'), 'utf8')).toContain('<polyline');
    // The output folder is a checkpoint: tfc run finds vocab.json beside the weights.
    let text = '';
    let runErr = '';
    const code = await main(['run', model, '--weights', join(out, 'model.safetensors'), '--prompt', 'the ', '--max-new-tokens', '8'], { out: (s) => (text += s), err: (s) => (runErr += s), env: {} });
    expect(code, runErr).toBe(0);
    expect(text.length).toBeGreaterThanOrEqual(8);
  });

  it('--accumulate 2 of --batch 2 equals --batch 4 (float64), and runs on WebGPU', { timeout: 600_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tfc-train-acc-'));
    const data = corpus(dir);
    const init = initialWeights(dir);
    const common = ['--data', data, '--vocab', vocab, '--weights', init, '--steps', '3', '--seq', '8', '--lr', '3e-3', '--warmup', '1', '--seed', '9', '--eval-every', '3'];
    const whole = await tfcTrain([...common, '--batch', '4', '--target', 'interp']);
    const acc = await tfcTrain([...common, '--batch', '2', '--accumulate', '2', '--target', 'interp']);
    const gpu = await tfcTrain([...common, '--batch', '2', '--accumulate', '2']);
    whole.run.losses.forEach((l, i) => {
      expect(Math.abs((acc.run.losses[i] ?? NaN) - l) / l, `step ${i + 1} accumulated`).toBeLessThanOrEqual(1e-12);
      expect(Math.abs((gpu.run.losses[i] ?? NaN) - l) / l, `step ${i + 1} WebGPU`).toBeLessThanOrEqual(1e-4);
    });
    // The same weights after three optimizer steps.
    const read = (d: string) => readSafetensors(new Uint8Array(readFileSync(join(d, 'model.safetensors'))), 'w').tensors;
    const [a, b] = [read(whole.dir), read(acc.dir)];
    for (const [name, t] of a) {
      const u = b.get(name);
      expect(u?.data.length, name).toBe(t.data.length);
      const scale = Math.max(...Array.from(t.data, Math.abs));
      expect(Math.max(...Array.from(t.data, (x, i) => Math.abs(x - (u?.data[i] ?? NaN)))) / scale, name).toBeLessThanOrEqual(1e-6);
    }
  });
});
