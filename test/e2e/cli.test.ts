// The CLI contract (issue 3): exit codes 0/1/2 per command, --help, --set errors, diagnostics
// with caret lines on stderr, fmt --write, run writing outputs. Most cases call main() in
// process (fast); a few spawn `node bin/tfc.js` against dist/ to check the real binary.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { detectNvidiaGpu } from '../../src/runtime-cuda/launcher.js';
import { readSafetensors, writeSafetensors } from '../../src/io/safetensors.js';
import type { Tensor64 } from '../../src/base/tensor.js';
import { tfc } from '../helpers/cli.js';

const repo = new URL('../../', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'tfc-cli-'));
const gpt2Tiny = join(repo, 'examples/gpt2.tfx');
const gpt2TinySet = 'layers=2,d=64,heads=4,vocab=256,ctx=64';

// wte[tokens] @ transpose(wte): logits[b, t, v] = sum_j wte[tok, j] * wte[v, j]
const tiny = `# a tiny model for CLI tests
config {
  d = 4
  vocab = 8
}
dims B, T
input tokens: i32[B, T]
output logits: f32[B, T, vocab]
weight wte: f32[vocab, d] = "wte.weight"
model tiny {
  logits = wte[tokens] @ transpose(wte)
}
`;
const bad = tiny.replace('wte[tokens] @ transpose(wte)', 'wte[tokens] @ wte');

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}


function t(dtype: Tensor64['dtype'], shape: number[], values: number[]): Tensor64 {
  return { dtype, shape, data: Float64Array.from(values) };
}

const wte = Array.from({ length: 32 }, (_, i) => (i % 5) - 2 + 0.25 * Math.floor(i / 8));
let model: string;
let badModel: string;
let weights: string;
let inputs: string;

beforeAll(() => {
  model = file('tiny.tfx', tiny);
  badModel = file('bad.tfx', bad);
  weights = join(dir, 'w.safetensors');
  writeFileSync(weights, writeSafetensors(new Map([['wte.weight', t('f32', [8, 4], wte)]])));
  inputs = join(dir, 'in.safetensors');
  writeFileSync(inputs, writeSafetensors(new Map([['tokens', t('i32', [1, 3], [0, 7, 2])]])));
});

describe('tfc check', () => {
  it('exits 0 on a well-formed model', async () => {
    const r = await tfc('check', model);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  it('exits 1 with file:line:col: error[TFC###] and a caret line', async () => {
    const r = await tfc('check', badModel);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/bad\.tfx:11:\d+: error\[TFC2\d\d\]: /);
    expect(r.stderr).toMatch(/\n11 \|   logits = wte\[tokens\] @ wte\n/);
    expect(r.stderr).toMatch(/\n {3}\| +\^/);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });

  it('exits 1 for a syntax error with its location', async () => {
    const r = await tfc('check', file('syntax.tfx', 'config {\n  d = \n}\n'));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/syntax\.tfx:\d+:\d+: error\[TFC0\d\d\]/);
  });

  it('exits 2 for a missing file, in one line', async () => {
    const r = await tfc('check', join(dir, 'nope.tfx'));
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain('does not exist');
  });

  it('exits 2 for an unknown flag', async () => {
    const r = await tfc('check', model, '--frobnicate');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("unknown option '--frobnicate'");
  });

  it('exits 2 with the help on stderr when no command is given', async () => {
    const r = await tfc();
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('Usage: tfc');
  });

  it('exits 2 for an unknown command', async () => {
    expect((await tfc('frobnicate')).code).toBe(2);
  });
});

describe('--set', () => {
  it('overrides config constants', async () => {
    const r = await tfc('compile', model, '--emit', 'ir', '--no-loc', '--set', 'vocab=5,d=3');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('f32[5,3]');
  });

  it('binds dims and may be repeated', async () => {
    const r = await tfc('compile', model, '--emit', 'ir', '--no-loc', '--set', 'vocab=5', '--set', 'T=7');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('f32[B,7,5]');
  });

  it.each([['layers'], ['d=abc'], ['=3'], ['d=1,,T=2'], ['1x=2'], ['d=1,d=2']])('rejects the malformed --set %s with exit 2', async (s) => {
    const r = await tfc('check', model, '--set', s);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^tfc: error: bad --set/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('reports an unknown name as TFC305 with exit 1', async () => {
    const r = await tfc('check', model, '--set', 'nosuch=3');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('TFC305');
  });
});

describe('tfc compile', () => {
  it('--emit ast prints the AST', async () => {
    const r = await tfc('compile', model, '--emit', 'ast');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('tiny');
  });

  it('--emit ir prints the graph, which compiles again as an .ir file', async () => {
    const r = await tfc('compile', model, '--emit', 'ir');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^graph tiny\(B, ?T\)/m);
    expect(r.stdout).toContain('loc(');
    const ir = file('tiny.ir', r.stdout);
    const again = await tfc('compile', ir, '--emit', 'ir');
    expect(again.code).toBe(0);
    expect(again.stdout).toBe(r.stdout);
  });

  it('--no-loc leaves locations out', async () => {
    const r = await tfc('compile', model, '--emit', 'ir', '--no-loc');
    expect(r.stdout).not.toContain('loc(');
  });

  it('-o DIR writes DIR/model.ir, replacing an old folder', async () => {
    const out = join(dir, 'build');
    expect((await tfc('compile', model, '-o', out)).code).toBe(0);
    expect((await tfc('compile', model, '-o', out, '--set', 'vocab=5')).code).toBe(0);
    expect(readFileSync(join(out, 'model.ir'), 'utf8')).toContain('f32[5,4]');
  });

  it('--dump-after all prints the IR after each pass on stderr', async () => {
    const r = await tfc('compile', model, '--dump-after', 'all');
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('IR Dump After');
  });

  it('--dump-after an unknown pass is a usage error listing the passes', async () => {
    const r = await tfc('compile', model, '--dump-after', 'no-such-pass');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown pass');
  });

  it('--emit ir prints the graph before fusion, --emit fused after it', async () => {
    const ir = await tfc('compile', gpt2Tiny, '--emit', 'ir', '--no-loc', '--set', gpt2TinySet);
    const fused = await tfc('compile', gpt2Tiny, '--emit', 'fused', '--no-loc', '--set', gpt2TinySet);
    expect([ir.code, fused.code]).toEqual([0, 0]);
    expect(ir.stdout).toContain(' = softmax ');
    expect(ir.stdout).not.toContain('fused_attention');
    // One fused attention per layer; the softmax is gone.
    expect(fused.stdout.match(/ = fused_attention /g)?.length).toBe(2);
    expect(fused.stdout).not.toContain(' = softmax ');
  });

  it('--emit host prints the typed TypeScript module', async () => {
    const r = await tfc('compile', gpt2Tiny, '--emit', 'host', '--set', gpt2TinySet);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/export (async )?function createModel/);
  });

  it('rejects an unknown --emit stage with exit 2', async () => {
    expect((await tfc('compile', model, '--emit', 'nonsense')).code).toBe(2);
  });

  it('exits 1 on a model error', async () => {
    expect((await tfc('compile', badModel, '--emit', 'ir')).code).toBe(1);
  });
});

describe('tfc run', () => {
  it('runs the interpreter and writes f32 outputs', async () => {
    const out = join(dir, 'out.safetensors');
    const r = await tfc('run', model, '--weights', weights, '--inputs', inputs, '--out', out);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/^tfc run: .*logits f32\[1,3,8\]/);
    const logits = readSafetensors(new Uint8Array(readFileSync(out)), out).tensors.get('logits');
    expect(logits?.dtype).toBe('f32');
    expect(logits?.shape).toEqual([1, 3, 8]);
    // logits[0, 1, 3] = wte[7] . wte[3], computed by hand from the table
    const row = (i: number): number[] => wte.slice(4 * i, 4 * i + 4);
    const dot = row(7).reduce((s, x, j) => s + x * (row(3)[j] ?? 0), 0);
    expect(logits?.data[8 + 3]).toBeCloseTo(dot, 5);
  });

  it('exits 1 with TFC302 when a weight is missing, and writes nothing', async () => {
    const empty = join(dir, 'empty.safetensors');
    writeFileSync(empty, writeSafetensors(new Map()));
    const out = join(dir, 'never.safetensors');
    const r = await tfc('run', model, '--weights', empty, '--inputs', inputs, '--out', out);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('error[TFC302]');
    expect(r.stderr).toContain('"wte.weight"');
    expect(existsSync(out)).toBe(false);
  });

  it('exits 1 with TFC303 on a wrong shape', async () => {
    const w = join(dir, 'w-bad.safetensors');
    writeFileSync(w, writeSafetensors(new Map([['wte.weight', t('f32', [8, 5], new Array<number>(40).fill(0))]])));
    const r = await tfc('run', model, '--weights', w, '--inputs', inputs, '--out', join(dir, 'o.safetensors'));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('error[TFC303]');
  });

  it('exits 1 with TFC301 naming the file on a malformed file', async () => {
    const w = file('garbage.safetensors', 'abc');
    const r = await tfc('run', model, '--weights', w, '--inputs', inputs, '--out', join(dir, 'o.safetensors'));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/garbage\.safetensors: error\[TFC301\]/);
  });

  it('exits 2 when a data file does not exist or a required flag is missing', async () => {
    expect((await tfc('run', model, '--weights', join(dir, 'none'), '--inputs', inputs, '--out', join(dir, 'o'))).code).toBe(2);
    expect((await tfc('run', model, '--inputs', inputs, '--out', join(dir, 'o'))).code).toBe(2);
  });

  it.runIf(detectNvidiaGpu() === undefined)('--target cuda without an NVIDIA GPU is a usage error (exit 2)', async () => {
    const r = await tfc('run', model, '--weights', weights, '--inputs', inputs, '--out', join(dir, 'o'), '--target', 'cuda');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('no NVIDIA GPU');
  });

  it('runs with seeded weights and inputs from init-weights and random-inputs', async () => {
    const w = join(dir, 'seeded-w.safetensors');
    const i = join(dir, 'seeded-in.safetensors');
    expect((await tfc('init-weights', model, '--seed', '3', '--out', w)).code).toBe(0);
    expect((await tfc('random-inputs', model, '--seed', '4', '--set', 'B=2,T=5', '--out', i)).code).toBe(0);
    const toks = readSafetensors(new Uint8Array(readFileSync(i)), i).tensors.get('tokens');
    expect(toks?.shape).toEqual([2, 5]);
    expect(Array.from(toks?.data ?? []).every((x) => Number.isInteger(x) && x >= 0 && x < 8)).toBe(true);
    const r = await tfc('run', model, '--weights', w, '--inputs', i, '--out', join(dir, 'seeded-out.safetensors'));
    expect(r.code).toBe(0);
    // deterministic: the same seed gives the same bytes
    const w2 = join(dir, 'seeded-w2.safetensors');
    await tfc('init-weights', model, '--seed', '3', '--out', w2);
    expect(readFileSync(w2)).toEqual(readFileSync(w));
  });

  it('random-inputs without the dims bound is TFC306 (exit 1)', async () => {
    // A [B, T, T] mask input: each unbound dim must be suggested once.
    const masked = file('masked.tfx', tiny.replace('input tokens: i32[B, T]', 'input tokens: i32[B, T]\ninput mask: f32[B, T, T]').replace('@ transpose(wte)', '@ transpose(wte) + sum(mask, axis=-1, keepdims=true)'));
    const r = await tfc('random-inputs', masked, '--out', join(dir, 'x.safetensors'));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('TFC306');
    // The suggested --set names each unbound dim once (it used to repeat T for [B, T, T]).
    for (const m of r.stderr.matchAll(/--set ([A-Za-z_0-9=,]+)\)/g)) {
      const names = (m[1] ?? '').split(',').map((kv) => kv.split('=')[0]);
      expect(names.length).toBeGreaterThan(0);
      expect(new Set(names).size).toBe(names.length);
    }
    expect(r.stderr).toMatch(/--set [A-Za-z_0-9=,]+\)/);
  });
});

describe('tfc fmt', () => {
  it('prints the canonical form, which is a fixed point', async () => {
    const r = await tfc('fmt', model);
    expect(r.code).toBe(0);
    const again = await tfc('fmt', file('formatted.tfx', r.stdout));
    expect(again.stdout).toBe(r.stdout);
  });

  it('--write rewrites the file in place', async () => {
    const messy = file('messy.tfx', tiny.replace('  d = 4', 'd=4').replace('model tiny {', 'model   tiny{'));
    const canonical = (await tfc('fmt', messy)).stdout;
    const r = await tfc('fmt', messy, '--write');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('');
    expect(readFileSync(messy, 'utf8')).toBe(canonical);
  });

  it('exits 1 on a syntax error', async () => {
    expect((await tfc('fmt', file('broken.tfx', 'model {'))).code).toBe(1);
  });
});

describe('help and debug', () => {
  it('tfc --help lists every command and the debug table', async () => {
    const r = await tfc('--help');
    expect(r.code).toBe(0);
    for (const cmd of ['check', 'compile', 'run', 'fmt', 'init-weights', 'random-inputs', 'explain']) expect(r.stdout).toContain(cmd);
    expect(r.stdout).toContain('TFC_DEBUG');
  });

  it('tfc compile --help lists the options and the pass names', async () => {
    const r = await tfc('compile', '--help');
    expect(r.code).toBe(0);
    for (const opt of ['--emit', '--dump-after', '--set', '--no-loc', '-o']) expect(r.stdout).toContain(opt);
    expect(r.stdout).toContain('fold-constants');
  });

  it('tfc run --help lists its options', async () => {
    const r = await tfc('run', '--help');
    for (const opt of ['--weights', '--inputs', '--out', '--target', '--set']) expect(r.stdout).toContain(opt);
  });

  it('--debug 2 prints the time per pass', async () => {
    const r = await tfc('--debug', '2', 'compile', model);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/pass fold-constants +\d+\.\d+ ms/);
  });

  it('a bad debug level is a usage error', async () => {
    expect((await tfc('--debug', 'x', 'check', model)).code).toBe(2);
  });

  it('tfc explain prints one code', async () => {
    const r = await tfc('explain', 'TFC301');
    expect(r.stdout).toBe('TFC301: malformed safetensors file\n');
  });
});

describe('the bin/tfc.js binary', () => {
  const bin = join(repo, 'bin', 'tfc.js');
  const run = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', cwd: repo });

  beforeAll(() => {
    // `npm test` builds dist/ before vitest; when vitest runs alone, build it here.
    if (!existsSync(join(repo, 'dist', 'src', 'cli', 'main.js'))) {
      spawnSync(process.execPath, [join(repo, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], { cwd: repo });
    }
  });

  it('exits 0, 1 and 2 as the contract says', () => {
    expect(run('check', model).status).toBe(0);
    const bad1 = run('check', badModel);
    expect(bad1.status).toBe(1);
    expect(bad1.stderr).toMatch(/error\[TFC\d{3}\]/);
    expect(run('check', model, '--bogus').status).toBe(2);
    const help = run('--help');
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('Usage: tfc');
  });
});

describe('tfc compile --report follows --limits', () => {
  // One attention at T=1024, dh=64: lavapipe's limits give the broadcast prefill (32-row tiles,
  // K/V requested once per tile: a CPU's caches serve the re-reads, and the traffic-minimal
  // 1024-row schedule was no faster there); WebGPU's default limits (no subgroups, 16 KiB) give
  // other tiles, so the two reports differ.
  const attention = `config {
  heads = 2
  dh = 64
}
dims B, T
input q: f32[B, heads, T, dh]
input k: f32[B, heads, T, dh]
input v: f32[B, heads, T, dh]
output o: f32[B, heads, T, dh]
model attn {
  o = softmax(q @ transpose(k) * 0.125, axis=-1) @ v
}
`;
  it('reports the kernels compile would write for each --limits, and names them', async () => {
    const f = file('attn-report.tfx', attention);
    const figures = async (limits: string): Promise<{ limits: string; fused: number; bound: number }> => {
      const r = await tfc('compile', f, '--report', '--json', '--limits', limits, '--set', 'B=1,T=1024');
      expect(r.code).toBe(0);
      const j = JSON.parse(r.stdout) as { limits: string; total: { bytesRead: number; bytesWritten: number }; lowerBound: { bytesRead: number; bytesWritten: number } };
      return { limits: j.limits, fused: j.total.bytesRead + j.total.bytesWritten, bound: j.lowerBound.bytesRead + j.lowerBound.bytesWritten };
    };
    const cpu = await figures('lavapipe');
    const gpu = await figures('default');
    expect(cpu.limits).toBe('lavapipe');
    expect(gpu.limits).toBe('webgpu-default');
    // Lower bound: q, k, v read once and o written once, f32.
    expect(cpu.bound).toBe(4 * 4 * 2 * 1024 * 64);
    expect(gpu.bound).toBe(cpu.bound);
    // Q read and O written once, K and V once per 32-row tile (2 heads x 32 tiles x 1024 keys x (64 + 64) x 4 B).
    expect(cpu.fused).toBe(2 * 4 * 2 * 1024 * 64 + 4 * 2 * 32 * 1024 * 128);
    expect(gpu.fused).toBeGreaterThan(2 * gpu.bound);
    expect(gpu.fused).not.toBe(cpu.fused);
    const text = await tfc('compile', f, '--report', '--limits', 'lavapipe', '--set', 'B=1,T=1024');
    expect(text.stdout).toContain('kernels for lavapipe');
    // Dims bound by --set are constants in the graph: the header still says what they were.
    expect(text.stdout.split('\n')[0]).toContain('--set B=1,T=1024');
  });
});
