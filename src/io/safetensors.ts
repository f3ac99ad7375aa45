// Safetensors reading and writing: the data boundary of `tfc run`. Every byte of a file is
// validated once here (header, dtypes, shapes, offsets); a bad file is a TFC301 diagnostic that
// names the file and the tensor, never a crash. Values become float64 Tensor64s (src/ops/define.ts).
//
// Format (https://github.com/huggingface/safetensors): u64 little-endian header length N, N bytes
// of UTF-8 JSON `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {k: v}}`,
// then the data buffer; offsets are relative to the buffer, which must be indexed without holes.
import { diag, type Diagnostic } from '../diag/diagnostic.js';
import type { Span } from '../diag/span.js';
import type { Tensor64 } from '../base/tensor.js';
import { bf16Bits, bf16FromBits, f16Bits, f16FromBits } from '../base/half.js';
import type { DType } from '../graph/types.js';

/** The dtypes a file may hold. F64 and I64 are read only (as f32 and i32). */
export type FileDType = 'F32' | 'F16' | 'BF16' | 'I32' | 'I8' | 'BOOL' | 'F64' | 'I64';

const fileDTypeBytes: Readonly<Record<FileDType, number>> = { F32: 4, F16: 2, BF16: 2, I32: 4, I8: 1, BOOL: 1, F64: 8, I64: 8 };

/** The model dtype a file dtype is read as. */
export const fileDTypeToDType: Readonly<Record<FileDType, DType>> = {
  F32: 'f32',
  F16: 'f16',
  BF16: 'bf16',
  I32: 'i32',
  I8: 'i8',
  BOOL: 'bool',
  F64: 'f32',
  I64: 'i32',
};

const dtypeToFileDType: Readonly<Record<DType, FileDType>> = { f32: 'F32', f16: 'F16', bf16: 'BF16', i32: 'I32', i8: 'I8', bool: 'BOOL' };

/** Headers above this size are rejected before parsing (the reference implementation uses 100 MB). */
const maxHeaderBytes = 100_000_000;

/** A malformed file: carries the TFC301 diagnostic (naming the file and, where known, the tensor). */
export class SafetensorsError extends Error {
  constructor(readonly diagnostic: Diagnostic) {
    super(diagnostic.message);
    this.name = 'SafetensorsError';
  }
}

export interface SafetensorsFile {
  readonly tensors: Map<string, Tensor64>;
  /** The `__metadata__` string map, empty when absent. */
  readonly metadata: Readonly<Record<string, string>>;
  /** The dtype each tensor has in the file (F64 and I64 are read as f32 and i32). */
  readonly fileDTypes: ReadonlyMap<string, FileDType>;
}

/** A span that names only a file: rendered as `file: error[...]`. */
export function fileSpan(file: string): Span {
  return { file, line: 0, col: 0, endLine: 0, endCol: 0 };
}

function fail(file: string, message: string): never {
  throw new SafetensorsError(diag('TFC301', fileSpan(file), message));
}

function isFileDType(s: string): s is FileDType {
  return Object.prototype.hasOwnProperty.call(fileDTypeBytes, s);
}

function isNonNegInt(x: unknown): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
}

interface Entry {
  readonly name: string;
  readonly dtype: FileDType;
  readonly shape: readonly number[];
  readonly begin: number;
  readonly end: number;
}

/** Parses and validates a whole safetensors file; throws SafetensorsError on any defect. */
export function readSafetensors(bytes: Uint8Array, file: string): SafetensorsFile {
  if (bytes.length < 8) fail(file, `malformed safetensors file ${file}: ${bytes.length} bytes, shorter than the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = view.getBigUint64(0, true);
  if (headerLen > BigInt(bytes.length - 8)) {
    fail(file, `malformed safetensors file ${file}: header length ${headerLen} runs past the end of the file (${bytes.length - 8} bytes after the length)`);
  }
  const n = Number(headerLen);
  if (n > maxHeaderBytes) fail(file, `malformed safetensors file ${file}: header of ${n} bytes is larger than the ${maxHeaderBytes}-byte limit`);
  let headerText: string;
  try {
    headerText = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + n));
  } catch {
    fail(file, `malformed safetensors file ${file}: header is not valid UTF-8`);
  }
  let header: unknown;
  try {
    header = JSON.parse(headerText);
  } catch (e) {
    fail(file, `malformed safetensors file ${file}: header is not valid JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    fail(file, `malformed safetensors file ${file}: header must be a JSON object, found ${Array.isArray(header) ? 'an array' : typeof header}`);
  }
  const dataStart = 8 + n;
  const dataLen = bytes.length - dataStart;
  const metadata: Record<string, string> = {};
  const entries: Entry[] = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail(file, `malformed safetensors file ${file}: __metadata__ must be an object of strings`);
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(file, `malformed safetensors file ${file}: __metadata__ value "${k}" is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    const where = `tensor "${name}" in ${file}`;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail(file, `${where}: header entry must be an object with dtype, shape and data_offsets`);
    const obj = raw as Record<string, unknown>;
    for (const key of Object.keys(obj)) {
      if (key !== 'dtype' && key !== 'shape' && key !== 'data_offsets') fail(file, `${where}: unknown header field "${key}"`);
    }
    const dtype = obj['dtype'];
    if (typeof dtype !== 'string') fail(file, `${where}: dtype must be a string`);
    if (!isFileDType(dtype)) fail(file, `${where}: unsupported dtype "${dtype}" (expected one of ${Object.keys(fileDTypeBytes).join(', ')})`);
    const shape = obj['shape'];
    if (!Array.isArray(shape) || !shape.every(isNonNegInt)) fail(file, `${where}: shape must be a list of non-negative integers, found ${JSON.stringify(shape)}`);
    const offsets = obj['data_offsets'];
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegInt)) {
      fail(file, `${where}: data_offsets must be two non-negative integers, found ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    if (begin > end) fail(file, `${where}: data_offsets [${begin}, ${end}] end before they begin`);
    if (end > dataLen) fail(file, `${where}: data_offsets [${begin}, ${end}] run past the end of the ${dataLen}-byte data buffer`);
    let numel = 1;
    for (const d of shape as number[]) numel *= d;
    const want = numel * fileDTypeBytes[dtype];
    if (!Number.isSafeInteger(want) || end - begin !== want) {
      fail(file, `${where}: ${dtype}[${(shape as number[]).join(',')}] needs ${want} bytes but data_offsets [${begin}, ${end}] hold ${end - begin}`);
    }
    entries.push({ name, dtype, shape: shape as number[], begin, end });
  }
  // The buffer must be indexed exactly: no overlap, no hole, nothing after the last tensor.
  const byStart = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end || (a.name < b.name ? -1 : 1));
  let pos = 0;
  let prev: Entry | undefined;
  for (const e of byStart) {
    if (e.begin < pos && e.end > e.begin) {
      fail(file, `tensor "${e.name}" in ${file}: data_offsets [${e.begin}, ${e.end}] overlap tensor "${prev?.name ?? '?'}" (which ends at ${pos})`);
    }
    if (e.begin > pos) {
      fail(file, `tensor "${e.name}" in ${file}: data_offsets [${e.begin}, ${e.end}] leave a hole of ${e.begin - pos} bytes before it`);
    }
    if (e.end > pos) {
      pos = e.end;
      prev = e;
    }
  }
  if (pos !== dataLen) fail(file, `malformed safetensors file ${file}: ${dataLen - pos} bytes of trailing data after the last tensor`);

  const tensors = new Map<string, Tensor64>();
  const fileDTypes = new Map<string, FileDType>();
  for (const e of entries) {
    tensors.set(e.name, { dtype: fileDTypeToDType[e.dtype], shape: e.shape, data: decode(e, bytes.subarray(dataStart + e.begin, dataStart + e.end), file) });
    fileDTypes.set(e.name, e.dtype);
  }
  return { tensors, metadata, fileDTypes };
}

function decode(e: Entry, raw: Uint8Array, file: string): Float64Array {
  const size = fileDTypeBytes[e.dtype];
  const count = raw.length / size;
  const out = new Float64Array(count);
  const v = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  switch (e.dtype) {
    case 'F32':
      for (let i = 0; i < count; i++) out[i] = v.getFloat32(4 * i, true);
      break;
    case 'F64':
      for (let i = 0; i < count; i++) out[i] = v.getFloat64(8 * i, true);
      break;
    case 'F16':
      for (let i = 0; i < count; i++) out[i] = f16FromBits(v.getUint16(2 * i, true));
      break;
    case 'BF16':
      for (let i = 0; i < count; i++) out[i] = bf16FromBits(v.getUint16(2 * i, true));
      break;
    case 'I32':
      for (let i = 0; i < count; i++) out[i] = v.getInt32(4 * i, true);
      break;
    case 'I8':
      for (let i = 0; i < count; i++) out[i] = v.getInt8(i);
      break;
    case 'I64':
      for (let i = 0; i < count; i++) {
        const x = v.getBigInt64(8 * i, true);
        if (x < -2147483648n || x > 2147483647n) {
          fail(file, `tensor "${e.name}" in ${file}: I64 value ${x} at flat index ${i} does not fit in i32`);
        }
        out[i] = Number(x);
      }
      break;
    case 'BOOL':
      for (let i = 0; i < count; i++) {
        const b = v.getUint8(i);
        if (b > 1) fail(file, `tensor "${e.name}" in ${file}: BOOL byte ${b} at flat index ${i} is neither 0 nor 1`);
        out[i] = b;
      }
      break;
  }
  return out;
}

/**
 * Serializes tensors deterministically: header keys sorted, header padded with spaces to a
 * multiple of 8, data laid out by element size (largest first) then name, so every tensor
 * starts aligned to its element size. `dtypeOverride` re-types floating tensors (e.g. outputs
 * written as f32); integer and bool tensors keep their dtype.
 */
export function writeSafetensors(
  tensors: ReadonlyMap<string, Tensor64>,
  dtypeOverride?: DType,
  metadata?: Readonly<Record<string, string>>,
): Uint8Array {
  const items = [...tensors.entries()].map(([name, t]) => {
    const isFloat = t.dtype === 'f32' || t.dtype === 'f16' || t.dtype === 'bf16';
    const dtype = dtypeToFileDType[isFloat && dtypeOverride !== undefined ? dtypeOverride : t.dtype];
    let numel = 1;
    for (const d of t.shape) numel *= d;
    if (numel !== t.data.length) throw new RangeError(`tensor "${name}": shape [${t.shape.join(',')}] has ${numel} elements but data has ${t.data.length}`);
    return { name, t, dtype, bytes: numel * fileDTypeBytes[dtype] };
  });
  items.sort((a, b) => fileDTypeBytes[b.dtype] - fileDTypeBytes[a.dtype] || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const offsets = new Map<string, [number, number]>();
  let pos = 0;
  for (const it of items) {
    offsets.set(it.name, [pos, pos + it.bytes]);
    pos += it.bytes;
  }
  const header: Record<string, unknown> = {};
  if (metadata !== undefined && Object.keys(metadata).length > 0) {
    header['__metadata__'] = Object.fromEntries(Object.entries(metadata).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }
  for (const name of [...offsets.keys()].sort()) {
    const it = items.find((x) => x.name === name);
    if (it === undefined) continue;
    header[name] = { dtype: it.dtype, shape: it.t.shape, data_offsets: offsets.get(name) };
  }
  let headerBytes = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(headerBytes.length / 8) * 8;
  if (padded !== headerBytes.length) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(headerBytes);
    headerBytes = p;
  }
  const out = new Uint8Array(8 + headerBytes.length + pos);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  const base = 8 + headerBytes.length;
  for (const it of items) {
    const [begin] = offsets.get(it.name) ?? [0];
    encode(it.name, it.t.data, it.dtype, view, base + begin);
  }
  return out;
}

function encode(name: string, data: Float64Array, dtype: FileDType, v: DataView, at: number): void {
  switch (dtype) {
    case 'F32':
      for (let i = 0; i < data.length; i++) v.setFloat32(at + 4 * i, data[i] ?? 0, true);
      return;
    case 'F64':
      for (let i = 0; i < data.length; i++) v.setFloat64(at + 8 * i, data[i] ?? 0, true);
      return;
    case 'F16':
      for (let i = 0; i < data.length; i++) v.setUint16(at + 2 * i, f16Bits(data[i] ?? 0), true);
      return;
    case 'BF16':
      for (let i = 0; i < data.length; i++) v.setUint16(at + 2 * i, bf16Bits(data[i] ?? 0), true);
      return;
    case 'I32':
      for (let i = 0; i < data.length; i++) {
        const x = data[i] ?? 0;
        if (!Number.isInteger(x) || x < -2147483648 || x > 2147483647) throw new RangeError(`tensor "${name}": value ${x} at flat index ${i} is not an i32`);
        v.setInt32(at + 4 * i, x, true);
      }
      return;
    case 'I8':
      for (let i = 0; i < data.length; i++) {
        const x = data[i] ?? 0;
        if (!Number.isInteger(x) || x < -128 || x > 127) throw new RangeError(`tensor "${name}": value ${x} at flat index ${i} is not an i8`);
        v.setInt8(at + i, x);
      }
      return;
    case 'I64':
      for (let i = 0; i < data.length; i++) v.setBigInt64(at + 8 * i, BigInt(Math.trunc(data[i] ?? 0)), true);
      return;
    case 'BOOL':
      for (let i = 0; i < data.length; i++) v.setUint8(at + i, (data[i] ?? 0) !== 0 ? 1 : 0);
      return;
  }
}

// ---- 16-bit floats -------------------------------------------------------------------------
// The conversions are src/base/half.ts's (one implementation for the reader, the writer, the
// loaders' narrowing and the runtime's GPU buffers), under the names this module has exported.
export { bf16FromBits as bf16BitsToNumber, bf16Bits as numberToBf16Bits, f16FromBits as f16BitsToNumber, f16Bits as numberToF16Bits } from '../base/half.js';
