// Generation on the CUDA launcher in serve mode, on the CPU emulator: examples/charlm greedy-decoded
// with the KV cache kept in the launcher's device buffers, against the float64 interpreter
// recomputing the whole sequence with no cache at every step; the launcher's own byte counters
// show that decode steps copy only the token id in and the logits out; malformed requests are
// answered with an error (the session goes on) or, where the stream's framing is lost, end it.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeModel } from '../../codegen/host/model-shape.js';
import { checkSource } from '../../src/check/check-source.js';
import type { Graph } from '../../src/graph/ir.js';
import { interpret } from '../../src/interp/interpret.js';
import { makeTensor, type Tensor64 } from '../../src/base/tensor.js';
import { readSafetensors, writeSafetensors } from '../../src/io/safetensors.js';
import { compilePlan } from '../../src/compile/plan.js';
import type { Plan } from '../../src/kernel/plan/plan.js';
import { cudaLimits } from '../../src/kernel/schedule/schedule.js';
import { runPipeline } from '../../src/passes/driver.js';
import { createPassContext } from '../../src/passes/pass.js';
import { pipelines } from '../../src/passes/pipeline.js';
import { openCudaLm } from '../../src/runtime-cuda/generate.js';
import { LauncherError, buildLauncher, detectNvidiaGpu } from '../../src/runtime-cuda/launcher.js';
import { LauncherServer, ServeRequestError } from '../../src/runtime-cuda/serve.js';
import { tfc } from '../helpers/cli.js';
import { relError } from './helpers.js';

const file = 'examples/charlm/charlm.tfx';
const weightsPath = 'examples/charlm/charlm.safetensors';
const vocab = JSON.parse(readFileSync('examples/charlm/vocab.json', 'utf8')) as { chars: string[] };
const prompt = 'This License';
const promptIds = [...prompt].map((c) => vocab.chars.indexOf(c));
const newTokens = 8;
// charlm: 96 ids, 2 layers of 2 KV heads of width 16 (examples/charlm/charlm.tfx).
const V = 96;

const dir = mkdtempSync(join(tmpdir(), 'tfc-cuda-gen-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let checked: Graph;
let plan: Plan;
let weights: Map<string, Tensor64>;
beforeAll(() => {
  const r = checkSource(readFileSync(file, 'utf8'), file, new Map());
  if (r.graph === undefined) throw new Error('charlm does not check');
  checked = r.graph;
  plan = compilePlan(runPipeline(checked, pipelines.cuda, createPassContext({ target: 'cuda' })), { target: cudaLimits });
  weights = readSafetensors(new Uint8Array(readFileSync(weightsPath)), weightsPath).tensors;
});

/** float64 logits of the last position of `ids`, recomputed from scratch (no cache: P = 0). */
function referenceLogits(ids: readonly number[]): number[] {
  const inputs = new Map<string, Tensor64>([['tokens', makeTensor('i32', [1, ids.length], ids)]]);
  for (let l = 0; l < 2; l++) for (const kv of ['key', 'value']) inputs.set(`past.${l}.${kv}`, makeTensor('f32', [1, 2, 0, 16], []));
  const out = interpret(checked, { inputs, weights }).outputs.get('logits');
  if (out === undefined) throw new Error('no logits');
  return Array.from(out.data).slice(-V);
}

const argmax = (xs: ArrayLike<number>): number => {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if ((xs[i] ?? -Infinity) > (xs[best] ?? -Infinity)) best = i;
  return best;
};

/** Greedy continuation by the interpreter: `newTokens` ids and each step's logits. */
function referenceGreedy(): { tokens: number[]; logits: number[][] } {
  const ids = [...promptIds];
  const tokens: number[] = [];
  const logits: number[][] = [];
  for (let s = 0; s < newTokens; s++) {
    const row = referenceLogits(ids);
    logits.push(row);
    tokens.push(argmax(row));
    ids.push(argmax(row));
  }
  return { tokens, logits };
}

describe('generation through the serve launcher (cuda-emu)', () => {
  let want: { tokens: number[]; logits: number[][] };
  beforeAll(() => {
    want = referenceGreedy();
  });

  // The emulator always; the same program built with nvcc where a GPU is present (device sessions).
  const modes = detectNvidiaGpu() === undefined ? (['emu'] as const) : (['emu', 'nvcc'] as const);
  it.each(modes)('greedy-decodes charlm like the float64 interpreter, copying only token ids in and logits out per decode step (%s)', async (mode) => {
    const spec = { name: plan.model, ...describeModel(plan), context: 128 };
    const lm = await openCudaLm(plan, spec, weightsPath, mode);
    const got: Float32Array[] = [];
    try {
      const r = await lm.generate(promptIds, { maxNewTokens: newTokens, temperature: 0, onLogits: (l) => got.push(Float32Array.from(l)) });
      expect(r.tokens).toEqual(want.tokens);
      expect(r.decodeMs.length).toBe(newTokens - 1);
      // Every step's logits (prefill, then decode steps that read the cache kept on the device)
      // match the no-cache float64 recomputation: 1e-4 relative, f32 kernels vs float64.
      expect(got.length).toBe(newTokens);
      got.forEach((l, s) => expect(relError(l, makeTensor('f32', [V], want.logits[s] ?? [])), `step ${s}`).toBeLessThan(1e-4));
      // Bytes through tfc_memcpy_h2d/d2h (the launcher's counters), by hand:
      // prefill: 12 token ids (4 B each; the empty P = 0 cache inputs are 0 B) in, [1, 12, 96] f32 logits out;
      // decode: 1 token id in, [1, 1, 96] logits out. A cache round trip would add
      // 2 layers * 2 (k, v) * 2 heads * P * 16 * 4 B >= 3072 B at P >= 12 each way.
      expect(lm.traffic.map((t) => [t.kind, t.h2dBytes, t.d2hBytes])).toEqual([
        ['prefill', 4 * promptIds.length, 4 * promptIds.length * V],
        ...Array.from({ length: newTokens - 1 }, () => ['decode', 4, 4 * V]),
      ]);
      // Weights: every charlm tensor once, f32 (4 B per element), at start.
      const weightElements = [...weights.values()].reduce((a, t) => a + t.data.length, 0);
      expect(lm.weightBytes).toBe(4 * weightElements);
    } finally {
      await lm.close();
    }
  }, 600_000);

  it('tfc run --target cuda-emu --prompt streams the same text (same sampler and loop as webgpu)', async () => {
    const r = await tfc('run', file, '--weights', weightsPath, '--prompt', prompt, '--max-new-tokens', String(newTokens), '--temperature', '0', '--target', 'cuda-emu');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(`${prompt}${want.tokens.map((t) => vocab.chars[t]).join('')}\n`);
    expect(r.stderr).toContain('cuda-emu (CPU emulator)');
    expect(r.stderr).toContain(`each decode step at most 4 in, ${4 * V} out`);
  }, 600_000);
});

describe('serve launcher: malformed requests', () => {
  it('answers bad requests with an error and goes on; ends with exit 1 where the framing is lost', async () => {
    const exe = buildLauncher(plan, 'emu');
    const server = await LauncherServer.start(exe, weightsPath);
    const emptyPast = [0, 1].flatMap((l) => ['key', 'value'].map((kv) => ({ name: `past.${l}.${kv}`, dtype: 'F32' as const, shape: [1, 2, 0, 16], data: new Float32Array(0) })));
    const tokens = (ids: number[]) => ({ name: 'tokens', dtype: 'I32' as const, shape: [1, ids.length], data: Int32Array.from(ids) });
    const refused = async (p: Promise<unknown>): Promise<string> => {
      try {
        await p;
      } catch (e) {
        expect(e).toBeInstanceOf(ServeRequestError);
        return (e as Error).message;
      }
      throw new Error('the request was not refused');
    };
    try {
      expect(await refused(server.requestRaw('not json\n'))).toMatch(/bad request header at byte 0: expected '\{'/);
      expect(await refused(server.requestRaw('{"inputs":[],"bogus":1}\n'))).toMatch(/unknown field "bogus"/);
      // Parsed headers have their payload read (and dropped): the next request still lines up.
      expect(await refused(server.request({ inputs: [tokens([1, 2]), { ...tokens([3]), name: 'nope' }, ...emptyPast], fetch: ['logits'] }))).toMatch(/has no input nope/);
      expect(await refused(server.request({ inputs: [tokens([1, 2]), ...emptyPast.slice(1)], fetch: ['logits'] }))).toMatch(/input past.0.key is missing/);
      expect(await refused(server.request({ inputs: [tokens([1, 2]), ...emptyPast], dims: { P: 3 }, fetch: ['logits'] }))).toMatch(/past.0.key has shape \[1,2,0,16\], the dims give \[1,2,3,16\]/);
      expect(await refused(server.request({ inputs: [{ ...tokens([1]), dtype: 'F32', data: Float32Array.of(1) }, ...emptyPast] }))).toMatch(/tokens is F32, the model declares i32/);
      expect(await refused(server.request({ inputs: [tokens([1])], device: { 'past.0.key': 'present.0.key' } }))).toMatch(/no kept device tensor present.0.key/);
      expect(await refused(server.request({ inputs: [tokens([1]), ...emptyPast], keep: ['logitz'] }))).toMatch(/has no output logitz/);
      // After all that, a good prefill runs and copies exactly its inputs and outputs.
      const ok = await server.request({ inputs: [tokens([1, 2, 3]), ...emptyPast], keep: ['present.0.key'], fetch: ['logits'] });
      expect([ok.outputs.get('logits')?.shape, ok.h2dBytes, ok.d2hBytes]).toEqual([[1, 3, V], 12, 3 * V * 4]);
      // An unknown dtype leaves the payload size unknown: a fatal answer, then exit 1.
      await expect(server.requestRaw('{"inputs":[{"name":"tokens","dtype":"Q8","shape":[1,1]}]}\n', new Uint8Array(4))).rejects.toBeInstanceOf(LauncherError);
      expect(await server.close()).toBe(1);
    } finally {
      server.kill();
    }
    // EOF inside a payload: exit 1 with the reason on stderr.
    const s2 = await LauncherServer.start(exe, weightsPath);
    const pending = s2.requestRaw('{"inputs":[{"name":"tokens","dtype":"I32","shape":[1,4]}]}\n', new Uint8Array(6)).then(
      () => 'answered',
      (e: Error) => e.message,
    );
    expect(await s2.close()).toBe(1);
    expect(await pending).toMatch(/end of input inside the payload of tokens/);
  }, 600_000);
});

describe('refusals', () => {
  it('--prompt on a model without KV-cache outputs is exit 1 naming what is missing', async () => {
    const set = 'vocab=96,ctx=16,d=32,heads=2,layers=1';
    const w = join(dir, 'gpt2.safetensors');
    expect((await tfc('init-weights', 'examples/gpt2.tfx', '--set', set, '--out', w)).code).toBe(0);
    writeFileSync(join(dir, 'vocab.json'), JSON.stringify(vocab));
    const r = await tfc('run', 'examples/gpt2.tfx', '--set', set, '--weights', w, '--prompt', 'hi', '--target', 'cuda-emu');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('has no KV-cache outputs');
  }, 120_000);

  it('--prompt with a weights file that lacks a tensor is exit 1 (TFC302) before any launcher starts', async () => {
    const w = join(dir, 'charlm-missing.safetensors');
    writeFileSync(w, writeSafetensors(new Map([...weights].filter(([name]) => name !== 'lm_head.weight'))));
    writeFileSync(join(dir, 'vocab.json'), JSON.stringify(vocab));
    const r = await tfc('run', file, '--weights', w, '--prompt', 'hi', '--target', 'cuda-emu');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/TFC302.*lm_head\.weight/);
  }, 120_000);

  it.runIf(detectNvidiaGpu() === undefined)('--prompt --target cuda without a GPU is exit 2 pointing at cuda-emu', async () => {
    const r = await tfc('run', file, '--weights', weightsPath, '--prompt', 'hi', '--target', 'cuda');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('no NVIDIA GPU');
    expect(r.stderr).toContain('--target cuda-emu');
  });
});
