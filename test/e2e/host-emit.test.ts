// codegen/host: the generated model.ts is deterministic (byte-identical across compiles and
// through the CLI), compiles under `tsc --strict` against the `tfc/runtime` package export, and
// carries the model's types and constants (vocab, context, KV-cache pairs).
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { describeModel, emitHostModule } from '../../codegen/host/emit.js';
import { checkSource } from '../../src/check/check-source.js';
import type { Graph } from '../../src/graph/ir.js';
import { compilePlan } from '../../src/compile/plan.js';
import type { Plan } from '../../src/kernel/plan/plan.js';
import { webgpuDefaultLimits } from '../../src/kernel/schedule/schedule.js';
import { runPipeline } from '../../src/passes/driver.js';
import { createPassContext } from '../../src/passes/pass.js';
import { pipelines } from '../../src/passes/pipeline.js';
import { main } from '../../src/cli/main.js';

const repo = new URL('../../', import.meta.url).pathname;
const tmp = mkdtempSync(join(tmpdir(), 'tfc-host-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function compiled(file: string, overrides: Record<string, number> = {}): { plan: Plan; graph: Graph } {
  const r = checkSource(readFileSync(join(repo, file), 'utf8'), file, new Map(Object.entries(overrides)));
  if (r.graph === undefined) throw new Error(r.diagnostics.map((d) => d.message).join('\n'));
  const graph = runPipeline(r.graph, pipelines.webgpu, createPassContext({ target: 'webgpu', verify: true }));
  return { plan: compilePlan(graph, { target: webgpuDefaultLimits }), graph };
}

describe('generated host module', () => {
  it('is byte-identical across compiles, and the CLI writes the same model.ts', { timeout: 180_000 }, async () => {
    const a = compiled('examples/charlm/charlm.tfx');
    const b = compiled('examples/charlm/charlm.tfx');
    const opts = { context: 128, sourceName: 'charlm.tfx' };
    const first = await emitHostModule(a.plan, a.graph, opts);
    expect(await emitHostModule(b.plan, b.graph, opts)).toBe(first);
    const io = { out: () => undefined, err: () => undefined, env: {} };
    const outDir = join(tmp, 'cli-out');
    // Relative source path: kernel comments carry the path as given (here, as the library call above).
    expect(await main(['compile', 'examples/charlm/charlm.tfx', '-o', outDir], io)).toBe(0);
    expect(readFileSync(join(outDir, 'model.ts'), 'utf8')).toBe(first);
    expect(first).not.toContain(repo); // no absolute paths in the output
  });

  it('finds the language-model roles from the plan', () => {
    const { plan } = compiled('examples/charlm/charlm.tfx');
    // charlm.tfx: tokens i32[B, T], logits f32[B, T, 96], past.{l}.key/value for 2 layers, dim P.
    const lm = describeModel(plan);
    expect({ ...lm, cache: undefined }).toEqual({ tokens: 'tokens', logits: 'logits', vocab: 96, cache: undefined, pastDim: 'P' });
    expect(lm.cache.map((c) => `${c.past} -> ${c.present}`).sort()).toEqual([
      'past.0.key -> present.0.key',
      'past.0.value -> present.0.value',
      'past.1.key -> present.1.key',
      'past.1.value -> present.1.value',
    ]);
    // GPT-2 without a cache: tokens and logits, nothing to feed back.
    const gpt2 = compiled('examples/gpt2.tfx', { layers: 1, d: 32, heads: 2, vocab: 50, ctx: 16 });
    expect(describeModel(gpt2.plan)).toEqual({ tokens: 'tokens', logits: 'logits', vocab: 50, cache: [] });
  });

  it('imports only the runtime types it names, and its docs say whether the model has a KV cache', async () => {
    // gpt2.tfx: one input (tokens), no cache, so no DeviceTensor input type; charlm has past.* inputs.
    const gpt2 = compiled('examples/gpt2.tfx', { layers: 1, d: 32, heads: 2, vocab: 50, ctx: 16 });
    const plain = await emitHostModule(gpt2.plan, gpt2.graph, { context: 16 });
    expect(plain).not.toMatch(/\bDeviceTensor\b/);
    expect(plain).toContain('(the model has no KV cache)');
    expect(plain).not.toContain('KV cache stays');
    const charlm = compiled('examples/charlm/charlm.tfx');
    const cached = await emitHostModule(charlm.plan, charlm.graph, { context: 128 });
    expect(cached).toMatch(/import type \{[^}]*\bDeviceTensor\b/);
    expect(cached).toContain('the KV cache stays on the GPU');
  });

  it("carries the constants read from checkpoint keys, so createModel can check a folder's config.json", async () => {
    let out = '';
    const io = { out: (t: string) => void (out += t), err: () => undefined, env: {} };
    expect(await main(['compile', 'examples/gpt2.tfx', '--emit', 'host', '--set', 'layers=1,d=32,heads=2,vocab=50,ctx=16'], io)).toBe(0);
    // gpt2.tfx: `vocab = 50257 from "vocab_size"`, `d = 768 from "n_embd"`, here set to 50 and 32.
    expect(out).toContain("vocab: { value: 50, keys: ['vocab_size'] }");
    expect(out).toContain("d: { value: 32, keys: ['n_embd'] }");
    expect(out).not.toMatch(/dh: \{ value/); // dh has no key
  });

  it('compiles under tsc --strict against the tfc/runtime package export', { timeout: 240_000 }, async () => {
    const { plan, graph } = compiled('examples/charlm/charlm.tfx');
    const dir = join(tmp, 'strict');
    mkdirSync(join(dir, 'node_modules', '@webgpu'), { recursive: true });
    symlinkSync(repo, join(dir, 'node_modules', 'tfc'));
    symlinkSync(join(repo, 'node_modules/@webgpu/types'), join(dir, 'node_modules/@webgpu/types'));
    writeFileSync(join(dir, 'model.ts'), await emitHostModule(plan, graph, { context: 128 }));
    // An app using the typed API: a wrong input name or a misspelt option must not compile.
    writeFileSync(
      join(dir, 'app.ts'),
      [
        "import { createModel, vocab, context } from './model.js';",
        'export async function demo(device: GPUDevice, weights: ArrayBuffer): Promise<number[]> {',
        '  const model = await createModel(device, weights, { onProgress: (p) => void p.done });',
        '  const out = await model.forward({ tokens: [1, 2, 3] });',
        "  const n: number = out.logits.shape[2] ?? vocab;",
        "  const k: Float32Array | Int32Array = out['present.1.value'].data;",
        '  const g = await model.generate([1, 2], { maxNewTokens: context, temperature: 0, topK: 5, topP: 0.9, seed: 1, onToken: (t) => void t });',
        '  model.dispose();',
        '  return [n, k.length, ...g.tokens];',
        '}',
        '',
      ].join('\n'),
    );
    const tsconfig = {
      compilerOptions: { strict: true, noUnusedLocals: true, noEmit: true, target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', lib: ['ES2022', 'DOM'], types: [], skipLibCheck: true },
      files: ['model.ts', 'app.ts'],
    };
    writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify(tsconfig));
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module' }));
    const tsc = join(repo, 'node_modules/typescript/bin/tsc');
    const run = (): string => {
      try {
        execFileSync(process.execPath, [tsc, '-p', dir], { encoding: 'utf8' });
        return '';
      } catch (e) {
        return String((e as { stdout?: string }).stdout ?? e);
      }
    };
    expect(run()).toBe('');
    // The check can fail: a misspelt input name is a type error.
    writeFileSync(join(dir, 'app.ts'), "import { createModel } from './model.js';\nexport const f = async (d: GPUDevice) => (await createModel(d, new ArrayBuffer(0))).forward({ tokenz: [1] });\n");
    expect(run()).toMatch(/tokenz/);
  });
});
