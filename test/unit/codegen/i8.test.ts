// How the printers spell i8 storage (src/kernel/ir/ir.ts ScalarType 'i8'): WGSL packs four
// elements to a u32 word, read through a sign-extending helper and written through an atomic
// clear-and-set of the element's byte; CUDA uses `signed char` buffers. Casts to i8 saturate.
import { describe, expect, it } from 'vitest';
import { lowerToKernels } from '../../../src/kernel/lower/lower.js';
import { cudaLimits, lavapipeLimits } from '../../../src/kernel/schedule/schedule.js';
import { verifyKernel, verifyKernels } from '../../../src/kernel/ir/verify.js';
import { printWgsl } from '../../../codegen/wgsl/print.js';
import { printCuda } from '../../../codegen/cuda/print.js';
import { graphOf } from '../kernel/helpers.js';
import { evalSize } from '../../../src/kernel/plan/plan.js';

const quantIr = `graph q(T) {
  %0 = input {name="x"} : f32[T,6]  loc(q.tfx:1:1)
  %1 = cast %0 {to=i8} : i8[T,6]  loc(q.tfx:2:5)
  %2 = cast %1 {to=f32} : f32[T,6]  loc(q.tfx:3:5)
  output "q" = %1  loc(q.tfx:4:1)
  output "y" = %2  loc(q.tfx:5:1)
}
`;

describe('i8 buffers in the printers', () => {
  const p = lowerToKernels(graphOf(quantIr), lavapipeLimits);
  const [write, read] = p.kernels;
  if (write === undefined || read === undefined) throw new Error('two kernels expected');

  it('lowers to valid kernels with i8 slots, i8 traffic one byte per element', () => {
    expect(write.buffers.map((b) => `${b.role} ${b.access} ${b.type}`)).toEqual(['x read f32', 'out read_write i8']);
    expect(read.buffers.map((b) => `${b.role} ${b.access} ${b.type}`)).toEqual(['x read i8', 'out read_write f32']);
    expect(verifyKernels(p, lavapipeLimits)).toEqual([]);
    const T = new Map([['T', 5]]);
    expect(evalSize(write.traffic.bytesWritten, T)).toBe(30);
    expect(evalSize(read.traffic.bytesRead, T)).toBe(30);
  });

  it('the verifier refuses i8 vector slots and i8 workgroup arrays (i8 is scalar global storage)', () => {
    const bad = { ...read, buffers: read.buffers.map((b) => (b.type === 'i8' ? { ...b, vector: 4 as const } : b)), shared: [{ name: 'tile', type: 'i8' as const, length: 4 }] };
    const errs = verifyKernel(bad, lavapipeLimits);
    expect(errs).toContain(`${read.name}: buffer x holds i8 and is read as vectors (i8 is scalar access only)`);
    expect(errs).toContain(`${read.name}: workgroup array tile holds i8 (i8 is a global storage type)`);
  });

  it('WGSL: a written i8 binding is array<atomic<u32>>, set byte by byte; a read one is array<u32>, sign-extended', () => {
    const w = printWgsl(write);
    expect(w).toContain('var<storage, read_write> out: array<atomic<u32>>;');
    expect(w).toContain('fn out_set_i8(i: u32, x: i32) {\n  let shift: u32 = (i & 3u) * 8u;\n  atomicAnd(&out[i >> 2u], ~(0xffu << shift));\n  atomicOr(&out[i >> 2u], (bitcast<u32>(x) & 0xffu) << shift);\n}');
    // The store saturates: i32() truncates toward zero (WGSL clamps out-of-range floats), clamp to -128..127.
    expect(w).toMatch(/out_set_i8\(flat, clamp\(i32\(\w+\), -128i, 127i\)\);/);
    const r = printWgsl(read);
    expect(r).toContain('var<storage, read> x: array<u32>;');
    expect(r).toContain('fn x_i8(i: u32) -> i32 {\n  return extractBits(bitcast<i32>(x[i >> 2u]), (i & 3u) * 8u, 8u);\n}');
    expect(r).toMatch(/let (\w+): i32 = i32\(x_i8\(flat\)\);\n\s+out\[flat\] = f32\(\1\);/);
  });

  it('CUDA: signed char buffers, a clamped conversion before the narrowing', () => {
    const c = lowerToKernels(graphOf(quantIr), cudaLimits).kernels.map((k) => printCuda(k));
    expect(c[0]).toContain('signed char* __restrict__ out');
    expect(c[0]).toMatch(/out\[flat\] = \(signed char\)\(fminf\(fmaxf\(\w+, -128\.0f\), 127\.0f\)\);/);
    expect(c[1]).toContain('const signed char* __restrict__ x');
  });
});
