/// <reference types="@webgpu/types" preserve="true" />
// A run's host-side inputs, checked before any upload: weights (shape, dtype, values) for
// loadWeights, and the run inputs that bind the dims (names, ranks, shapes, dtypes, ranges,
// device tensors). Every mistake is a RuntimeError with its TFC3xx code.
import { evalSize, type Plan, type PlanBuffer, weightSources } from '../kernel/plan/plan.js';
import { printSize } from '../kernel/plan/to-size.js';
import { isFloat, type DType } from '../graph/types.js';
import { checkValues, encodeValues, overflowOf, paddedBytes } from './convert.js';
import { RuntimeError } from './errors.js';
import { closest, printDims } from './plan-checks.js';
import { type HostTensor, type InputMap, isDeviceTensor, type RunOptions, type SessionOptions } from './session-types.js';

export function entriesOf<T>(m: ReadonlyMap<string, T> | Readonly<Record<string, T>>): [string, T][] {
  return m instanceof Map ? [...(m as ReadonlyMap<string, T>).entries()] : Object.entries(m as Record<string, T>);
}

/** Weight buffers are keyed by name, plus the row range for a chunk of a split weight. */
export function weightKey(b: PlanBuffer): string {
  return b.rows === undefined ? (b.name ?? '') : `${b.name ?? ''}[rows ${b.rows.start}:${b.rows.end}]`;
}

/** Elements [from, to) of `data`: a view for typed arrays, a copy otherwise. */
function rowsOf(data: ArrayLike<number>, from: number, to: number): ArrayLike<number> {
  if (ArrayBuffer.isView(data) && 'subarray' in data && typeof data.subarray === 'function') {
    return (data as unknown as { subarray(a: number, b: number): ArrayLike<number> }).subarray(from, to);
  }
  return Array.prototype.slice.call(data, from, to) as number[];
}

function product(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** One weight (or row chunk of a split weight, or part of a packed weight) ready to upload. */
export interface WeightUpload {
  readonly name: string;
  readonly key: string;
  readonly dtype: DType;
  readonly data: ArrayLike<number>;
  /** A part of a packed weight: written at element `offset` of a buffer of `elements`, one of `parts`. */
  readonly part?: { readonly offset: number; readonly elements: number; readonly parts: number };
}

/** Validates every given weight the plan uses (nothing is uploaded before all pass). */
export function checkWeights(planWeights: readonly PlanBuffer[], given: ReadonlyMap<string, HostTensor>): WeightUpload[] {
  const uploads: WeightUpload[] = [];
  const seen = new Set<string>();
  for (const b of planWeights) {
    const sources = weightSources(b); // a row chunk is checked against the whole tensor
    const elements = sources.reduce((s, x) => s + product(x.shape), 0);
    let offset = 0;
    for (const { name, shape } of sources) {
      const at = offset;
      offset += product(shape);
      const t = given.get(name);
      const seenKey = `${weightKey(b)}\u0000${name}`;
      if (t === undefined || seen.has(seenKey)) continue;
      seen.add(seenKey);
      if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
        throw new RuntimeError('weight', `weight '${name}' has shape [${t.shape.join(',')}], the model needs [${shape.join(',')}]`, 'TFC303');
      }
      if (t.data.length !== product(shape)) {
        throw new RuntimeError('weight', `weight '${name}' has ${t.data.length} values for shape [${shape.join(',')}]`, 'TFC303');
      }
      if (t.dtype !== undefined && t.dtype !== b.dtype && !(isFloat(t.dtype) && isFloat(b.dtype))) {
        throw new RuntimeError('weight', `weight '${name}' is ${t.dtype}, the model needs ${b.dtype}`, 'TFC303');
      }
      const bad = checkValues(b.dtype, t.data);
      if (bad !== undefined) throw new RuntimeError('weight', `weight '${name}': ${bad}`, 'TFC303');
      const over = t.dtype === b.dtype ? undefined : overflowOf(b.dtype, t.data);
      if (over !== undefined) throw new RuntimeError('weight', `weight '${name}' (${t.dtype ?? 'float'} data for ${b.dtype}): ${over}`, 'TFC315');
      if (b.parts !== undefined) {
        uploads.push({ name, key: weightKey(b), dtype: b.dtype, data: t.data, part: { offset: at, elements, parts: b.parts.length } });
        continue;
      }
      // A row chunk takes a view of its rows (subarray: no copy of the whole table).
      const row = product(shape.slice(1));
      const data = b.rows === undefined ? t.data : rowsOf(t.data, b.rows.start * row, b.rows.end * row);
      uploads.push({ name, key: weightKey(b), dtype: b.dtype, data });
    }
  }
  return uploads;
}

/** Binds dims from input shapes and validates the inputs; returns dims and encoded input bytes. */
export function prepareInputs(
  plan: Plan,
  inputs: InputMap,
  runOpts: RunOptions,
  inputRanges: SessionOptions['inputRanges'],
): { dims: Map<string, number>; bytes: Map<number, ArrayBuffer>; onDevice: Map<number, GPUBuffer> } {
  const planInputs = plan.buffers.filter((b) => b.kind === 'input');
  const given = new Map(entriesOf(inputs));
  const inputNames = planInputs.map((b) => b.name ?? '');
  for (const name of given.keys()) {
    if (!inputNames.includes(name)) {
      throw new RuntimeError('input', `'${name}' is not an input of model ${plan.model}${closest(name, inputNames)}`, 'TFC302');
    }
  }
  const dims = new Map<string, number>();
  const boundBy = new Map<string, string>();
  for (const [k, v] of runOpts.dims === undefined ? [] : entriesOf(runOpts.dims)) {
    if (!Number.isInteger(v) || v < 0) throw new RuntimeError('input', `dim ${k} = ${v} is not a non-negative integer`, 'TFC306');
    dims.set(k, v);
    boundBy.set(k, 'the dims option');
  }
  for (const b of planInputs) {
    const name = b.name ?? '';
    const t = given.get(name);
    if (t === undefined) {
      throw new RuntimeError('input', `input '${name}' is missing (model ${plan.model} needs ${inputNames.join(', ')})`, 'TFC302');
    }
    if (t.shape.length !== b.shape.length) {
      throw new RuntimeError(
        'input',
        `input '${name}' has rank ${t.shape.length} (shape [${t.shape.join(',')}]), the model needs ${b.dtype}[${b.shape.map(printSize).join(',')}]`,
        'TFC303',
      );
    }
    b.shape.forEach((e, axis) => {
      if (e.kind !== 'dim') return;
      const v = t.shape[axis] ?? 0;
      const prev = dims.get(e.name);
      if (prev === undefined) {
        dims.set(e.name, v);
        boundBy.set(e.name, `input '${name}' axis ${axis}`);
      } else if (prev !== v) {
        throw new RuntimeError(
          'input',
          `inputs disagree about dim ${e.name}: ${boundBy.get(e.name) ?? ''} says ${prev}, input '${name}' axis ${axis} says ${v}`,
          'TFC307',
        );
      }
    });
  }
  for (const d of plan.dims) {
    if (!dims.has(d)) {
      throw new RuntimeError('input', `dim ${d} has no value: no input shape binds it; pass it in the dims option`, 'TFC306');
    }
  }
  const bytes = new Map<number, ArrayBuffer>();
  const onDevice = new Map<number, GPUBuffer>();
  for (const b of planInputs) {
    const name = b.name ?? '';
    const t = given.get(name);
    if (t === undefined) continue;
    const want = b.shape.map((e) => evalSize(e, dims));
    if (t.shape.some((d, i) => d !== want[i])) {
      throw new RuntimeError(
        'input',
        `input '${name}' has shape [${t.shape.join(',')}], the model needs [${want.join(',')}] (${b.dtype}[${b.shape.map(printSize).join(',')}] at ${printDims(dims)})`,
        'TFC303',
      );
    }
    if (isDeviceTensor(t)) {
      const need = paddedBytes(b.dtype, product(want));
      if (t.dtype !== b.dtype) throw new RuntimeError('input', `input '${name}' is a ${t.dtype} device tensor, the model needs ${b.dtype}`, 'TFC303');
      if (t.buffer.size < need) {
        throw new RuntimeError('input', `input '${name}' is a device buffer of ${t.buffer.size} bytes, shape [${want.join(',')}] needs ${need}`, 'TFC303');
      }
      onDevice.set(b.id, t.buffer);
      continue;
    }
    if (t.data.length !== product(want)) {
      throw new RuntimeError('input', `input '${name}' has ${t.data.length} values for shape [${want.join(',')}]`, 'TFC303');
    }
    if (t.dtype !== undefined && t.dtype !== b.dtype && !(isFloat(t.dtype) && isFloat(b.dtype))) {
      throw new RuntimeError('input', `input '${name}' is ${t.dtype}, the model needs ${b.dtype}`, 'TFC303');
    }
    const bad = checkValues(b.dtype, t.data);
    if (bad !== undefined) throw new RuntimeError('input', `input '${name}' (${b.dtype}): ${bad}`, 'TFC303');
    const over = t.dtype === b.dtype ? undefined : overflowOf(b.dtype, t.data);
    if (over !== undefined) throw new RuntimeError('input', `input '${name}' (${t.dtype ?? 'float'} data for ${b.dtype}): ${over}`, 'TFC315');
    const range = inputRanges?.[name];
    if (range !== undefined) {
      for (let i = 0; i < t.data.length; i++) {
        const v = t.data[i] ?? 0;
        if (!(v >= range.min && v < range.maxExclusive)) {
          throw new RuntimeError(
            'input',
            `input '${name}' element ${i} is ${v}, outside [${range.min}, ${range.maxExclusive})`,
            'TFC309',
          );
        }
      }
    }
    bytes.set(b.id, encodeValues(b.dtype, t.data));
  }
  return { dims, bytes, onDevice };
}

