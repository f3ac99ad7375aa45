// Runs in headless Chromium (served by vite from examples.test.ts): fetches every example's
// compiled plan with its weights and inputs, runs each on navigator.gpu with the same runtime code
// as in Node, and POSTs all outputs back.
import type { Plan } from '../../../src/kernel/plan/plan.js';
import { acquireDevice } from '../../../src/runtime/device.js';
import { createSession, type HostTensor } from '../../../src/runtime/session.js';

interface Case {
  name: string;
  plan: Plan;
  weights: Record<string, HostTensor>;
  inputs: Record<string, HostTensor>;
}

async function main(): Promise<unknown> {
  const cases = (await (await fetch('/__examples')).json()) as Case[];
  const dev = await acquireDevice();
  const results: Record<string, Record<string, { shape: readonly number[]; data: number[] }>> = {};
  for (const c of cases) {
    const s = await createSession(dev, c.plan);
    try {
      s.loadWeights(c.weights);
      const r = await s.run(c.inputs);
      results[c.name] = Object.fromEntries([...r.outputs].map(([k, t]) => [k, { shape: t.shape, data: Array.from(t.data) }]));
    } finally {
      s.dispose();
    }
  }
  return { host: dev.host, results };
}

main()
  .then((result) => fetch('/__result', { method: 'POST', body: JSON.stringify({ ok: true, result }) }))
  .catch((e: unknown) => fetch('/__result', { method: 'POST', body: JSON.stringify({ ok: false, error: String(e) }) }));
