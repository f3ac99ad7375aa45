// `tfc bench compile`: compile time per example (cold and warm) and the driver's shader
// compilation of every distinct kernel.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { targetLimitsOf } from '../runtime/target.js';
import { benchDevice } from './bench-peers.js';
import { type CaseResult, type SystemResult, Progress } from './bench-report.js';
import { type BenchOptions, benchPlan, repoRoot } from './bench.js';

export function exampleFiles(): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    const r = spawnSync('find', [d, '-name', '*.tfx', '-type', 'f'], { encoding: 'utf8' });
    out.push(...r.stdout.split('\n').filter((s) => s !== ''));
  };
  walk(join(repoRoot, 'examples'));
  return out.sort();
}

/**
 * Compile time per example: front end + graph passes + kernel lowering and WGSL (compilePlan),
 * cold (first in this process) and warm (the median of repeats); plus the driver's shader
 * compilation of every distinct kernel (createComputePipelineAsync), cold.
 */
export async function benchCompile(o: BenchOptions, files: readonly string[]): Promise<CaseResult[]> {
  const dev = await benchDevice();
  const progress = new Progress(files.length, o.err, o.isTty);
  const out: CaseResult[] = [];
  for (const file of files) {
    const src = readFileSync(file, 'utf8');
    const rel = file.startsWith(repoRoot) ? file.slice(repoRoot.length + 1) : file;
    const results: SystemResult[] = [];
    try {
      const once = (): { ms: number; kernels: number; wgsl: string[] } => {
        const t0 = performance.now();
        const plan = benchPlan(src, file, new Map(), true, targetLimitsOf(dev));
        return { ms: performance.now() - t0, kernels: plan.steps.length, wgsl: plan.kernels.map((k) => k.source.wgsl) };
      };
      const cold = once();
      const warm: number[] = [];
      for (let i = 0; i < o.repeats; i++) warm.push(once().ms);
      const t0 = performance.now();
      await Promise.all(
        cold.wgsl.map((code) => dev.device.createComputePipelineAsync({ layout: 'auto', compute: { module: dev.device.createShaderModule({ code }), entryPoint: 'main' } })),
      );
      const shaderMs = performance.now() - t0;
      results.push({ system: 'tfc compile cold', status: 'ok', timeSource: 'wall', wallMs: [cold.ms], kernels: cold.kernels });
      results.push({ system: 'tfc compile warm', status: 'ok', timeSource: 'wall', wallMs: warm, kernels: cold.kernels });
      results.push({ system: 'shaders (driver) cold', status: 'ok', timeSource: 'wall', wallMs: [shaderMs], kernels: cold.wgsl.length, note: `${cold.wgsl.length} distinct kernels` });
    } catch (e) {
      results.push({ system: 'tfc compile cold', status: 'failed', timeSource: 'wall', wallMs: [], note: e instanceof Error ? (e.message.split('\n')[0] ?? '') : String(e) });
    }
    progress.step(rel);
    out.push({ suite: 'compile', name: rel, params: { file: rel }, results });
  }
  progress.end();
  return out;
}

