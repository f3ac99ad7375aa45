// Runs in headless Chromium (served by vite from gpt2.test.ts): fetches the compiled GPT-2 tiny
// plan with its weights and inputs from the test, runs it on navigator.gpu with the same runtime
// code as in Node, and POSTs the logits back.
import type { Plan } from '../../../src/kernel/plan/plan.js';
import { acquireDevice } from '../../../src/runtime/device.js';
import { createSession, type HostTensor } from '../../../src/runtime/session.js';

interface Payload {
  plan: Plan;
  weights: Record<string, HostTensor>;
  inputs: Record<string, HostTensor>;
  inputRanges: Record<string, { min: number; maxExclusive: number }>;
}

async function main(): Promise<unknown> {
  const payload = (await (await fetch('/__gpt2')).json()) as Payload;
  const dev = await acquireDevice();
  const s = await createSession(dev, payload.plan, { inputRanges: payload.inputRanges });
  s.loadWeights(payload.weights);
  const r = await s.run(payload.inputs);
  const logits = r.outputs.get('logits');
  return {
    host: dev.host,
    adapter: dev.adapterInfo,
    shape: logits?.shape,
    logits: Array.from(logits?.data ?? []),
    peakBytes: r.memory.peakBytes,
    pipelines: s.stats.pipelinesCreated,
  };
}

main()
  .then((result) => fetch('/__result', { method: 'POST', body: JSON.stringify({ ok: true, result }) }))
  .catch((e: unknown) => fetch('/__result', { method: 'POST', body: JSON.stringify({ ok: false, error: String(e) }) }));
