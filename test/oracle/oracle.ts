// Test helper for the PyTorch oracle: runs a script from test/oracle/ into a temp dir and reads
// its safetensors files. It has its own small reader (F64 included) so that the expected values
// reach the comparison without passing through src/io, the code under test.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DType } from '../../src/graph/types.js';
import type { Tensor64 } from '../../src/base/tensor.js';

/** Debian's python3-torch lives under the system python, not the pyenv one on PATH. */
export const python = '/usr/bin/python3';
const here = dirname(fileURLToPath(import.meta.url));

/** Why the oracle cannot run here, or undefined when it can. */
export function torchMissingReason(): string | undefined {
  const r = spawnSync(python, ['-c', 'import torch'], { encoding: 'utf8' });
  if (r.error !== undefined) return `${python} not found (${r.error.message})`;
  if (r.status !== 0) return `${python} cannot import torch (apt-get install python3-torch; .ci/install-system does)`;
  return undefined;
}

/** Runs test/oracle/<script> --out <fresh dir> ...args and returns the dir. Throws with stderr on failure. */
export function runOracle(script: string, args: readonly string[]): string {
  const out = mkdtempSync(join(tmpdir(), 'tfc-oracle-'));
  // The GPT-2 oracle and its helpers live in bench/oracle/ (the package ships them for tfc bench).
  const path = existsSync(join(here, script)) ? join(here, script) : join(here, '..', '..', 'bench', 'oracle', script);
  const r = spawnSync(python, [path, '--out', out, ...args], {
    encoding: 'utf8',
    env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' },
  });
  if (r.status !== 0) throw new Error(`${script} ${args.join(' ')} failed (${r.status}):\n${r.stderr}`);
  return out;
}

const fileDtypes: Readonly<Record<string, { readonly dtype: DType; readonly bytes: number }>> = {
  F64: { dtype: 'f32', bytes: 8 }, // the oracle's expected values: f64 data for an f32 output
  F32: { dtype: 'f32', bytes: 4 },
  I32: { dtype: 'i32', bytes: 4 },
  I8: { dtype: 'i8', bytes: 1 },
  I64: { dtype: 'i32', bytes: 8 },
  BOOL: { dtype: 'bool', bytes: 1 },
};

interface HeaderEntry {
  readonly dtype: string;
  readonly shape: readonly number[];
  readonly data_offsets: readonly [number, number];
}

/** Reads a safetensors file written by bench/oracle/st.py into float64 tensors, by name. */
export function readTensors(path: string): Map<string, Tensor64> {
  const bytes = readFileSync(path);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = Number(view.getBigUint64(0, true));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLen).toString('utf8')) as Record<string, HeaderEntry>;
  const base = 8 + headerLen;
  const out = new Map<string, Tensor64>();
  for (const [name, e] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const kind = fileDtypes[e.dtype];
    if (kind === undefined) throw new Error(`${path}: tensor ${name} has dtype ${e.dtype}, not read here`);
    const n = e.shape.reduce((a, b) => a * b, 1);
    const start = base + e.data_offsets[0];
    if (e.data_offsets[1] - e.data_offsets[0] !== n * kind.bytes) throw new Error(`${path}: tensor ${name} has the wrong byte size`);
    const data = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const at = start + i * kind.bytes;
      switch (e.dtype) {
        case 'F64':
          data[i] = view.getFloat64(at, true);
          break;
        case 'F32':
          data[i] = view.getFloat32(at, true);
          break;
        case 'I32':
          data[i] = view.getInt32(at, true);
          break;
        case 'I64':
          data[i] = Number(view.getBigInt64(at, true));
          break;
        case 'I8':
          data[i] = view.getInt8(at);
          break;
        default:
          data[i] = view.getUint8(at);
      }
    }
    out.set(name, { dtype: kind.dtype, shape: [...e.shape], data });
  }
  return out;
}

/** Reads DIR/<prefix>{weights,inputs,expected}.safetensors (weights are shared by every step). */
export function readOracle(dir: string, prefix = ''): {
  weights: Map<string, Tensor64>;
  inputs: Map<string, Tensor64>;
  expected: Map<string, Tensor64>;
} {
  return {
    weights: readTensors(join(dir, 'weights.safetensors')),
    inputs: readTensors(join(dir, `${prefix}inputs.safetensors`)),
    expected: readTensors(join(dir, `${prefix}expected.safetensors`)),
  };
}

/**
 * The error measure of the oracle tests: max |actual - expected| / max |expected| over the whole
 * tensor (relative to the tensor's scale, so elements near zero do not blow it up).
 * Infinity on a shape mismatch or a non-finite value.
 */
export function relError(actual: Tensor64, expected: Tensor64): number {
  if (actual.shape.length !== expected.shape.length || actual.shape.some((d, i) => d !== expected.shape[i])) return Infinity;
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < expected.data.length; i++) {
    const a = actual.data[i] ?? NaN;
    const b = expected.data[i] ?? NaN;
    if (!Number.isFinite(a) || !Number.isFinite(b)) return Infinity;
    diff = Math.max(diff, Math.abs(a - b));
    scale = Math.max(scale, Math.abs(b));
  }
  return scale === 0 ? diff : diff / scale;
}
