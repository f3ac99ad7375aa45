// `tfc train --target cuda-emu`: the training-step plan's CUDA kernels (fused for the CUDA
// pipeline) built with g++ against cuda_emu.h, one launcher run per step, state on the host; the
// losses of every step within 1e-4 relative of `--target interp` (float64) on the same weights and
// windows. A small charlm (1 layer, d 32) keeps the emulator's per-step cost in seconds.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';

const text = 'This License applies to any program or other work which contains a notice placed by the copyright holder.\n'.repeat(20);

async function train(target: string, dir: string): Promise<number[]> {
  const out = join(dir, target);
  let err = '';
  const code = await main(
    ['train', 'examples/charlm/charlm.tfx', '--set', 'layers=1,d=32,ffn=64', '--data', join(dir, 'data.txt'), '--vocab', 'examples/charlm/vocab.json', '--steps', '3', '--batch', '2', '--seq', '8', '--eval-every', '3', '--seed', '4', '--target', target, '--out', out],
    { out: () => undefined, err: (s) => (err += s), env: {} },
  );
  expect(code, err).toBe(0);
  return (JSON.parse(readFileSync(join(out, 'loss.json'), 'utf8')) as { train: { loss: number }[] }).train.map((p) => p.loss);
}

describe('tfc train on the CUDA emulator', () => {
  it('follows the float64 interpreter within 1e-4 per step', { timeout: 1_800_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tfc-train-emu-'));
    writeFileSync(join(dir, 'data.txt'), text);
    const [emu, ref] = [await train('cuda-emu', dir), await train('interp', dir)];
    expect(emu.length).toBe(3);
    const errs = emu.map((l, i) => Math.abs(l - (ref[i] ?? NaN)) / Math.abs(ref[i] ?? 1));
    console.log(`tfc train --target cuda-emu vs interp: max relative loss difference ${Math.max(...errs).toExponential(2)} over 3 steps`);
    errs.forEach((e, i) => expect(e, `step ${i + 1}: ${emu[i]} vs ${ref[i]}`).toBeLessThanOrEqual(1e-4));
    expect(Math.abs((ref[2] ?? 0) - (ref[0] ?? 0))).toBeGreaterThan(1e-3); // the updates changed the loss
  });
});
