// Generated code cannot be hijacked by names from the source (issue 9): a model whose weight,
// input and output keys, function names, model name and file name are hostile (comment closers,
// quotes, template syntax, backticks, line breaks of every WGSL kind, keywords of WGSL, CUDA and
// TypeScript, unicode) compiles to WGSL that Dawn accepts with no errors and in which no user text
// appears outside one-line comments; CUDA (g++ -fsyntax-only with the emulation header) likewise;
// manifest.json round-trips the names as data. Compiling twice is byte-identical (all stages).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { printEmuProgram } from '../../codegen/cuda/emu/driver.js';
import { checkSource } from '../../src/check/check-source.js';
import type { Graph } from '../../src/graph/ir.js';
import { printGraph } from '../../src/graph/print.js';
import { compilePlan } from '../../src/compile/plan.js';
import { planFiles } from '../../src/kernel/plan/manifest.js';
import type { Plan } from '../../src/kernel/plan/plan.js';
import { cudaLimits, lavapipeLimits, webgpuDefaultLimits } from '../../src/kernel/schedule/schedule.js';
import { runPipeline } from '../../src/passes/driver.js';
import { createPassContext, type Target } from '../../src/passes/pass.js';
import { pipelines } from '../../src/passes/pipeline.js';

import { dawnCompiler } from './dawn.js';
import { hostileFiles, hostileIdents, hostileKeys, hostileModel } from './robustness-hostile.js';

function build(file: string): Graph {
  const r = checkSource(hostileModel(), file);
  expect(r.diagnostics.map((d) => `${d.code} ${d.loc.line}:${d.loc.col} ${d.message}`)).toEqual([]);
  if (r.graph === undefined) throw new Error('hostile model did not check');
  return r.graph;
}

function compiled(file: string, target: Target, limits = target === 'cuda' ? cudaLimits : lavapipeLimits): { ir: string; plan: Plan } {
  const g = runPipeline(build(file), pipelines[target], createPassContext({ target, verify: true }));
  return { ir: printGraph(g), plan: compilePlan(g, { target: limits }) };
}

/** Lines of code without comment lines; comment lines must not hide a line break of any kind. */
function codeLines(src: string, what: string): string[] {
  const lines = src.split('\n');
  for (const l of lines) {
    // WGSL ends a line comment at any of these (WGSL spec, "line break"); C++ at \n, and a
    // trailing backslash splices the next line into the comment.
    if (/[\u000b\u000c\r\u0085\u2028\u2029]/.test(l)) throw new Error(`${what}: a line holds a line break character: ${JSON.stringify(l)}`);
    if (l.trimStart().startsWith('//') && l.endsWith('\\')) throw new Error(`${what}: a comment ends with a backslash: ${JSON.stringify(l)}`);
  }
  return lines.filter((l) => !l.trimStart().startsWith('//'));
}

const dawn = dawnCompiler();

describe('hostile names cannot break or inject into generated code', () => {
  it(`the hostile model checks (${hostileKeys.length} key strings, ${hostileIdents.length} identifiers, ${hostileFiles.length} file names)`, () => {
    for (const f of hostileFiles) build(f);
  });

  it.each(hostileFiles.map((f, i) => [i, f] as const))('WGSL for file name #%i: no user text outside comments, Dawn accepts every kernel', async (_i, file) => {
    for (const limits of [lavapipeLimits, webgpuDefaultLimits]) {
      const { plan } = compiled(file, 'webgpu', limits);
      expect(plan.kernels.length).toBeGreaterThan(3);
      const errors: string[] = [];
      for (const k of plan.kernels) {
        const code = codeLines(k.source.wgsl, k.name).join('\n');
        expect(code, k.name).not.toContain('EVIL');
        expect(k.name).toMatch(/^[A-Za-z][A-Za-z0-9_]*$/);
        if (k.features.some((f) => !dawn.device?.features.has(f))) continue;
        errors.push(...(await dawn.errors(k.name, k.source.wgsl)));
      }
      expect(errors).toEqual([]);
    }
    if (dawn.device === undefined) console.warn(`robustness: WGSL not compiled by Dawn: ${dawn.whyNot}`);
  });

  it('manifest.json carries the names as JSON data and round-trips them', () => {
    const { plan } = compiled(hostileFiles[0] ?? 'x.tfx', 'webgpu');
    const files = planFiles(plan, 'webgpu');
    const manifest = JSON.parse(files.get('manifest.json') ?? '{}') as { inputs: { name: string }[]; weights: { name: string }[]; outputs: { name: string }[] };
    expect(manifest.inputs.map((i) => i.name)).toEqual([JSON.parse(`"${hostileKeys[0]}"`)]);
    expect(manifest.outputs.map((o) => o.name)).toEqual([JSON.parse(`"${hostileKeys[3]}"`)]);
    expect(manifest.weights.map((w) => w.name)).toContain(JSON.parse(`"${hostileKeys[1]}"`));
    for (const path of files.keys()) expect(path).toMatch(/^(manifest\.json|wgsl\/[A-Za-z][A-Za-z0-9_]*\.wgsl)$/);
  });

  it('CUDA: no user text outside comments, and g++ -fsyntax-only accepts the kernels with the emulation header', () => {
    for (const file of hostileFiles) {
      const { plan } = compiled(file, 'cuda');
      for (const k of plan.kernels) {
        const src = k.source.cuda ?? '';
        expect(src).not.toBe('');
        expect(codeLines(src, k.name).join('\n'), k.name).not.toContain('EVIL');
      }
      let hasGpp = true;
      try {
        execFileSync('g++', ['--version'], { stdio: 'ignore' });
      } catch {
        hasGpp = false;
      }
      if (!hasGpp) {
        console.warn('robustness: g++ missing, CUDA syntax not checked');
        continue;
      }
      const dir = mkdtempSync(join(tmpdir(), 'tfc-hostile-'));
      const src = join(dir, 'k.cu.cc');
      writeFileSync(src, printEmuProgram(plan.kernels));
      const header = new URL('../../codegen/cuda/emu/cuda_emu.h', import.meta.url).pathname;
      execFileSync('g++', ['-std=c++20', '-fsyntax-only', '-w', '-include', header, '-x', 'c++', src], { stdio: ['ignore', 'ignore', 'pipe'] });
    }
  });
});

describe('compiling twice is byte-identical', () => {
  it.each(['examples/gpt2.tfx', 'examples/llama.tfx', 'hostile'])('%s: IR, every WGSL kernel and manifest.json', (which) => {
    const once = (): Map<string, string> => {
      const file = which === 'hostile' ? (hostileFiles[0] ?? 'x.tfx') : which;
      const g0 = which === 'hostile' ? build(file) : checkSource(readFileSync(which, 'utf8'), which).graph;
      if (g0 === undefined) throw new Error(`${which} did not check`);
      const g = runPipeline(g0, pipelines.webgpu, createPassContext({ target: 'webgpu', verify: true }));
      const files = planFiles(compilePlan(g), 'webgpu');
      files.set('model.ir', printGraph(g));
      return files;
    };
    const a = once();
    const b = once();
    expect([...b.keys()]).toEqual([...a.keys()]);
    for (const [k, v] of a) expect(b.get(k), k).toBe(v);
  });
});
