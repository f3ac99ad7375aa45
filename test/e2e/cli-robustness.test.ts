// CLI robustness (issue 9): usage mistakes (unknown flags, unreadable or missing files, outputs
// that cannot be written) exit 2 with one line; data mistakes (malformed safetensors, token ids
// past the vocabulary, sequences past the context, empty sequences) exit 1 naming the file and
// tensor, before anything runs, on the interpreter and on WebGPU; outputs are written atomically.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { hasWebGpu } from '../../src/cli/webgpu.js';
import { writeSafetensors } from '../../src/io/safetensors.js';
import type { Tensor64 } from '../../src/base/tensor.js';
import { tinyLm } from '../helpers/tiny-lm.js';
import { tfc } from '../helpers/cli.js';

process.env['XDG_RUNTIME_DIR'] ??= '/tmp';
const dir = mkdtempSync(join(tmpdir(), 'tfc-robust-'));

// ctx = 4: ids index 8 rows of wte, positions 4 rows of wpe.
const tiny = tinyLm(4);

function file(name: string, data: string | Uint8Array): string {
  const p = join(dir, name);
  writeFileSync(p, data);
  return p;
}


const t = (dtype: Tensor64['dtype'], shape: number[], values: number[]): Tensor64 => ({ dtype, shape, data: Float64Array.from(values) });
const ramp = (n: number): number[] => Array.from({ length: n }, (_, i) => ((i * 7) % 11) / 11 - 0.5);

let model: string;
let weights: string;
let targets: string[] = ['interp'];

beforeAll(async () => {
  model = file('tiny.tfx', tiny);
  weights = file('w.safetensors', writeSafetensors(new Map([['wte.weight', t('f32', [8, 4], ramp(32))], ['wpe.weight', t('f32', [4, 4], ramp(16))]])));
  const gpu = await hasWebGpu();
  if (gpu.ok) targets = ['interp', 'webgpu'];
  else console.warn(`cli-robustness: WebGPU cases run on interp only: ${gpu.reason}`);
});

const oneLine = (s: string): void => expect(s.trim().split('\n'), s).toHaveLength(1);

describe('usage mistakes exit 2 with one line', () => {
  const unknownFlags = [['check', '--frobnicate'], ['compile', '--emit=ir', '--target', 'interp', '--bogus'], ['run', '-z'], ['--no-such-global'], ['check', '--set']];
  it.each(unknownFlags)('tfc %s ... (unknown or incomplete flag)', async (...argv) => {
    const r = await tfc(...argv.map((a) => (a === 'check' || a === 'run' || a === 'compile' ? a : a)), ...(argv[0] === 'check' || argv[0] === 'compile' || argv[0] === 'run' ? [model] : []));
    expect(r.code).toBe(2);
    oneLine(r.stderr);
  });

  it('a model path that is a directory, or under a missing directory', async () => {
    for (const p of [dir, join(dir, 'no', 'such', 'dir', 'm.tfx'), join(model, 'inside-a-file.tfx')]) {
      const r = await tfc('check', p);
      expect(r.code, p).toBe(2);
      oneLine(r.stderr);
      expect(r.stderr).toContain(p);
    }
  });

  it('a weights or inputs path that is a directory or missing', async () => {
    const inputs = file('in-ok.safetensors', writeSafetensors(new Map([['tokens', t('i32', [1, 2], [1, 2])]])));
    for (const [w, i] of [[dir, inputs], [weights, join(dir, 'missing.safetensors')]] as const) {
      const out = join(dir, 'never.safetensors');
      const r = await tfc('run', model, '--target', 'interp', '--weights', w, '--inputs', i, '--out', out);
      expect(r.code).toBe(2);
      oneLine(r.stderr);
      expect(existsSync(out)).toBe(false);
    }
  });

  it('-o under a regular file cannot be written: exit 2, one line, nothing left behind', async () => {
    const blocker = file('blocker', 'a regular file');
    const r = await tfc('compile', model, '-o', join(blocker, 'out'));
    expect(r.code).toBe(2);
    oneLine(r.stderr);
    expect(r.stderr).toContain(join(blocker, 'out'));
    expect(readFileSync(blocker, 'utf8')).toBe('a regular file');
  });

  it('-o naming an existing regular file: the rename fails, the file is untouched, no temp folder is left', async () => {
    const sub = join(dir, 'atomic-dir');
    mkdirSync(sub, { recursive: true });
    const target = join(sub, 'out');
    writeFileSync(target, 'precious');
    const r = await tfc('compile', model, '-o', target);
    expect(r.code).toBe(2);
    oneLine(r.stderr);
    expect(readFileSync(target, 'utf8')).toBe('precious');
    expect(readdirSync(sub)).toEqual(['out']);
  });

  it('run --out naming an existing directory: exit 2, the directory is untouched, no temp file', async () => {
    const sub = join(dir, 'atomic-file');
    const target = join(sub, 'out.safetensors');
    mkdirSync(target, { recursive: true });
    writeFileSync(join(target, 'keep'), 'x');
    const inputs = file('in-ok2.safetensors', writeSafetensors(new Map([['tokens', t('i32', [1, 2], [1, 2])]])));
    const r = await tfc('run', model, '--target', 'interp', '--weights', weights, '--inputs', inputs, '--out', target);
    expect(r.code).toBe(2);
    oneLine(r.stderr);
    expect(readdirSync(sub)).toEqual(['out.safetensors']);
    expect(readdirSync(target)).toEqual(['keep']);
  });
});

describe('data mistakes exit 1 before anything runs, naming the file and the tensor', () => {
  const cases: [string, Tensor64, string[]][] = [
    ['a token id past the vocabulary', t('i32', [1, 3], [1, 8, 2]), ['TFC309', 'tokens', 'element 1 is 8', 'outside [0, 8)', 'wte.weight']],
    ['a negative token id', t('i32', [1, 2], [-1, 2]), ['TFC309', 'tokens', 'element 0 is -1', 'wte.weight']],
    ['a sequence longer than the context (T = 5, ctx = 4)', t('i32', [1, 5], [1, 2, 3, 4, 5]), ['TFC309', 'wpe.weight', 'T=5', 'longer than the context of 4']],
    ['an empty sequence (T = 0)', t('i32', [1, 0], []), ['TFC309', 'tokens', 'empty']],
    ['token ids as f32', t('f32', [1, 2], [1, 2]), ['TFC303', 'tokens', 'dtype']],
    ['token ids of the wrong rank', t('i32', [2], [1, 2]), ['TFC303', 'tokens', 'rank']],
  ];
  it.each(cases)('%s', async (name, tokens, expected) => {
    const inputs = file(`in-${name.replace(/\W+/g, '-')}.safetensors`, writeSafetensors(new Map([['tokens', tokens]])));
    for (const target of targets) {
      const out = join(dir, `out-${target}-${name.replace(/\W+/g, '-')}.safetensors`);
      const r = await tfc('run', model, '--target', target, '--weights', weights, '--inputs', inputs, '--out', out);
      expect(r.code, `${target}: ${r.stderr}`).toBe(1);
      for (const s of expected) expect(r.stderr, target).toContain(s);
      if (!name.includes('context')) expect(r.stderr).toContain(inputs.split('/').pop());
      expect(existsSync(out), target).toBe(false);
    }
  });

  it('a malformed weights file names the file and the tensor, and nothing runs', async () => {
    const good = writeSafetensors(new Map([['wte.weight', t('f32', [8, 4], ramp(32))], ['wpe.weight', t('f32', [4, 4], ramp(16))]]));
    const headerLen = Number(new DataView(good.buffer, good.byteOffset).getBigUint64(0, true));
    const header = JSON.parse(new TextDecoder().decode(good.subarray(8, 8 + headerLen))) as Record<string, { data_offsets: number[] }>;
    const wpe = header['wpe.weight'];
    if (wpe === undefined) throw new Error('test setup: no wpe.weight');
    wpe.data_offsets = [wpe.data_offsets[0] ?? 0, (wpe.data_offsets[1] ?? 0) + 4096];
    const text = new TextEncoder().encode(JSON.stringify(header).padEnd(Math.ceil((JSON.stringify(header).length) / 8) * 8, ' '));
    const bytes = new Uint8Array(8 + text.length + good.length - 8 - headerLen);
    new DataView(bytes.buffer).setBigUint64(0, BigInt(text.length), true);
    bytes.set(text, 8);
    bytes.set(good.subarray(8 + headerLen), 8 + text.length);
    const bad = file('bad-offsets.safetensors', bytes);
    const inputs = file('in-bad-w.safetensors', writeSafetensors(new Map([['tokens', t('i32', [1, 2], [1, 2])]])));
    const truncated = file('truncated.safetensors', good.subarray(0, good.length - 7));
    for (const w of [bad, truncated]) {
      const out = join(dir, 'out-bad-w.safetensors');
      const r = await tfc('run', model, '--target', 'interp', '--weights', w, '--inputs', inputs, '--out', out);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('TFC301');
      expect(r.stderr).toContain(w);
      expect(r.stderr).toMatch(/tensor "w[pt]e\.weight"/);
      expect(existsSync(out)).toBe(false);
    }
  });

  it('NaN and infinity in a weight warn (TFC308) and the run goes on', async () => {
    const w = file('nan-w.safetensors', writeSafetensors(new Map([['wte.weight', t('f32', [8, 4], ramp(32))], ['wpe.weight', t('f32', [4, 4], [NaN, Infinity, ...ramp(14)])]])));
    const inputs = file('in-nan.safetensors', writeSafetensors(new Map([['tokens', t('i32', [1, 2], [1, 2])]])));
    const out = join(dir, 'out-nan.safetensors');
    const r = await tfc('run', model, '--target', 'interp', '--weights', w, '--inputs', inputs, '--out', out);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('warning[TFC308]');
    expect(r.stderr).toContain('"wpe.weight"');
    expect(r.stderr).toContain('2 NaN or infinite values');
  });

  it('a sequence exactly at the context and ids at the last row run', async () => {
    const inputs = file('in-edge.safetensors', writeSafetensors(new Map([['tokens', t('i32', [1, 4], [7, 0, 7, 3])]])));
    for (const target of targets) {
      const out = join(dir, `out-edge-${target}.safetensors`);
      const r = await tfc('run', model, '--target', target, '--weights', weights, '--inputs', inputs, '--out', out);
      expect(r.code, r.stderr).toBe(0);
      expect(existsSync(out)).toBe(true);
    }
  });
});

describe('determinism of runs', () => {
  it('running GPT-2 (tiny) twice on the same adapter gives bit-identical outputs, T = 1 included', async () => {
    const set = ['--set', 'vocab=64,ctx=16,d=16,heads=2,layers=1'];
    const w = join(dir, 'gpt2-w.safetensors');
    expect((await tfc('init-weights', 'examples/gpt2.tfx', '--out', w, '--seed', '7', ...set)).code).toBe(0);
    for (const T of [1, 9]) {
      const i = join(dir, `gpt2-in-${T}.safetensors`);
      expect((await tfc('random-inputs', 'examples/gpt2.tfx', '--out', i, '--seed', '3', ...set, '--set', `B=1,T=${T}`)).code).toBe(0);
      for (const target of targets) {
        const outs = [0, 1].map((k) => join(dir, `gpt2-out-${target}-${T}-${k}.safetensors`));
        for (const out of outs) {
          const r = await tfc('run', 'examples/gpt2.tfx', '--target', target, '--weights', w, '--inputs', i, '--out', out, ...set);
          expect(r.code, r.stderr).toBe(0);
        }
        const [a, b] = outs.map((p) => readFileSync(p));
        expect(a?.equals(b ?? Buffer.alloc(0)), `${target} T=${T}`).toBe(true);
        const f32 = new Float32Array(new Uint8Array(a ?? []).slice(8 + Number(a?.readBigUInt64LE(0) ?? 0)).buffer);
        expect(f32.length).toBeGreaterThan(0);
        expect(f32.every((v) => Number.isFinite(v)), `${target} T=${T}: no NaN or infinity`).toBe(true);
      }
    }
  });
});
