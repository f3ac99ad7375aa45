// The device's pipeline cache key (src/runtime/pipelines.ts pipelineKey): kernels that differ only
// in whole-line comments (the header naming the kernel and its source location) share a pipeline;
// any difference in code, entry point or binding layout does not.
import { describe, expect, it } from 'vitest';
import type { PlanKernel } from '../../../src/kernel/plan/plan.js';
import { pipelineKey } from '../../../src/runtime/pipelines.js';

const body = ['@group(0) @binding(0) var<storage, read_write> out: array<f32>;', '@compute @workgroup_size(64, 1, 1)', 'fn main(@builtin(global_invocation_id) g: vec3<u32>) {', '  out[g.x] = 1.0; // one', '}'].join('\n');

function kernel(wgsl: string, o: { entryPoint?: string; access?: 'read' | 'read_write' } = {}): PlanKernel {
  return {
    name: 'k',
    entryPoint: o.entryPoint ?? 'main',
    workgroupSize: [64, 1, 1],
    grid: [{ kind: 'const', value: 1 }, { kind: 'const', value: 1 }, { kind: 'const', value: 1 }],
    uniforms: [],
    uniformBinding: 1,
    slots: [{ binding: 0, access: o.access ?? 'read_write', role: 'out' }],
    bytesRead: { kind: 'const', value: 0 },
    bytesWritten: { kind: 'const', value: 0 },
    flops: { kind: 'const', value: 0 },
    features: [],
    source: { wgsl },
    locs: [],
  };
}

describe('pipelineKey', () => {
  it('ignores whole-line comments: the header of the same kernel from two models', () => {
    const a = kernel(`// kernel gpt2_add: add\n// from examples/gpt2.tfx:40:3\n${body}`);
    const b = kernel(`// kernel alibi_add: add\n// from examples/variants/alibi.tfx:41:3\n  // indented comment\n${body}`);
    expect(pipelineKey(a)).toBe(pipelineKey(b));
  });

  it('keeps code, a trailing comment on a code line, the entry point and the layout', () => {
    const base = pipelineKey(kernel(body));
    expect(pipelineKey(kernel(body.replace('1.0', '2.0')))).not.toBe(base);
    expect(pipelineKey(kernel(body.replace('// one', '// two')))).not.toBe(base);
    expect(pipelineKey(kernel(body, { entryPoint: 'other' }))).not.toBe(base);
    expect(pipelineKey(kernel(body, { access: 'read' }))).not.toBe(base);
  });
});
