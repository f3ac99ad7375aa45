// `tfc bench attention`: one softmax attention layer (causal or full, f32 or f16) in tfc, ONNX
// Runtime Web and TensorFlow.js on the same adapter, checked against a float64 reference.
import type { HostTensor } from '../runtime/session.js';
import { targetLimitsOf } from '../runtime/target.js';
import { mhaAttentionOnnx, onnxType, plainAttentionOnnx, encodeF16 } from './bench-onnx.js';
import { benchDevice, ortRunner, tfcRunner, tfjsRunner, type Runner } from './bench-peers.js';
import { type CaseResult, type SystemResult, Progress, compare } from './bench-report.js';
import { type BenchOptions, type Contender, benchPlan, seeded, measureAll, skipped, wanted } from './bench.js';

export function attentionSource(heads: number, dh: number, causal: boolean, dtype: 'f32' | 'f16'): string {
  const body = causal
    ? `  s = q @ transpose(k) / sqrt(dh)\n  mask = grid[T, T](qi, ki) => ki <= qi\n  o = softmax(where(mask, s, -inf), axis=-1) @ v\n`
    : `  o = softmax(q @ transpose(k) / sqrt(dh), axis=-1) @ v\n`;
  return (
    `# tfc bench attention: ${causal ? 'causal' : 'full'} softmax attention, ${dtype}\n` +
    `config {\n  heads = ${heads}\n  dh = ${dh}\n}\n\ndims B, T\n\n` +
    `input q: ${dtype}[B, heads, T, dh]\ninput k: ${dtype}[B, heads, T, dh]\ninput v: ${dtype}[B, heads, T, dh]\n` +
    `output o: ${dtype}[B, heads, T, dh]\n\nmodel attention {\n${body}}\n`
  );
}

/** Query rows the reference checks: the first, the last and an even spread (all when T is small). */
export function checkedRows(T: number): number[] {
  if (T <= 64) return Array.from({ length: T }, (_, i) => i);
  const rows = new Set<number>([0, 1, T - 1]);
  for (let i = 0; i < 29; i++) rows.add(Math.floor(((i + 0.5) * T) / 29));
  return [...rows].sort((a, b) => a - b);
}

/**
 * Float64 attention on the given query rows of every (b, h): returns the flat indices into
 * [B, H, T, dh] and the reference values there.
 */
export function attentionReference(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  s: { B: number; H: number; T: number; dh: number; causal: boolean },
  rows: readonly number[],
): { at: number[]; want: Float64Array } {
  const { B, H, T, dh } = s;
  const at: number[] = [];
  const want: number[] = [];
  const scores = new Float64Array(T);
  const scale = 1 / Math.sqrt(dh);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const base = (b * H + h) * T * dh;
      for (const r of rows) {
        const n = s.causal ? r + 1 : T;
        let mx = -Infinity;
        for (let j = 0; j < n; j++) {
          let acc = 0;
          for (let c = 0; c < dh; c++) acc += (q[base + r * dh + c] ?? 0) * (k[base + j * dh + c] ?? 0);
          scores[j] = acc * scale;
          mx = Math.max(mx, scores[j] ?? 0);
        }
        let sum = 0;
        for (let j = 0; j < n; j++) {
          const e = Math.exp((scores[j] ?? 0) - mx);
          scores[j] = e;
          sum += e;
        }
        for (let c = 0; c < dh; c++) {
          let acc = 0;
          for (let j = 0; j < n; j++) acc += (scores[j] ?? 0) * (v[base + j * dh + c] ?? 0);
          at.push(base + r * dh + c);
          want.push(acc / sum);
        }
      }
    }
  return { at, want: Float64Array.from(want) };
}

/** [B, H, T, dh] <-> [B, T, H·dh] (the BSNH layout MultiHeadAttention takes). */
export function toBsnh(x: Float32Array, B: number, H: number, T: number, dh: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let t = 0; t < T; t++) for (let c = 0; c < dh; c++) out[((b * T + t) * H + h) * dh + c] = x[((b * H + h) * T + t) * dh + c] ?? 0;
  return out;
}

export function fromBsnh(x: Float32Array, B: number, H: number, T: number, dh: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let t = 0; t < T; t++) for (let c = 0; c < dh; c++) out[((b * H + h) * T + t) * dh + c] = x[((b * T + t) * H + h) * dh + c] ?? 0;
  return out;
}

function roundF16(x: Float32Array): Float32Array {
  const bits = new Uint16Array(encodeF16(x).buffer);
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const h = bits[i] ?? 0;
    const sgn = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 0x1f;
    const m = h & 0x3ff;
    out[i] = e === 0 ? sgn * m * 2 ** -24 : sgn * (1 + m / 1024) * 2 ** (e - 15);
  }
  return out;
}

export async function benchAttention(o: BenchOptions): Promise<CaseResult[]> {
  const dev = await benchDevice();
  const hasF16 = dev.features.has('shader-f16');
  const Ts = o.T ?? [256, 1024, 2048];
  const dhs = o.dh ?? [64, 128];
  const causals = o.causal ?? [true, false];
  const dtypes = o.dtypes ?? (hasF16 ? ['f32', 'f16'] : ['f32']);
  const systems = ['tfc', 'tfc --no-fuse', 'ort-mha', 'ort-plain', 'tfjs'].filter((s) => wanted(o, s));
  const combos: { T: number; dh: number; causal: boolean; dtype: 'f32' | 'f16' }[] = [];
  for (const dtype of dtypes) for (const dh of dhs) for (const causal of causals) for (const T of Ts) combos.push({ T, dh, causal, dtype });
  const progress = new Progress(combos.length * systems.length, o.err, o.isTty);
  const out: CaseResult[] = [];
  const B = 1;
  const H = o.heads;
  for (const c of combos) {
    const n = B * H * c.T * c.dh;
    let q = seeded(n, 1 + c.T);
    let k = seeded(n, 2 + c.T);
    let v = seeded(n, 3 + c.T);
    if (c.dtype === 'f16') [q, k, v] = [roundF16(q), roundF16(k), roundF16(v)];
    const ref = attentionReference(q, k, v, { B, H, T: c.T, dh: c.dh, causal: c.causal }, checkedRows(c.T));
    const check = (got: Float32Array): { maxAbsErr: number; relErr: number } => compare(got, ref.want, ref.at);
    // f32: a softmax-weighted mean of values in [-1, 1) stays within a few ulps; 1e-4 of max|o| is
    // loose enough for any summation order. f16 storage and arithmetic: 2e-2.
    const tol = c.dtype === 'f32' ? 1e-4 : 2e-2;
    const name = `attention T=${c.T} dh=${c.dh} ${c.causal ? 'causal' : 'full'} ${c.dtype}`;
    const label = `T=${c.T} dh=${c.dh}${c.causal ? ' causal' : ''} ${c.dtype}`;
    const contenders: (Contender | SystemResult)[] = [];
    const host = (x: Float32Array): HostTensor => ({ dtype: c.dtype, shape: [B, H, c.T, c.dh], data: x });
    const inputs = new Map<string, HostTensor>([
      ['q', host(q)],
      ['k', host(k)],
      ['v', host(v)],
    ]);
    const src = attentionSource(H, c.dh, c.causal, c.dtype);
    const elemType = c.dtype === 'f16' ? onnxType.float16 : onnxType.float;
    const shape = { B, heads: H, T: c.T, dh: c.dh, causal: c.causal, elemType };
    const ortData = (x: Float32Array): Float32Array | Uint16Array => (c.dtype === 'f16' ? new Uint16Array(encodeF16(x).buffer) : x);
    const ortType = c.dtype === 'f16' ? 'float16' : 'float32';
    for (const system of systems) {
      if (system === 'tfjs' && c.dtype === 'f16') {
        contenders.push(skipped(system, 'tfjs-backend-webgpu 4.22 has no float16 tensors'));
        continue;
      }
      if (c.dtype === 'f16' && system.startsWith('tfc') && !hasF16) {
        contenders.push(skipped(system, 'adapter has no shader-f16'));
        continue;
      }
      const make = async (): Promise<Runner> => {
        if (system.startsWith('tfc')) {
          const plan = benchPlan(src, `bench/attention-${c.dtype}.tfx`, new Map(), system === 'tfc', targetLimitsOf(dev));
          return tfcRunner({ system, plan, weights: new Map(), inputs, output: 'o' });
        }
        if (system === 'ort-mha') {
          const bs = (x: Float32Array): Float32Array | Uint16Array => ortData(toBsnh(x, B, H, c.T, c.dh));
          const dims = [B, c.T, H * c.dh];
          return ortRunner(
            system,
            mhaAttentionOnnx(shape),
            [
              { name: 'q', type: ortType, dims, data: bs(q) },
              { name: 'k', type: ortType, dims, data: bs(k) },
              { name: 'v', type: ortType, dims, data: bs(v) },
            ],
            'o',
            (x) => fromBsnh(x, B, H, c.T, c.dh),
          );
        }
        if (system === 'ort-plain') {
          const dims = [B, H, c.T, c.dh];
          return ortRunner(
            system,
            plainAttentionOnnx(shape),
            [
              { name: 'q', type: ortType, dims, data: ortData(q) },
              { name: 'k', type: ortType, dims, data: ortData(k) },
              { name: 'v', type: ortType, dims, data: ortData(v) },
            ],
            'o',
          );
        }
        const T = c.T;
        const scale = 1 / Math.sqrt(c.dh);
        return tfjsRunner(
          system,
          [q, k, v].map((data) => ({ shape: [B * H, T, c.dh], data, dtype: 'float32' as const })),
          (tf, [tq, tk, tv]) => {
            if (tq === undefined || tk === undefined || tv === undefined) throw new Error('tfjs: inputs');
            let s = tf.mul(tf.matMul(tq, tk, false, true), scale);
            if (c.causal) {
              const mask = tf.linalg.bandPart(tf.ones([T, T]), -1, 0);
              s = tf.where(tf.cast(mask, 'bool'), s, tf.fill(s.shape, -Infinity));
            }
            return tf.matMul(tf.softmax(s, -1), tv);
          },
        );
      };
      contenders.push({ system, make, check, tol });
    }
    const results = await measureAll(contenders, o, progress, label);
    // Visible query-key pairs: T^2, or T(T + 1)/2 causal; 2 FLOPs per pair and head element for QK^T and PV each.
    const pairs = c.causal ? (c.T * (c.T + 1)) / 2 : c.T * c.T;
    out.push({ suite: 'attention', name, params: { B, heads: H, T: c.T, dh: c.dh, causal: c.causal, dtype: c.dtype }, results, work: { flops: 4 * B * H * c.dh * pairs } });
  }
  progress.end();
  return out;
}

