// Generated host module goldens: model.ts of charlm compiled with --train (the forward model's
// API, the training step's `trainSpec`, `Trainer` and `createTrainer`), with every kernel's WGSL
// and both plans' JSON cut down to a line saying how long they are (the kernels have their own
// tests and the codegen snapshot). `npx vitest run test/golden/host -u` rewrites them for review.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { emitHostModule } from '../../../codegen/host/emit.js';
import { lowerModel } from '../../../src/compile/kernels.js';
import { compileModel } from '../../../src/compile/model.js';
import { webgpuDefaultLimits } from '../../../src/kernel/schedule/schedule.js';

const dir = fileURLToPath(new URL('.', import.meta.url));
const repo = fileURLToPath(new URL('../../../', import.meta.url));

/** The module with kernel template literals and plan objects replaced by their line counts. */
export function apiOf(ts: string): string {
  const out: string[] = [];
  const lines = ts.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    const kernel = /^const (wgsl_\w+) = `/.exec(line);
    const plan = /^export const (plan|trainPlan): Plan = \{$/.exec(line);
    if (kernel === null && plan === null) {
      out.push(line);
      continue;
    }
    const start = i;
    const end = kernel !== null ? (l: string): boolean => l.endsWith('`;') : (l: string): boolean => l === '};';
    while (i < lines.length && !end(lines[i] ?? '')) i++;
    out.push(kernel !== null ? `const ${kernel[1]} = \`...\`; // ${i - start + 1} lines` : `export const ${plan?.[1]}: Plan = {...}; // ${i - start + 1} lines`);
  }
  return out.join('\n');
}

describe('generated host module goldens', () => {
  it('charlm --train: the module around its kernels and plans', { timeout: 300_000 }, async () => {
    const file = 'examples/charlm/charlm.tfx';
    const c = compileModel({ file, text: readFileSync(`${repo}${file}`, 'utf8') });
    const k = lowerModel(c, { limits: webgpuDefaultLimits, train: true });
    const trainPlan = k.trainPlan;
    expect(trainPlan).toBeDefined();
    const ts = await emitHostModule(k.plan, c.graph, { context: 128, sourceName: 'charlm.tfx', ...(trainPlan !== undefined ? { trainPlan } : {}) });
    const api = apiOf(ts);
    // The cut kept every declaration: as many kernel constants as distinct kernels of both plans.
    const forwardConsts = k.plan.kernels.length;
    const trainOnly = (trainPlan?.kernels ?? []).filter((t) => !k.plan.kernels.some((f) => f.source.wgsl === t.source.wgsl));
    const distinctTrain = new Set(trainOnly.map((t) => t.source.wgsl)).size;
    expect(api.match(/^const wgsl_\w+ = `\.\.\.`;/gm)?.length).toBe(forwardConsts + distinctTrain);
    await expect(api).toMatchFileSnapshot(`${dir}/charlm-train.model.txt`);
  });
});
