// Shared by the WebGPU tests: one device per test file, and small builders for hand-written plans
// (the contract in src/kernel/plan/plan.ts), so the runtime is tested without the compiler.
import type { Plan, PlanBuffer, PlanKernel, SizeExpr } from '../../src/kernel/plan/plan.js';
import type { DType } from '../../src/graph/types.js';
import { afterAll, beforeAll } from 'vitest';
import { acquireDevice, type AcquiredDevice } from '../../src/runtime/device.js';
import type { RunOutput, Session } from '../../src/runtime/session.js';
import type { Tensor64 } from '../../src/base/tensor.js';


let shared: Promise<AcquiredDevice> | undefined;

/** The device for this test file (vitest forks one process per file); fails loudly without WebGPU. */
export function testDevice(): Promise<AcquiredDevice> {
  shared ??= acquireDevice();
  return shared;
}

export const c = (value: number): SizeExpr => ({ kind: 'const', value });
export const d = (name: string): SizeExpr => ({ kind: 'dim', name });
export const mul = (...args: SizeExpr[]): SizeExpr => ({ kind: 'mul', args });
export const add = (...args: SizeExpr[]): SizeExpr => ({ kind: 'add', args });
export const ceildiv = (num: SizeExpr, den: number): SizeExpr => ({ kind: 'ceildiv', num, den });

export function buffer(
  id: number,
  kind: PlanBuffer['kind'],
  dtype: DType,
  shape: readonly SizeExpr[],
  use: { name?: string; firstUse?: number; lastUse?: number; elements?: SizeExpr } = {},
): PlanBuffer {
  const b: PlanBuffer = {
    id,
    kind,
    dtype,
    elements: use.elements ?? (shape.length === 0 ? c(1) : mul(...shape)),
    shape,
    firstUse: use.firstUse ?? 0,
    lastUse: use.lastUse ?? 0,
    ...(use.name !== undefined ? { name: use.name } : {}),
  };
  return b;
}

export function kernel(
  name: string,
  wgsl: string,
  o: {
    workgroupSize: readonly [number, number, number];
    grid: readonly [SizeExpr, SizeExpr, SizeExpr];
    uniforms: readonly string[];
    uniformBinding: number;
    slots: readonly { binding: number; access: 'read' | 'read_write'; role: string }[];
    features?: readonly ('subgroups' | 'shader-f16')[];
  },
): PlanKernel {
  return {
    name,
    entryPoint: 'main',
    workgroupSize: o.workgroupSize,
    grid: o.grid,
    uniforms: o.uniforms,
    uniformBinding: o.uniformBinding,
    slots: o.slots,
    bytesRead: c(0),
    bytesWritten: c(0),
    flops: c(0),
    features: o.features ?? [],
    source: { wgsl },
    locs: [`${name}.test:1:1`],
  };
}

/** A plan whose steps each launch `kernel` with buffers bound to its slots in slot order. */
export function plan(
  model: string,
  dims: readonly string[],
  buffers: readonly PlanBuffer[],
  kernels: readonly PlanKernel[],
  steps: readonly { kernel: string; buffers: readonly number[] }[],
  outputs: readonly { name: string; buffer: number }[],
): Plan {
  return {
    model,
    dims,
    buffers,
    kernels,
    outputs,
    steps: steps.map((s) => {
      const k = kernels.find((x) => x.name === s.kernel);
      if (k === undefined) throw new Error(`no kernel ${s.kernel}`);
      return {
        kernel: s.kernel,
        locs: k.locs,
        bindings: k.slots.map((slot, i) => ({ binding: slot.binding, buffer: s.buffers[i] ?? -1, access: slot.access })),
      };
    }),
  };
}

// ---- Hand-written kernels -------------------------------------------------------------------

/** out[b,t,j] = a[b,t,j] + w[j] + c[t,0] with j < 5: broadcasting over a weight and a [T,1] input. */
export const addBiasWgsl = /* wgsl */ `
struct Dims { B: u32, T: u32 }
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> col: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> dims: Dims;
const D: u32 = 5u;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let n = dims.B * dims.T * D;
  let i = gid.x;
  if (i >= n) { return; }
  out[i] = a[i] + w[i % D] + col[(i / D) % dims.T];
}
`;

export function addBiasPlan(): Plan {
  const k = kernel('add_bias', addBiasWgsl, {
    workgroupSize: [64, 1, 1],
    grid: [ceildiv(mul(d('B'), d('T'), c(5)), 64), c(1), c(1)],
    uniforms: ['B', 'T'],
    uniformBinding: 4,
    slots: [
      { binding: 0, access: 'read', role: 'a' },
      { binding: 1, access: 'read', role: 'w' },
      { binding: 2, access: 'read', role: 'col' },
      { binding: 3, access: 'read_write', role: 'out' },
    ],
  });
  return plan(
    'add_bias',
    ['B', 'T'],
    [
      buffer(0, 'input', 'f32', [d('B'), d('T'), c(5)], { name: 'a' }),
      buffer(1, 'weight', 'f32', [c(5)], { name: 'w' }),
      buffer(2, 'input', 'f32', [d('T'), c(1)], { name: 'col' }),
      buffer(3, 'output', 'f32', [d('B'), d('T'), c(5)], { name: 'out' }),
    ],
    [k],
    [{ kernel: 'add_bias', buffers: [0, 1, 2, 3] }],
    [{ name: 'out', buffer: 3 }],
  );
}

/** C[M,N] = A[M,K] @ B[K,N]: 16x16 tiles staged in workgroup memory, bounds-checked edges. */
export const matmulWgsl = /* wgsl */ `
struct Dims { M: u32, K: u32, N: u32 }
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<uniform> dims: Dims;
var<workgroup> tileA: array<array<f32, 16>, 16>;
var<workgroup> tileB: array<array<f32, 16>, 16>;
@compute @workgroup_size(16, 16, 1)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let row = wg.y * 16u + lid.y;
  let col = wg.x * 16u + lid.x;
  var acc = 0.0f;
  let tiles = (dims.K + 15u) / 16u;
  for (var t = 0u; t < tiles; t++) {
    let ka = t * 16u + lid.x;
    var va = 0.0f;
    if (row < dims.M && ka < dims.K) { va = a[row * dims.K + ka]; }
    tileA[lid.y][lid.x] = va;
    let kb = t * 16u + lid.y;
    var vb = 0.0f;
    if (kb < dims.K && col < dims.N) { vb = b[kb * dims.N + col]; }
    tileB[lid.y][lid.x] = vb;
    workgroupBarrier();
    for (var k = 0u; k < 16u; k++) {
      acc += tileA[lid.y][k] * tileB[k][lid.x];
    }
    workgroupBarrier();
  }
  if (row < dims.M && col < dims.N) { c[row * dims.N + col] = acc; }
}
`;

export function matmulPlan(): Plan {
  const k = kernel('matmul_tiled', matmulWgsl, {
    workgroupSize: [16, 16, 1],
    grid: [ceildiv(d('N'), 16), ceildiv(d('M'), 16), c(1)],
    uniforms: ['M', 'K', 'N'],
    uniformBinding: 3,
    slots: [
      { binding: 0, access: 'read', role: 'a' },
      { binding: 1, access: 'read', role: 'b' },
      { binding: 2, access: 'read_write', role: 'c' },
    ],
  });
  return plan(
    'matmul',
    ['M', 'K', 'N'],
    [
      buffer(0, 'input', 'f32', [d('M'), d('K')], { name: 'a' }),
      buffer(1, 'input', 'f32', [d('K'), d('N')], { name: 'b' }),
      buffer(2, 'output', 'f32', [d('M'), d('N')], { name: 'c' }),
    ],
    [k],
    [{ kernel: 'matmul_tiled', buffers: [0, 1, 2] }],
    [{ name: 'c', buffer: 2 }],
  );
}

/** y[i] = 2 * x[i] + 1 for i < N. */
export const affineWgsl = /* wgsl */ `
struct Dims { N: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> dims: Dims;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  if (gid.x < dims.N) { y[gid.x] = 2.0f * x[gid.x] + 1.0f; }
}
`;

/**
 * x -> t1 -> ... -> t(links-1) -> out through `links` affine steps; temp i is written by step i-1
 * and read by step i. `tempElements` overrides the temps' size formula (the limit test).
 */
export function chainPlan(links: number, tempElements?: SizeExpr): Plan {
  const k = kernel('affine', affineWgsl, {
    workgroupSize: [64, 1, 1],
    grid: [ceildiv(d('N'), 64), c(1), c(1)],
    uniforms: ['N'],
    uniformBinding: 2,
    slots: [
      { binding: 0, access: 'read', role: 'x' },
      { binding: 1, access: 'read_write', role: 'y' },
    ],
  });
  const buffers: PlanBuffer[] = [buffer(0, 'input', 'f32', [d('N')], { name: 'x', firstUse: 0, lastUse: 0 })];
  for (let i = 1; i < links; i++) {
    buffers.push(
      buffer(i, 'temp', 'f32', [d('N')], { firstUse: i - 1, lastUse: i, ...(tempElements ? { elements: tempElements } : {}) }),
    );
  }
  buffers.push(buffer(links, 'output', 'f32', [d('N')], { name: 'y', firstUse: links - 1, lastUse: links - 1 }));
  const steps = Array.from({ length: links }, (_, i) => ({ kernel: 'affine', buffers: [i, i + 1] }));
  return plan('chain', ['N'], buffers, [k], steps, [{ name: 'y', buffer: links }]);
}

/** out[b,t,j] = table[tokens[b,t], j] with a [11, 3] table: an i32 input with a value range. */
export const gatherWgsl = /* wgsl */ `
struct Dims { B: u32, T: u32 }
@group(0) @binding(0) var<storage, read> tokens: array<i32>;
@group(0) @binding(1) var<storage, read> table: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> dims: Dims;
const D: u32 = 3u;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x;
  if (i >= dims.B * dims.T * D) { return; }
  out[i] = table[u32(tokens[i / D]) * D + i % D];
}
`;

export function gatherPlan(): Plan {
  const k = kernel('gather', gatherWgsl, {
    workgroupSize: [64, 1, 1],
    grid: [ceildiv(mul(d('B'), d('T'), c(3)), 64), c(1), c(1)],
    uniforms: ['B', 'T'],
    uniformBinding: 3,
    slots: [
      { binding: 0, access: 'read', role: 'tokens' },
      { binding: 1, access: 'read', role: 'table' },
      { binding: 2, access: 'read_write', role: 'out' },
    ],
  });
  return plan(
    'gather',
    ['B', 'T'],
    [
      buffer(0, 'input', 'i32', [d('B'), d('T')], { name: 'tokens' }),
      buffer(1, 'weight', 'f32', [c(11), c(3)], { name: 'table' }),
      buffer(2, 'output', 'f32', [d('B'), d('T'), c(3)], { name: 'out' }),
    ],
    [k],
    [{ kernel: 'gather', buffers: [0, 1, 2] }],
    [{ name: 'out', buffer: 2 }],
  );
}

/** y[i] = x[i] * 2 in f16 storage and arithmetic (needs shader-f16). */
export const halfWgsl = /* wgsl */ `
enable f16;
struct Dims { N: u32 }
@group(0) @binding(0) var<storage, read> x: array<f16>;
@group(0) @binding(1) var<storage, read_write> y: array<f16>;
@group(0) @binding(2) var<uniform> dims: Dims;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  if (gid.x < dims.N) { y[gid.x] = x[gid.x] * 2.0h; }
}
`;

export function halfPlan(): Plan {
  const k = kernel('double_f16', halfWgsl, {
    workgroupSize: [64, 1, 1],
    grid: [ceildiv(d('N'), 64), c(1), c(1)],
    uniforms: ['N'],
    uniformBinding: 2,
    slots: [
      { binding: 0, access: 'read', role: 'x' },
      { binding: 1, access: 'read_write', role: 'y' },
    ],
    features: ['shader-f16'],
  });
  return plan(
    'half',
    ['N'],
    [buffer(0, 'input', 'f16', [d('N')], { name: 'x' }), buffer(1, 'output', 'f16', [d('N')], { name: 'y' })],
    [k],
    [{ kernel: 'double_f16', buffers: [0, 1] }],
    [{ name: 'y', buffer: 1 }],
  );
}

export { seeded } from '../helpers/seeded.js';

/** A run's outputs as float64 tensors (to feed the interpreter or the next step). */
export const asTensors = (outputs: ReadonlyMap<string, RunOutput>): Map<string, Tensor64> =>
  new Map([...outputs].map(([k, o]) => [k, { dtype: o.dtype, shape: o.shape, data: Float64Array.from(o.data) }]));

/** present.* outputs renamed past.*: the next step's KV cache. */
export function cacheFrom(outputs: ReadonlyMap<string, Tensor64>): Map<string, Tensor64> {
  const past = new Map<string, Tensor64>();
  for (const [name, t] of outputs) if (name.startsWith('present.')) past.set(`past.${name.slice('present.'.length)}`, t);
  return past;
}

/**
 * Registers this test file's hooks: the device before the first test, and disposal of every
 * session pushed to `sessions` after the last. `dev` throws if read before beforeAll ran.
 */
export function deviceAndSessions(): { readonly dev: AcquiredDevice; readonly sessions: Session[] } {
  let dev: AcquiredDevice | undefined;
  const sessions: Session[] = [];
  beforeAll(async () => {
    dev = await testDevice();
  });
  afterAll(() => {
    for (const s of sessions) s.dispose();
  });
  return {
    get dev(): AcquiredDevice {
      if (dev === undefined) throw new Error('the test device is acquired in beforeAll');
      return dev;
    },
    sessions,
  };
}
