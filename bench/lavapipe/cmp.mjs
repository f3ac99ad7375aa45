// Interleaved comparison of raw WGSL kernels in one process: min and median of N rounds each.
// interleaved comparison of raw WGSL variants: node cmp.mjs file1.mjs... each exports {name, code, grid}
import { dev, buf } from './harness.mjs';
import { loadavg } from 'node:os';
export async function compare(variants, buffers, rounds = 9) {
  const ps = [];
  for (const v of variants) {
    dev.pushErrorScope('validation');
    const pipe = dev.createComputePipeline({ layout: 'auto', compute: { module: dev.createShaderModule({ code: v.code }), entryPoint: 'main' } });
    const bg = dev.createBindGroup({ layout: pipe.getBindGroupLayout(0), entries: (v.bindings ?? buffers.map((_, i) => i)).map((i) => ({ binding: i, resource: { buffer: buffers[i] } })) });
    const e = await dev.popErrorScope(); if (e) throw new Error(v.name + ': ' + e.message);
    ps.push({ ...v, pipe, bg, ts: [] });
  }
  const once = async (p) => {
    const enc = dev.createCommandEncoder(); const pass = enc.beginComputePass();
    pass.setPipeline(p.pipe); pass.setBindGroup(0, p.bg); pass.dispatchWorkgroups(...p.grid); pass.end();
    const t0 = performance.now(); dev.queue.submit([enc.finish()]); await dev.queue.onSubmittedWorkDone(); return performance.now() - t0;
  };
  for (const p of ps) await once(p);
  for (let r = 0; r < rounds; r++) for (const p of ps) p.ts.push(await once(p));
  const l = loadavg()[0].toFixed(2);
  for (const p of ps) { p.ts.sort((a, b) => a - b); const med = p.ts[Math.floor(p.ts.length / 2)]; console.log(`${p.name.padEnd(30)} min ${p.ts[0].toFixed(1)} med ${med.toFixed(1)} ms  ${p.flops ? (p.flops / med / 1e6).toFixed(2) + ' GFLOP/s' : ''} load ${l}`); }
}
