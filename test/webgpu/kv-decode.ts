// Shared by the decode tests (batched-decode, paged-generate): a small GPT-2 variant compiled for
// the test device with seeded random weights, and the reference every batched or paged decode is
// held to: greedy decoding of one sequence alone with examples/variants/gpt2-kv.tfx.
import { readFileSync } from 'node:fs';
import { expect } from 'vitest';
import { checkSource } from '../../src/check/check-source.js';
import { randomWeights } from '../../src/cli/random.js';
import { compilePlan } from '../../src/compile/plan.js';
import type { Diagnostic } from '../../src/diag/diagnostic.js';
import { neededTensors } from '../../src/io/check-tensors.js';
import { runPipeline } from '../../src/passes/driver.js';
import { createPassContext } from '../../src/passes/pass.js';
import { pipelines } from '../../src/passes/pipeline.js';
import type { AcquiredDevice } from '../../src/runtime/device.js';
import { type HostTensor, type Session, createSession } from '../../src/runtime/session.js';
import { argmaxRow } from '../../src/runtime/speculative.js';
import { targetLimitsOf } from '../../src/runtime/target.js';

/** `file` checked with `config`, through the webgpu pipeline, with weights of seed 21 (times 3). */
export async function decodeSession(dev: AcquiredDevice, file: string, config: Readonly<Record<string, number>>): Promise<Session> {
  const r = checkSource(readFileSync(file, 'utf8'), file, new Map(Object.entries(config)));
  if (r.graph === undefined) throw new Error(r.diagnostics.map((d) => d.message).join('; '));
  const g = runPipeline(r.graph, pipelines.webgpu, createPassContext({ target: 'webgpu' }));
  const s = await createSession(dev, compilePlan(g, { target: targetLimitsOf(dev) }));
  const ds: Diagnostic[] = [];
  const weights = randomWeights(neededTensors(r.graph), 21, new Map(), ds);
  expect(ds).toEqual([]);
  // Scaled up so the greedy choices are not near-ties between runs of different kernels.
  s.loadWeights(new Map([...weights].map(([n, t]) => [n, { shape: t.shape, data: t.data.map((x) => x * 3) }])));
  return s;
}

/** Greedy decoding of one sequence alone with gpt2-kv.tfx (`single`): `steps` tokens after the prompt. */
export async function decodeAlone(
  single: Session,
  geo: { readonly layers: number; readonly heads: number; readonly headDim: number; readonly vocab: number },
  prompt: readonly number[],
  steps: number,
): Promise<number[]> {
  const cache = new Map<string, HostTensor>();
  for (let l = 0; l < geo.layers; l++) for (const kv of ['key', 'value']) cache.set(`past.${l}.${kv}`, { shape: [1, geo.heads, 0, geo.headDim], data: [] });
  const out: number[] = [];
  let tokens = [...prompt];
  for (let i = 0; i < steps; i++) {
    const r = await single.run(new Map([['tokens', { dtype: 'i32', shape: [1, tokens.length], data: tokens }], ...cache]));
    const logits = r.outputs.get('logits');
    if (logits === undefined) throw new Error('no logits');
    const next = argmaxRow(logits.data, tokens.length - 1, geo.vocab);
    out.push(next);
    for (let l = 0; l < geo.layers; l++) for (const kv of ['key', 'value']) cache.set(`past.${l}.${kv}`, r.outputs.get(`present.${l}.${kv}`) as HostTensor);
    tokens = [next];
  }
  return out;
}
