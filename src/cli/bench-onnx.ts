// A minimal ONNX writer for `tfc bench`: encodes ModelProto protobuf bytes by hand (no `onnx`
// package exists here) for the attention peers: the plain graph (MatMul, Mul, Add, Softmax, MatMul)
// and one `com.microsoft` MultiHeadAttention node. Field numbers are from onnx/onnx.proto3.

/** ONNX TensorProto.DataType values used here. */
export const onnxType = { float: 1, float16: 10 } as const;

class Pb {
  private readonly parts: Uint8Array[] = [];
  private static varint(n: number | bigint): Uint8Array {
    let v = BigInt.asUintN(64, BigInt(n));
    const out: number[] = [];
    do {
      let b = Number(v & 0x7fn);
      v >>= 7n;
      if (v !== 0n) b |= 0x80;
      out.push(b);
    } while (v !== 0n);
    return Uint8Array.from(out);
  }
  private key(field: number, wire: number): void {
    this.parts.push(Pb.varint((field << 3) | wire));
  }
  int(field: number, n: number): this {
    this.key(field, 0);
    this.parts.push(Pb.varint(n));
    return this;
  }
  float(field: number, f: number): this {
    this.key(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, f, true);
    this.parts.push(b);
    return this;
  }
  bytes(field: number, b: Uint8Array): this {
    this.key(field, 2);
    this.parts.push(Pb.varint(b.length), b);
    return this;
  }
  str(field: number, s: string): this {
    return this.bytes(field, new TextEncoder().encode(s));
  }
  msg(field: number, m: Pb): this {
    return this.bytes(field, m.finish());
  }
  finish(): Uint8Array {
    const n = this.parts.reduce((a, p) => a + p.length, 0);
    const out = new Uint8Array(n);
    let o = 0;
    for (const p of this.parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }
}

export type OnnxAttr =
  | { readonly kind: 'int'; readonly value: number }
  | { readonly kind: 'float'; readonly value: number }
  | { readonly kind: 'ints'; readonly value: readonly number[] };

export interface OnnxNode {
  readonly op: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly domain?: string;
  readonly attrs?: Readonly<Record<string, OnnxAttr>>;
}

export interface OnnxValue {
  readonly name: string;
  readonly elemType: number;
  readonly shape: readonly number[];
}

export interface OnnxInitializer {
  readonly name: string;
  readonly elemType: number;
  readonly shape: readonly number[];
  readonly raw: Uint8Array;
}

export interface OnnxGraph {
  readonly name: string;
  readonly nodes: readonly OnnxNode[];
  readonly inputs: readonly OnnxValue[];
  readonly outputs: readonly OnnxValue[];
  readonly initializers?: readonly OnnxInitializer[];
  /** Extra opset domains (the default domain is always imported at `opset`). */
  readonly domains?: readonly string[];
  readonly opset?: number;
}

function valueInfo(v: OnnxValue): Pb {
  const shape = new Pb();
  for (const d of v.shape) shape.msg(1, new Pb().int(1, d));
  const tensor = new Pb().int(1, v.elemType).msg(2, shape);
  return new Pb().str(1, v.name).msg(2, new Pb().msg(1, tensor));
}

/** Serializes a graph as an ONNX ModelProto (IR version 8). */
export function encodeOnnx(g: OnnxGraph): Uint8Array {
  const graph = new Pb();
  for (const n of g.nodes) {
    const node = new Pb();
    for (const i of n.inputs) node.str(1, i);
    for (const o of n.outputs) node.str(2, o);
    node.str(4, n.op);
    for (const [name, a] of Object.entries(n.attrs ?? {})) {
      const attr = new Pb().str(1, name);
      if (a.kind === 'int') attr.int(3, a.value).int(20, 2);
      else if (a.kind === 'float') attr.float(2, a.value).int(20, 1);
      else {
        for (const v of a.value) attr.int(8, v);
        attr.int(20, 7);
      }
      node.msg(5, attr);
    }
    if (n.domain !== undefined) node.str(7, n.domain);
    graph.msg(1, node);
  }
  graph.str(2, g.name);
  for (const t of g.initializers ?? []) {
    const tp = new Pb();
    for (const d of t.shape) tp.int(1, d);
    tp.int(2, t.elemType).str(8, t.name).bytes(9, t.raw);
    graph.msg(5, tp);
  }
  for (const v of g.inputs) graph.msg(11, valueInfo(v));
  for (const v of g.outputs) graph.msg(12, valueInfo(v));
  const model = new Pb().int(1, 8).str(2, 'tfc-bench');
  model.msg(8, new Pb().str(1, '').int(2, g.opset ?? 17));
  for (const d of g.domains ?? []) model.msg(8, new Pb().str(1, d).int(2, 1));
  model.msg(7, graph);
  return model.finish();
}

export interface AttentionShape {
  readonly B: number;
  readonly heads: number;
  readonly T: number;
  readonly dh: number;
  readonly causal: boolean;
  readonly elemType: number;
}

/**
 * softmax(q @ kᵀ · scale + mask) @ v on [B, H, T, dh] inputs, the way torch.onnx exports it; the
 * causal mask is an additive [T, T] initializer (0 or -inf).
 */
export function plainAttentionOnnx(s: AttentionShape): Uint8Array {
  const qkv = [s.B, s.heads, s.T, s.dh];
  const half = s.elemType === onnxType.float16;
  const scalar = (name: string, v: number): OnnxInitializer => ({ name, elemType: s.elemType, shape: [], raw: encodeScalar(v, half) });
  const nodes: OnnxNode[] = [{ op: 'Transpose', inputs: ['k'], outputs: ['kt'], attrs: { perm: { kind: 'ints', value: [0, 1, 3, 2] } } }];
  const inits: OnnxInitializer[] = [scalar('scale', 1 / Math.sqrt(s.dh))];
  nodes.push({ op: 'MatMul', inputs: ['q', 'kt'], outputs: ['s0'] }, { op: 'Mul', inputs: ['s0', 'scale'], outputs: ['s1'] });
  let scores = 's1';
  if (s.causal) {
    const mask = new Float32Array(s.T * s.T);
    for (let i = 0; i < s.T; i++) for (let j = i + 1; j < s.T; j++) mask[i * s.T + j] = -Infinity;
    inits.push({ name: 'mask', elemType: s.elemType, shape: [s.T, s.T], raw: half ? encodeF16(mask) : new Uint8Array(mask.buffer) });
    nodes.push({ op: 'Add', inputs: ['s1', 'mask'], outputs: ['s2'] });
    scores = 's2';
  }
  nodes.push({ op: 'Softmax', inputs: [scores], outputs: ['p'], attrs: { axis: { kind: 'int', value: -1 } } });
  nodes.push({ op: 'MatMul', inputs: ['p', 'v'], outputs: ['o'] });
  return encodeOnnx({
    name: 'attention',
    nodes,
    inputs: [
      { name: 'q', elemType: s.elemType, shape: qkv },
      { name: 'k', elemType: s.elemType, shape: qkv },
      { name: 'v', elemType: s.elemType, shape: qkv },
    ],
    outputs: [{ name: 'o', elemType: s.elemType, shape: qkv }],
    initializers: inits,
  });
}

/**
 * One com.microsoft MultiHeadAttention node: query/key/value [B, T, H·dh] (BSNH packed),
 * output [B, T, H·dh]; `unidirectional=1` makes it causal.
 */
export function mhaAttentionOnnx(s: AttentionShape): Uint8Array {
  const bsd = [s.B, s.T, s.heads * s.dh];
  const attrs: Record<string, OnnxAttr> = { num_heads: { kind: 'int', value: s.heads }, scale: { kind: 'float', value: 1 / Math.sqrt(s.dh) } };
  if (s.causal) attrs['unidirectional'] = { kind: 'int', value: 1 };
  return encodeOnnx({
    name: 'mha',
    nodes: [{ op: 'MultiHeadAttention', domain: 'com.microsoft', inputs: ['q', 'k', 'v'], outputs: ['o'], attrs }],
    inputs: [
      { name: 'q', elemType: s.elemType, shape: bsd },
      { name: 'k', elemType: s.elemType, shape: bsd },
      { name: 'v', elemType: s.elemType, shape: bsd },
    ],
    outputs: [{ name: 'o', elemType: s.elemType, shape: bsd }],
    domains: ['com.microsoft'],
  });
}

function encodeScalar(v: number, half: boolean): Uint8Array {
  return half ? encodeF16(Float32Array.of(v)) : new Uint8Array(Float32Array.of(v).buffer);
}

/** f32 -> IEEE half bits (round to nearest even), little-endian bytes. */
export function encodeF16(x: Float32Array): Uint8Array {
  const out = new Uint16Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = f16Bits(x[i] ?? 0);
  return new Uint8Array(out.buffer);
}

export function f16Bits(v: number): number {
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  f[0] = v;
  const x = u[0] ?? 0;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    return sign | (half + (rem > mid || (rem === mid && (half & 1) === 1) ? 1 : 0));
  }
  const half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  return sign | (half + (rem > 0x1000 || (rem === 0x1000 && (half & 1) === 1) ? 1 : 0));
}
