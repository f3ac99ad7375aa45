// The CUDA launcher with issue 9's hostile model (names with quotes, backslashes, NUL, line breaks,
// comment and preprocessor openers, non-ASCII; see test/webgpu/robustness-hostile.ts): launcher.cu
// keeps user text inside escaped string literals and one-line comments, and the built program runs
// the model in both modes, finding every tensor by its exact name (NUL bytes included) in the
// safetensors files and in serve requests, and answering with the names intact.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { printCudaLauncher } from '../../codegen/cuda/launcher.js';
import { checkSource } from '../../src/check/check-source.js';
import { strAttr } from '../../src/graph/ir.js';
import { writeSafetensors } from '../../src/io/safetensors.js';
import { compilePlan } from '../../src/compile/plan.js';
import { cudaLimits } from '../../src/kernel/schedule/schedule.js';
import { runPipeline } from '../../src/passes/driver.js';
import { createPassContext } from '../../src/passes/pass.js';
import { pipelines } from '../../src/passes/pipeline.js';
import { runPlanEmulated } from '../../src/runtime-cuda/emulate.js';
import { buildLauncher } from '../../src/runtime-cuda/launcher.js';
import { LauncherServer } from '../../src/runtime-cuda/serve.js';
import { hostileFiles, hostileModel } from '../webgpu/robustness-hostile.js';
import { feedsFor, interpret, relError } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'tfc-cuda-hostile-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the CUDA launcher with hostile names', () => {
  const r = checkSource(hostileModel(), hostileFiles[0] ?? 'x.tfx');
  const g = r.graph;
  if (g === undefined) throw new Error('the hostile model does not check');
  const plan = compilePlan(runPipeline(g, pipelines.cuda, createPassContext({ target: 'cuda' })), { target: cudaLimits });

  it('prints user names only as escaped string literals and one-line comments', () => {
    const src = printCudaLauncher(plan);
    for (const line of src.split('\n')) {
      expect(line, 'a line break character inside a line').not.toMatch(/[\r\u000b\u000c\u0085\u2028\u2029]/);
      const code = line.trimStart().startsWith('//') ? '' : line.replace(/\/\/ \d+: .*$/, ''); // the buffer comment ends a table row
      // Outside string literals (cString: no raw quote, backslash or ? inside), no user text.
      const outside = code.replace(/"(?:[^"\\?]|\\[0-7]{3})*"/g, '""');
      expect(outside, line).not.toContain('EVIL');
      expect(line.trimStart().startsWith('//') && line.endsWith('\\'), 'a comment ending in a backslash').toBe(false);
    }
  });

  it('runs one-shot and in serve mode with every name intact, as the interpreter', async () => {
    const dims = new Map([['T', 3]]);
    const { inputs, weights } = feedsFor(g, dims, 7);
    const inputName = g.nodes.filter((n) => n.op === 'input').map((n) => strAttr(n, 'name'))[0] ?? '';
    const outputName = g.outputs[0]?.name ?? '';
    // The names as the lexer decoded the .tfx literals: a comment closer, a line break and an #include.
    expect([inputName.startsWith('EVIL0 */'), outputName.startsWith('EVIL3 \n@compute'), outputName.includes('\n#include')]).toEqual([true, true, true]);
    expect([...weights.keys()].some((k) => k.includes('\u0000'))).toBe(true); // a NUL inside a weight's name
    const want = interpret(g, { inputs, weights }, { dims }).outputs.get(outputName);
    if (want === undefined) throw new Error('no reference output');
    // One-shot: safetensors in and out (the output file's header holds the escaped name).
    const once = runPlanEmulated(plan, dims, new Map([...inputs, ...weights].map(([k, t]) => [k, t.data])));
    expect([...once.outputs.keys()]).toEqual([outputName]);
    // f32 kernels vs float64: 1e-4 relative (floor 1e-2 of the tensor's scale).
    expect(relError(once.outputs.get(outputName) ?? [], want)).toBeLessThan(1e-4);
    // Serve: the names travel in the JSON request and answer.
    const w = join(dir, 'w.safetensors');
    writeFileSync(w, writeSafetensors(weights));
    const server = await LauncherServer.start(buildLauncher(plan, 'emu'), w);
    try {
      const x = inputs.get(inputName);
      if (x === undefined) throw new Error('no input');
      const res = await server.request({ inputs: [{ name: inputName, dtype: 'F32', shape: x.shape, data: Float32Array.from(x.data) }], fetch: [outputName] });
      expect([...res.outputs.keys()]).toEqual([outputName]);
      expect(relError(res.outputs.get(outputName)?.data ?? [], want)).toBeLessThan(1e-4);
    } finally {
      expect(await server.close()).toBe(0);
    }
  }, 600_000);
});
