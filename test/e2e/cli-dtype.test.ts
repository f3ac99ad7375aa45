// `--dtype f16|bf16` through the CLI (issue 15 item 4): `tfc compile --emit ir` shows the
// retyped graph, `tfc run --dtype f16` narrows an f32 weights/inputs file at load and matches
// the f32 model on the float64 interpreter within the f16 bar, and a value f16 cannot hold is
// refused before anything runs (TFC315, exit 1, naming the tensor, its file and the value).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readSafetensors, writeSafetensors } from '../../src/io/safetensors.js';
import { tfc } from '../helpers/cli.js';
import { maxRelToScale } from '../helpers/tensors.js';

const dir = mkdtempSync(join(tmpdir(), 'tfc-cli-dtype-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const gpt2 = 'examples/gpt2.tfx';
const set = 'layers=2,d=64,heads=4,vocab=256,ctx=64';

function tensors(path: string) {
  return readSafetensors(new Uint8Array(readFileSync(path)), path).tensors;
}

describe('tfc --dtype', () => {
  it('compile --emit ir --dtype f16 retypes every f32 and keeps i32', async () => {
    const r = await tfc('compile', gpt2, '--set', set, '--emit', 'ir', '--dtype', 'f16');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/input \{name="tokens"\} : i32\[B,T\]/);
    expect(r.stdout).toMatch(/weight \{name="wte.weight"\} : f16\[256,64\]/);
    expect(r.stdout).toMatch(/output "logits"/);
    expect(r.stdout).not.toMatch(/f32/);
    // As written (no --dtype, or --dtype f32) the graph stays f32.
    const f32 = await tfc('compile', gpt2, '--set', set, '--emit', 'ir', '--dtype', 'f32');
    expect(f32.stdout).toMatch(/weight \{name="wte.weight"\} : f32\[256,64\]/);
    expect((await tfc('compile', gpt2, '--set', set, '--emit', 'ir', '--dtype', 'f8')).code).toBe(2);
  });

  it('run --dtype f16 on WebGPU narrows the f32 files at load; logits within 2e-3 of the f32 model in float64', { timeout: 600_000 }, async () => {
    const w = join(dir, 'w.safetensors');
    const i = join(dir, 'in.safetensors');
    expect((await tfc('init-weights', gpt2, '--set', set, '--seed', '5', '--out', w)).code).toBe(0);
    expect((await tfc('random-inputs', gpt2, '--set', set, '--set', 'B=2,T=11', '--seed', '6', '--out', i)).code).toBe(0);
    const ref = join(dir, 'interp.safetensors');
    const got = join(dir, 'f16.safetensors');
    expect((await tfc('run', gpt2, '--set', set, '--weights', w, '--inputs', i, '--out', ref, '--target', 'interp')).code).toBe(0);
    const r = await tfc('run', gpt2, '--set', set, '--weights', w, '--inputs', i, '--out', got, '--target', 'webgpu', '--dtype', 'f16');
    expect(r.stderr).toMatch(/on webgpu \(.*peak GPU memory [0-9.]+ MiB\)/);
    expect(r.code).toBe(0);
    const want = tensors(ref).get('logits');
    const have = tensors(got).get('logits');
    if (want === undefined || have === undefined) throw new Error('no logits');
    expect(have.shape).toEqual(want.shape);
    // One f16 rounding per weight and stored activation (<= 2^-11 each), f32 accumulation: the bar
    // of test/webgpu/f16-models.test.ts.
    const e = maxRelToScale(have.data, want);
    console.log(`tfc run --dtype f16 gpt2 tiny: max|diff| / max|want| = ${e.toExponential(2)}`);
    expect(e).toBeLessThanOrEqual(2e-3);
    expect(e).toBeGreaterThan(0); // it did run in f16
  });

  it('refuses an f32 input value past f16 range (TFC315 at the declaration, exit 1, nothing written)', async () => {
    const src = 'dims T\ninput x: f32[T]\noutput y: f32[T]\nmodel m {\n  y = x * 2.0\n}\n';
    const file = join(dir, 'm.tfx');
    writeFileSync(file, src);
    const i = join(dir, 'big.safetensors');
    writeFileSync(i, writeSafetensors(new Map([['x', { dtype: 'f32', shape: [3], data: Float64Array.from([1, 70000, 3]) }]])));
    const out = join(dir, 'never.safetensors');
    const r = await tfc('run', file, '--inputs', i, '--out', out, '--target', 'interp', '--dtype', 'f16');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${file}:2:1: error[TFC315]: input "x" in ${i} is F32, and its value 70000 at flat index 1 is beyond f16's range (the model declares f16[T]): it would load as infinity`);
    expect(() => readFileSync(out)).toThrow();
    // bf16 keeps f32's exponent range: the same file runs, its values rounded to bf16 at load
    // (8 significant bits: 70000 = 136.7 * 512 rounds to 137 * 512 = 70144).
    expect((await tfc('run', file, '--inputs', i, '--out', out, '--target', 'interp', '--dtype', 'bf16')).code).toBe(0);
    expect([...(tensors(out).get('y')?.data ?? [])]).toEqual([2, 140288, 6]);
  });
});
