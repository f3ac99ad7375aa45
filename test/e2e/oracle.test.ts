// Whole models against PyTorch: each test runs a test/oracle/ script (seeded f32 weights, float64
// torch math), then the example through checkSource + the float64 interpreter, and compares.
// Tolerance, everywhere: max |tfc - torch| / max |torch| <= 1e-6 over each output tensor (the
// issue's bar). Both sides compute in float64 from identical f32 weights, so the measured error
// is ~1e-14; anything near 1e-6 would already mean a wrong op, not rounding.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkSource } from '../../src/check/check-source.js';
import type { Graph } from '../../src/graph/ir.js';
import { interpret } from '../../src/interp/interpret.js';
import type { Tensor64 } from '../../src/base/tensor.js';
import { readOracle, readTensors, relError, runOracle, torchMissingReason } from '../oracle/oracle.js';

const TOLERANCE = 1e-6;
const missing = torchMissingReason();
if (missing !== undefined) console.warn(`PyTorch oracle tests skipped: ${missing}`);
const noTorch = missing !== undefined;

function compile(example: string, overrides: Record<string, number>): Graph {
  const file = join('examples', example);
  const { graph, diagnostics } = checkSource(readFileSync(file, 'utf8'), file, new Map(Object.entries(overrides)));
  expect(diagnostics.map((d) => d.message)).toEqual([]);
  if (graph === undefined) throw new Error(`${file}: no graph`);
  return graph;
}

/** Compares every expected tensor with the interpreter's output of the same name. */
function expectMatches(outputs: ReadonlyMap<string, Tensor64>, expected: ReadonlyMap<string, Tensor64>, what: string): void {
  expect(expected.size).toBeGreaterThan(0);
  for (const [name, want] of expected) {
    const got = outputs.get(name);
    expect(got, `${what}: output ${name}`).toBeDefined();
    if (got === undefined) continue;
    expect(got.shape, `${what}: shape of ${name}`).toEqual(want.shape);
    const err = relError(got, want);
    console.log(`${what} ${name}: max|tfc - torch| / max|torch| = ${err.toExponential(2)}`);
    expect(err, `${what}: ${name}`).toBeLessThanOrEqual(TOLERANCE);
  }
}

/** The present_* outputs of one step, renamed present.* -> past.*, as the next step's cache. */
function cacheFrom(outputs: ReadonlyMap<string, Tensor64>): Map<string, Tensor64> {
  const past = new Map<string, Tensor64>();
  for (const [name, t] of outputs) if (name.startsWith('present.')) past.set(`past.${name.slice('present.'.length)}`, t);
  return past;
}

/** Prefill with an empty cache, then one decode step fed with the interpreter's own present. */
function checkPrefillAndDecode(example: string, script: string, args: string[], overrides: Record<string, number>): void {
  const dir = runOracle(script, args);
  const graph = compile(example, overrides);
  const prefill = readOracle(dir);
  const first = interpret(graph, { inputs: prefill.inputs, weights: prefill.weights });
  expectMatches(first.outputs, prefill.expected, `${example} prefill`);

  const decode = readOracle(dir, 'decode_');
  const tokens = decode.inputs.get('tokens');
  if (tokens === undefined) throw new Error('decode_inputs has no tokens');
  const inputs = new Map([['tokens', tokens], ...cacheFrom(first.outputs)]);
  const second = interpret(graph, { inputs, weights: prefill.weights });
  expect(second.dims.get('P')).toBe(Number(args[args.indexOf('--seq') + 1]));
  expect(second.dims.get('T')).toBe(1);
  expectMatches(second.outputs, decode.expected, `${example} decode`);
}

describe('examples match PyTorch (float64 interpreter vs test/oracle)', () => {
  it.skipIf(noTorch)('gpt2.tfx: 2 layers, d=64, 4 heads, vocab 256, B=2, T=32', () => {
    const dir = runOracle('gpt2_oracle.py', ['--seed', '1', '--layers', '2', '--d', '64', '--heads', '4', '--vocab', '256', '--ctx', '64', '--batch', '2', '--seq', '32']);
    const { weights, inputs, expected } = readOracle(dir);
    const graph = compile('gpt2.tfx', { layers: 2, d: 64, heads: 4, vocab: 256, ctx: 64 });
    const { outputs, dims } = interpret(graph, { inputs, weights });
    expect(Object.fromEntries(dims)).toMatchObject({ B: 2, T: 32 });
    expectMatches(outputs, expected, 'gpt2.tfx');
  });

  // The path outside checks take: the built CLI, safetensors in and out (f32 outputs, so the
  // error is f32 rounding, ~6e-8 relative; still within the 1e-6 bar).
  it.skipIf(noTorch)('tfc run --target interp on gpt2.tfx writes logits that match PyTorch', () => {
    const cli = 'bin/tfc.js';
    expect(existsSync('dist/src/cli/main.js'), 'dist/ is missing: npm run build (npm test does it first)').toBe(true);
    const dir = runOracle('gpt2_oracle.py', ['--seed', '6', '--layers', '2', '--d', '64', '--heads', '4', '--vocab', '256', '--ctx', '64', '--batch', '2', '--seq', '32']);
    const out = join(dir, 'out.safetensors');
    const r = spawnSync(process.execPath, [cli, 'run', 'examples/gpt2.tfx', '--weights', join(dir, 'weights.safetensors'), '--inputs', join(dir, 'inputs.safetensors'), '--out', out, '--set', 'layers=2,d=64,heads=4,vocab=256,ctx=64', '--target', 'interp'], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expectMatches(readTensors(out), readOracle(dir).expected, 'tfc run gpt2.tfx');
  });

  it.skipIf(noTorch)('llama.tfx: GQA 8/2 heads, RoPE, SwiGLU; prefill T=13 then one decode step from the cache', () => {
    checkPrefillAndDecode(
      'llama.tfx',
      'llama_oracle.py',
      ['--seed', '2', '--layers', '2', '--d', '64', '--heads', '8', '--kv-heads', '2', '--ffn', '96', '--vocab', '256', '--theta', '10000', '--eps', '1e-6', '--batch', '2', '--seq', '13'],
      { layers: 2, d: 64, heads: 8, kv_heads: 2, ffn: 96, vocab: 256, theta: 10000, eps: 1e-6 },
    );
  });

  it.skipIf(noTorch)('transformer.tfx: encoder-decoder against torch.nn.Transformer, S=11, T=7', () => {
    const dir = runOracle('transformer_oracle.py', ['--seed', '3', '--layers', '2', '--d', '64', '--heads', '4', '--ffn', '128', '--vocab', '256', '--batch', '2', '--src', '11', '--tgt', '7']);
    const { weights, inputs, expected } = readOracle(dir);
    const graph = compile('transformer.tfx', { layers: 2, d: 64, heads: 4, ffn: 128, vocab: 256 });
    const { outputs, dims } = interpret(graph, { inputs, weights });
    expect(Object.fromEntries(dims)).toMatchObject({ B: 2, S: 11, T: 7 });
    expectMatches(outputs, expected, 'transformer.tfx');
  });

  it.skipIf(noTorch)('variants/gpt2-kv.tfx: prefill T=9 then one decode step from the cache', () => {
    checkPrefillAndDecode(
      'variants/gpt2-kv.tfx',
      'gpt2_oracle.py',
      ['--kv', '--seed', '4', '--layers', '2', '--d', '64', '--heads', '4', '--vocab', '256', '--ctx', '64', '--batch', '2', '--seq', '9'],
      { layers: 2, d: 64, heads: 4, vocab: 256, ctx: 64 },
    );
  });

  // Int8 KV cache: prefill, then three decode steps each fed the interpreter's own present (i8
  // values, and scales rounded to f32 as a device stores them and the oracle passes them on). The
  // i8 values are compared like any output (an exact integer match is 0; one rounding step apart
  // would be ~1/127). The oracle's meta.json says what the quantization costs against the f32
  // cache (test/webgpu/kv-int8.test.ts reports it).
  it.skipIf(noTorch)('variants/gpt2-kv-int8.tfx: prefill T=8 then three decode steps from the int8 cache', () => {
    const dir = runOracle('kv_int8_oracle.py', ['--seed', '0', '--layers', '2', '--d', '64', '--heads', '4', '--vocab', '256', '--ctx', '64', '--batch', '2', '--seq', '8', '--steps', '3']);
    const graph = compile('variants/gpt2-kv-int8.tfx', { layers: 2, d: 64, heads: 4, vocab: 256, ctx: 64 });
    const prefill = readOracle(dir);
    let run = interpret(graph, { inputs: prefill.inputs, weights: prefill.weights });
    expectMatches(run.outputs, prefill.expected, 'gpt2-kv-int8 prefill');
    for (let i = 0; i < 3; i++) {
      const step = readOracle(dir, `decode${i}_`);
      const tokens = step.inputs.get('tokens');
      if (tokens === undefined) throw new Error('no tokens');
      const past = [...cacheFrom(run.outputs)].map(([n, t]): [string, Tensor64] => [n, n.endsWith('_scale') ? { ...t, data: t.data.map(Math.fround) } : t]);
      run = interpret(graph, { inputs: new Map([['tokens', tokens], ...past]), weights: prefill.weights });
      expect(Object.fromEntries(run.dims)).toMatchObject({ B: 2, T: 1, P: 8 + i });
      expect(run.outputs.get('present.1.key')?.dtype).toBe('i8');
      expectMatches(run.outputs, step.expected, `gpt2-kv-int8 decode ${i}`);
    }
  });

  // Continuous batching: rows with 5, 0 (a sequence that just joined) and 11 cached tokens, noise
  // in the free slots; one token and two (a drafted pair, as speculative verification feeds) each.
  for (const T of [1, 2]) {
    it.skipIf(noTorch)(`variants/gpt2-batched.tfx: sequences of lengths 5, 0, 11 in one call, T=${T} new tokens each, S=16 slots`, () => {
      const dir = runOracle('batched_oracle.py', ['--seed', '6', '--layers', '2', '--d', '64', '--heads', '4', '--vocab', '256', '--ctx', '64', '--lengths', '5,0,11', '--new', String(T), '--slots', '16']);
      const { weights, inputs, expected } = readOracle(dir);
      const graph = compile('variants/gpt2-batched.tfx', { layers: 2, d: 64, heads: 4, vocab: 256, ctx: 64 });
      const { outputs, dims } = interpret(graph, { inputs, weights });
      expect(Object.fromEntries(dims)).toMatchObject({ B: 3, T, S: 16 });
      expectMatches(outputs, expected, 'variants/gpt2-batched.tfx');
    });
  }

  // The variants' own config defaults are small; the oracle builds the same sizes.
  const variants = ['alibi', 'sliding-window', 'softcap', 'prefix-lm', 'document-mask', 'mqa', 'relative-bias', 'plain-attention', 'score-mods', 'local-global', 'sinks', 'streaming'];
  it.skipIf(noTorch).each(variants)('variants/%s.tfx at its default config, B=2, T=19', (variant) => {
    const dir = runOracle('variants_oracle.py', ['--variant', variant, '--seed', '5', '--batch', '2', '--seq', '19']);
    const { weights, inputs, expected } = readOracle(dir);
    const graph = compile(`variants/${variant}.tfx`, {});
    const { outputs } = interpret(graph, { inputs, weights });
    expectMatches(outputs, expected, `variants/${variant}.tfx`);
  });
});
