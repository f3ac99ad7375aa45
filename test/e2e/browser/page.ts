// Runs in headless Chromium (served by vite from runtime.test.ts): the same runtime code as in
// Node, on navigator.gpu, on the hand-written plans of test/webgpu/helpers.ts. Posts a JSON report.
import { acquireDevice } from '../../../src/runtime/device.js';
import { createSession } from '../../../src/runtime/session.js';
import { addBiasPlan, matmulPlan, seeded } from '../../webgpu/helpers.js';

async function main(): Promise<unknown> {
  const dev = await acquireDevice();
  const mm = await createSession(dev, matmulPlan());
  const [M, K, N] = [33, 7, 129];
  const a = seeded(M * K, 1);
  const b = seeded(K * N, 2);
  const r = await mm.run({ a: { shape: [M, K], data: a }, b: { shape: [K, N], data: b } });
  const add = await createSession(dev, addBiasPlan());
  add.loadWeights({ w: { shape: [5], data: [1, 2, 3, 4, 5] } });
  const r2 = await add.run({ a: { shape: [1, 7, 5], data: new Float32Array(35) }, col: { shape: [7, 1], data: [0, 10, 20, 30, 40, 50, 60] } });
  return {
    host: dev.host,
    adapter: dev.adapterInfo,
    features: [...dev.features],
    matmul: { shape: r.outputs.get('c')?.shape, data: Array.from(r.outputs.get('c')?.data ?? []) },
    add: Array.from(r2.outputs.get('out')?.data ?? []),
    peakBytes: r.memory.peakBytes,
  };
}

main()
  .then((result) => fetch('/__result', { method: 'POST', body: JSON.stringify({ ok: true, result }) }))
  .catch((e: unknown) => fetch('/__result', { method: 'POST', body: JSON.stringify({ ok: false, error: String(e) }) }));
