// Session.warmUp and createModel's warm-up phase (issue 15): while a model loads, every distinct
// pipeline is dispatched once (drivers such as lavapipe compile at first dispatch), with one
// progress event per pipeline; a second model on the same device does not dispatch again; the
// scratch dispatches leave the model's buffers alone (its logits still equal float64's).
// Dispatches are counted through a device whose compute passes are wrapped (the real Dawn
// objects do the work: every method is bound to them).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { checkSource } from '../../src/check/check-source.js';
import { randomWeights } from '../../src/cli/random.js';
import { compilePlan } from '../../src/compile/plan.js';
import { interpret } from '../../src/interp/interpret.js';
import { neededTensors } from '../../src/io/check-tensors.js';
import { writeSafetensors } from '../../src/io/safetensors.js';
import type { Tensor64 } from '../../src/base/tensor.js';
import { runPipeline } from '../../src/passes/driver.js';
import { createPassContext } from '../../src/passes/pass.js';
import { pipelines } from '../../src/passes/pipeline.js';
import { createLoadedModel, type LoadProgress } from '../../src/runtime/host.js';
import { targetLimitsOf } from '../../src/runtime/target.js';
import { testDevice } from './helpers.js';

const repo = new URL('../../', import.meta.url).pathname;

interface Dispatch {
  readonly pipeline: GPUComputePipeline | undefined;
  readonly grid: readonly number[];
}

/** Forwards everything to `target` (methods bound to it, so Dawn's own checks see its objects). */
function wrap<T extends object>(target: T, override: Partial<Record<string | symbol, unknown>>): T {
  return new Proxy(target, {
    get(t, prop) {
      if (prop in override) return override[prop];
      const v = (t as Record<string | symbol, unknown>)[prop];
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
    },
  });
}

/** A device that records each dispatch (the pipeline set before it and its grid). */
function countingDevice(device: GPUDevice, log: Dispatch[]): GPUDevice {
  const wrapPass = (pass: GPUComputePassEncoder): GPUComputePassEncoder => {
    let pipeline: GPUComputePipeline | undefined;
    return wrap(pass, {
      setPipeline: (p: GPUComputePipeline) => ((pipeline = p), pass.setPipeline(p)),
      dispatchWorkgroups: (x: number, y = 1, z = 1) => (log.push({ pipeline, grid: [x, y, z] }), pass.dispatchWorkgroups(x, y, z)),
    });
  };
  return wrap(device, {
    createCommandEncoder: (d?: GPUCommandEncoderDescriptor) => {
      const enc = device.createCommandEncoder(d);
      return wrap(enc, { beginComputePass: (pd?: GPUComputePassDescriptor) => wrapPass(enc.beginComputePass(pd)) });
    },
  });
}

describe('warm-up while loading a model', () => {
  it('dispatches each pipeline once with per-pipeline progress, then not again on the same device', { timeout: 240_000 }, async () => {
    const config = new Map([['layers', 2], ['d', 32], ['heads', 2], ['vocab', 50], ['ctx', 16]]);
    const checked = checkSource(readFileSync(`${repo}examples/variants/gpt2-kv.tfx`, 'utf8'), 'gpt2-kv.tfx', config);
    if (checked.graph === undefined) throw new Error(checked.diagnostics.map((d) => d.message).join('\n'));
    const weights = randomWeights(neededTensors(checked.graph), 5, config, []);
    const dev = await testDevice();
    const graph = runPipeline(checked.graph, pipelines.webgpu, createPassContext({ target: 'webgpu' }));
    const plan = compilePlan(graph, { target: targetLimitsOf(dev) });
    // Pipelines are cached by source: the distinct WGSL texts are the pipelines to warm up. The KV
    // cache gives prefill-only and decode-only attention kernels, which one run never dispatches together.
    const pipelinesWanted = new Set(plan.kernels.map((k) => k.source.wgsl)).size;
    expect(pipelinesWanted).toBeGreaterThan(3);
    const spec = {
      name: 'gpt2',
      tokens: 'tokens',
      logits: 'logits',
      vocab: 50,
      context: 16,
      cache: [0, 1].flatMap((l) => ['key', 'value'].map((kv) => ({ past: `past.${l}.${kv}`, present: `present.${l}.${kv}` }))),
      pastDim: 'P',
    };
    const log: Dispatch[] = [];
    const device = countingDevice(dev.device, log);
    const events: LoadProgress[] = [];
    // A Response, as a page fetches it: the load then reports every phase.
    const model = await createLoadedModel(device, plan, spec, new Response(new Uint8Array(writeSafetensors(weights))), { onProgress: (p) => void events.push(p) });

    const warm = events.filter((e) => e.phase === 'warmup');
    expect(warm.map((e) => e.done)).toEqual(Array.from({ length: pipelinesWanted + 1 }, (_, i) => i));
    expect(warm.every((e) => e.total === pipelinesWanted)).toBe(true);
    const compile = events.filter((e) => e.phase === 'compile');
    expect(compile.at(-1)).toEqual({ phase: 'compile', done: pipelinesWanted, total: pipelinesWanted });
    // download, compile, warmup, upload, ready: each phase once, in this order.
    expect([...new Set(events.map((e) => e.phase))]).toEqual(['download', 'compile', 'warmup', 'upload', 'ready']);
    expect(log).toHaveLength(pipelinesWanted);
    expect(new Set(log.map((d) => d.pipeline)).size).toBe(pipelinesWanted);
    expect(log.every((d) => d.grid.join('x') === '1x1x1')).toBe(true);

    // The scratch dispatches wrote nothing the model reads: its prompt logits equal float64's.
    const prompt = [5, 17, 3, 41];
    const inputs = new Map<string, Tensor64>([['tokens', { dtype: 'i32', shape: [1, prompt.length], data: Float64Array.from(prompt) }]]);
    for (const l of [0, 1]) for (const kv of ['key', 'value']) inputs.set(`past.${l}.${kv}`, { dtype: 'f32', shape: [1, 2, 0, 16], data: new Float64Array(0) });
    const want = interpret(checked.graph, { inputs, weights }).outputs.get('logits')?.data ?? new Float64Array(0);
    const got = (await model.forward({ tokens: prompt })).get('logits')?.data ?? new Float32Array(0);
    expect(got.length).toBe(want.length);
    const scale = Math.max(...Array.from(want, Math.abs));
    const diff = Math.max(...Array.from(want, (v, i) => Math.abs(v - (got[i] ?? NaN))));
    // f32 kernels vs float64: 1e-4 of max |logit| (the example tests' bar).
    expect(diff / scale).toBeLessThan(1e-4);

    // A second model on the same device finds every pipeline warm: one event at 100%, no dispatch.
    const before = log.length;
    const again: LoadProgress[] = [];
    const second = await createLoadedModel(device, plan, spec, writeSafetensors(weights), { onProgress: (p) => void again.push(p) });
    expect(again.filter((e) => e.phase === 'warmup')).toEqual([{ phase: 'warmup', done: pipelinesWanted, total: pipelinesWanted }]);
    expect(log.length).toBe(before);
    second.dispose();
    model.dispose();
  });

  it('warmUp: false leaves the pipelines to the first run', { timeout: 240_000 }, async () => {
    const checked = checkSource(readFileSync(`${repo}examples/gpt2.tfx`, 'utf8'), 'gpt2.tfx', new Map([['layers', 1], ['d', 16], ['heads', 2], ['vocab', 20], ['ctx', 8]]));
    if (checked.graph === undefined) throw new Error(checked.diagnostics.map((d) => d.message).join('\n'));
    const weights = randomWeights(neededTensors(checked.graph), 2, new Map(), []);
    const dev = await testDevice();
    const graph = runPipeline(checked.graph, pipelines.webgpu, createPassContext({ target: 'webgpu' }));
    const plan = compilePlan(graph, { target: targetLimitsOf(dev) });
    const log: Dispatch[] = [];
    const events: LoadProgress[] = [];
    const spec = { name: 'gpt2', tokens: 'tokens', logits: 'logits', vocab: 20, context: 8, cache: [] };
    const model = await createLoadedModel(countingDevice(dev.device, log), plan, spec, writeSafetensors(weights), { warmUp: false, onProgress: (p) => void events.push(p) });
    expect(events.some((e) => e.phase === 'warmup')).toBe(false);
    expect(log).toHaveLength(0);
    await model.forward({ tokens: [1, 2, 3] });
    expect(log.length).toBeGreaterThan(0); // the counting device does see the run's dispatches
    model.dispose();
  });
});
