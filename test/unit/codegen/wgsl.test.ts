import { describe, expect, it } from 'vitest';
import { lowerToKernels } from '../../../src/kernel/lower/lower.js';
import { lavapipeLimits } from '../../../src/kernel/schedule/schedule.js';
import { printWgsl } from '../../../codegen/wgsl/print.js';
import { everyOpIr, graphOf } from '../kernel/helpers.js';

const biasIr = `graph bias(T) {
  %0 = input {name="x"} : f32[T,8]  loc(b.tfx:1:1)
  %1 = weight {name="b"} : f32[8]  loc(b.tfx:2:1)
  %2 = add %0, %1 : f32[T,8]  loc(b.tfx:3:5)
  output "y" = %2  loc(b.tfx:4:1)
}
`;

describe('printWgsl', () => {
  it('prints a broadcasting add with a header, dims uniform and initialized lets', () => {
    const [k] = lowerToKernels(graphOf(biasIr), lavapipeLimits).kernels;
    if (k === undefined) throw new Error('no kernel');
    expect(printWgsl(k)).toMatchInlineSnapshot(`
      "// kernel k0_add: add
      // from b.tfx:3:5
      // schedule: map, 256 threads per workgroup, one element per thread
      // workgroup: 256x1x1, grid: [ceil(8*T/256) - max(ceil(8*T/256), 65535) + 65535, ceil(ceil(8*T/256)/65535), 1]
      // bytes read: 32*T + 32*T
      // bytes written: 32*T
      // flops: 8*T
      struct Dims {
        T: u32,
      }

      @group(0) @binding(0) var<storage, read> a: array<f32>;
      @group(0) @binding(1) var<storage, read> b: array<f32>;
      @group(0) @binding(2) var<storage, read_write> out: array<f32>;
      @group(0) @binding(3) var<uniform> dims: Dims;

      @compute @workgroup_size(256, 1, 1)
      fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
        let wg: u32 = (wid.y * 65535u) + wid.x;
        let flat: u32 = (wg * 256u) + lid.x;
        if (flat < (dims.T * 8u)) {
          let i1: u32 = flat % 8u;
          let q1: u32 = flat / 8u;
          let a1: f32 = a[flat];
          let b1: f32 = b[i1];
          out[flat] = a1 + b1;
        }
      }
      "
    `);
  });

  it('emits enable f16, enable subgroups, the erf helper and -inf only where used', () => {
    const ks = lowerToKernels(graphOf(everyOpIr), lavapipeLimits).kernels;
    const src = (op: string): string => printWgsl(ks.find((k) => k.op === op) ?? ks[0]!);
    expect(src('cast')).toContain('enable f16;');
    expect(src('add')).not.toContain('enable f16;');
    expect(src('softmax')).toContain('enable subgroups;');
    expect(src('softmax')).toContain('bitcast<f32>(bits)');
    expect(src('gelu')).toContain('fn tfc_erf(x: f32) -> f32');
    expect(src('where')).toContain('tfc_neg_inf()');
  });

  it('initializes every var', () => {
    for (const k of lowerToKernels(graphOf(everyOpIr), lavapipeLimits).kernels) {
      for (const line of printWgsl(k).split('\n')) {
        if (/^\s*var [a-z_0-9]+:/.test(line)) expect(line).toMatch(/=/);
      }
    }
  });

  it('prints the same text twice', () => {
    const a = lowerToKernels(graphOf(everyOpIr), lavapipeLimits).kernels.map((k) => printWgsl(k)).join('\n');
    const b = lowerToKernels(graphOf(everyOpIr), lavapipeLimits).kernels.map((k) => printWgsl(k)).join('\n');
    expect(a).toBe(b);
  });
});
