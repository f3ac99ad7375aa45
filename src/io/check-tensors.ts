// Checks loaded tensors against what a graph needs before anything runs (no partial loads):
// every input and weight present by name (TFC302), with its dtype and shape (TFC303; a float
// tensor may feed any float declaration: it converts at load, `declaredTensors`, and a value
// the narrower type cannot hold is TFC315), symbolic dims bound consistently from the inputs
// (TFC306, TFC307); extra tensors (TFC304) and NaN or infinity in weights (TFC308) are warnings. checkIndexRanges: gather indices inside the table
// (token ids below vocab, positions below the context, no empty id input), TFC309, before any
// target runs.
import { dimConstValue, dimEval, dimVars, printDim, type Dim } from '../base/dim.js';
import { diag, warning, type Diagnostic } from '../diag/diagnostic.js';
import type { Span } from '../diag/span.js';
import type { Graph, Node } from '../graph/ir.js';
import { type DType, type TensorType, isFloat } from '../graph/types.js';
import type { Tensor64 } from '../base/tensor.js';
import { getOp } from '../ops/catalog.js';
import { interpret } from '../interp/interpret.js';
import { bf16Bits, bf16FromBits, f16Bits, f16FromBits } from '../base/half.js';
import { fileSpan, type FileDType } from './safetensors.js';

/** One tensor the graph reads: an `input` or `weight` node. */
export interface NeededTensor {
  readonly kind: 'input' | 'weight';
  readonly name: string; // the safetensors name
  readonly type: TensorType;
  readonly loc: Span;
}

/** The inputs and weights of a graph, each name once, in node order. */
export function neededTensors(g: Graph): NeededTensor[] {
  const out: NeededTensor[] = [];
  const seen = new Set<string>();
  for (const n of g.nodes) {
    if (n.op !== 'input' && n.op !== 'weight') continue;
    const a = n.attrs['name'];
    if (a === undefined || a.kind !== 'str') continue;
    const key = `${n.op}:${a.value}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ kind: n.op, name: a.value, type: n.type, loc: n.loc });
  }
  return out;
}

export interface TensorSource {
  readonly file: string;
  readonly tensors: ReadonlyMap<string, Tensor64>;
  readonly fileDTypes?: ReadonlyMap<string, FileDType>;
}

export interface TensorCheckResult {
  readonly diagnostics: Diagnostic[];
  /** Dim values bound from the input shapes (and `preset`). */
  readonly dims: Map<string, number>;
}

function shapeText(shape: readonly number[]): string {
  return `[${shape.join(',')}]`;
}

function declText(t: TensorType): string {
  return `${t.dtype}[${t.shape.map((d) => printDim(d, true)).join(',')}]`;
}

/**
 * Binds dims from the input shapes, then checks every needed tensor. `preset` holds dims bound
 * on the command line (`--set T=16`); an input shape that disagrees with one is TFC307.
 */
export function checkTensors(
  needed: readonly NeededTensor[],
  inputs: TensorSource,
  weights: TensorSource,
  preset: ReadonlyMap<string, number> = new Map(),
): TensorCheckResult {
  const ds: Diagnostic[] = [];
  const dims = new Map(preset);
  const boundBy = new Map<string, string>();
  for (const k of preset.keys()) boundBy.set(k, '--set');
  const present = needed.filter((n) => {
    const src = n.kind === 'input' ? inputs : weights;
    const t = src.tensors.get(n.name);
    if (t === undefined) {
      const other = n.kind === 'input' ? weights : inputs;
      const hint = other.tensors.has(n.name) ? ` (it is in ${other.file}, the ${n.kind === 'input' ? 'weights' : 'inputs'} file)` : '';
      ds.push(diag('TFC302', n.loc, `${n.kind} "${n.name}" (${declText(n.type)}) is missing from ${src.file}${hint}`));
      return false;
    }
    if (t.dtype !== n.type.dtype && !(isFloat(t.dtype) && isFloat(n.type.dtype))) {
      const fd = src.fileDTypes?.get(n.name);
      ds.push(diag('TFC303', n.loc, `${n.kind} "${n.name}" in ${src.file} has dtype ${fd ?? t.dtype}, the model declares ${declText(n.type)}`));
      return false;
    }
    const over = t.dtype === n.type.dtype ? undefined : firstOverflow(t.data, n.type.dtype);
    if (over !== undefined) {
      const fd = src.fileDTypes?.get(n.name) ?? t.dtype;
      ds.push(diag('TFC315', n.loc, `${n.kind} "${n.name}" in ${src.file} is ${fd}, and its value ${t.data[over]} at flat index ${over} is beyond ${n.type.dtype}'s range (the model declares ${declText(n.type)}): it would load as infinity`));
      return false;
    }
    if (t.shape.length !== n.type.shape.length) {
      ds.push(diag('TFC303', n.loc, `${n.kind} "${n.name}" in ${src.file} has shape ${shapeText(t.shape)} (rank ${t.shape.length}), the model declares ${declText(n.type)} (rank ${n.type.shape.length})`));
      return false;
    }
    return true;
  });

  // Bind dims from inputs, then weights: first axes that are a single dim name, then axes with
  // one unknown (e.g. `P + T` once T is known), repeating until nothing changes.
  const pending: { n: NeededTensor; file: string; shape: readonly number[]; axis: number; dim: Dim; value: number }[] = [];
  for (const kind of ['input', 'weight'] as const) {
    const src = kind === 'input' ? inputs : weights;
    for (const n of present) {
      if (n.kind !== kind) continue;
      const t = src.tensors.get(n.name) as Tensor64;
      n.type.shape.forEach((dim, axis) => pending.push({ n, file: src.file, shape: t.shape, axis, dim, value: t.shape[axis] ?? 0 }));
    }
  }
  const failed = new Set<NeededTensor>();
  let progress = true;
  while (progress) {
    progress = false;
    for (let i = 0; i < pending.length; i++) {
      const p = pending[i];
      if (p === undefined) continue;
      const unknown = dimVars(p.dim).filter((v) => !dims.has(v));
      if (unknown.length === 0) {
        const want = dimConstValue(p.dim) ?? dimEval(p.dim, dims);
        if (want !== p.value && !failed.has(p.n)) {
          const vars = dimVars(p.dim);
          const why = vars.map((v) => `${v}=${dims.get(v)} (from ${boundBy.get(v)})`).join(', ');
          const code = vars.length === 0 ? 'TFC303' : 'TFC307';
          const decl = vars.length === 0 ? `, the model declares ${declText(p.n.type)}` : `, but axis ${p.axis} should be ${printDim(p.dim)} = ${want} with ${why}`;
          ds.push(diag(code, p.n.loc, `${p.n.kind} "${p.n.name}" in ${p.file} has shape ${shapeText(p.shape)}${decl}`));
          failed.add(p.n);
        }
        pending.splice(i, 1);
        i--;
        progress = true;
      } else if (unknown.length === 1) {
        const v = unknown[0] as string;
        const at = (x: number): number | undefined => dimEval(p.dim, new Map([...dims, [v, x]]));
        const f0 = at(0);
        const f1 = at(1);
        const f2 = at(2);
        if (f0 === undefined || f1 === undefined || f2 === undefined || f1 - f0 === 0 || f2 - f1 !== f1 - f0) continue; // not linear
        const x = (p.value - f0) / (f1 - f0);
        if (!Number.isInteger(x) || x < 0) continue; // stays pending: reported as unbound below
        dims.set(v, x);
        boundBy.set(v, `${p.n.kind} "${p.n.name}" axis ${p.axis}`);
        progress = true;
      }
    }
  }
  const unbound = new Set<string>();
  for (const p of pending) for (const v of dimVars(p.dim)) if (!dims.has(v)) unbound.add(v);
  for (const v of [...unbound].sort()) {
    const user = pending.find((p) => dimVars(p.dim).includes(v));
    const alone = user === undefined ? '' : ` (${user.n.kind} "${user.n.name}" axis ${user.axis} is ${printDim(user.dim)} = ${user.value})`;
    ds.push(diag('TFC306', user?.n.loc ?? fileSpan(inputs.file), `dimension ${v} has no value: no input binds it alone${alone}; bind it with --set ${v}=N`));
  }

  for (const n of present) {
    if (n.kind !== 'weight' || failed.has(n)) continue;
    const t = weights.tensors.get(n.name) as Tensor64;
    let bad = 0;
    let first = -1;
    for (let i = 0; i < t.data.length; i++) {
      if (!Number.isFinite(t.data[i] ?? 0)) {
        bad++;
        if (first < 0) first = i;
      }
    }
    if (bad > 0) ds.push(warning('TFC308', n.loc, `weight "${n.name}" in ${weights.file} holds ${bad} NaN or infinite value${bad === 1 ? '' : 's'} (first at flat index ${first})`));
  }

  for (const [src, kind] of [[inputs, 'input'], [weights, 'weight']] as const) {
    // One file may serve as both weights and inputs: then any needed name counts.
    const sameFile = inputs.file === weights.file;
    const names = new Set(needed.filter((n) => sameFile || n.kind === kind).map((n) => n.name));
    if (sameFile && kind === 'weight') continue;
    for (const name of [...src.tensors.keys()].sort()) {
      if (!names.has(name)) ds.push(warning('TFC304', fileSpan(src.file), `${src.file} holds tensor "${name}", which the model does not use as ${kind === 'input' ? 'an input' : 'a weight'}`));
    }
  }
  return { diagnostics: ds, dims };
}

/** The source a gather's index operand reads, through reshape and permute (which keep the values). */
function indexSource(g: Graph, id: number | undefined): Node | undefined {
  let n = id === undefined ? undefined : g.nodes[id];
  while (n !== undefined && (n.op === 'reshape' || n.op === 'permute')) n = g.nodes[n.operands[0] ?? -1];
  return n;
}

function sourceName(n: Node | undefined): string | undefined {
  const a = n?.attrs['name'];
  return a !== undefined && a.kind === 'str' ? a.value : undefined;
}

/** Most elements of one node that computeIndices evaluates (ids are [B, T]-sized; more is not ids). */
const MAX_INDEX_ELEMENTS = 1 << 20;

/**
 * The actual values of a gather's index expression when it is cheap to compute on the host: its
 * cone holds only inputs, constants, arange, grids, elementwise, movement and reduce ops (no
 * weights, matmuls, norms or fused ops) with at most MAX_INDEX_ELEMENTS elements per node. It is
 * run on the float64 interpreter, so any spelling is covered exactly (`arange(T) + 2`,
 * `grid[T](i) => i + P`, `tokens + 1`, `min(arange(T), 7)`: no false alarms from interval
 * over-approximation). Undefined when the expression is not of that kind or cannot be evaluated.
 */
function computeIndices(g: Graph, id: number, inputs: TensorSource, dims: ReadonlyMap<string, number>): { min: number; max: number; reads: string[] } | undefined {
  const cone = new Set<number>();
  const stack = [id];
  const reads: string[] = [];
  while (stack.length > 0) {
    const k = stack.pop() ?? -1;
    if (cone.has(k)) continue;
    const n = g.nodes[k];
    if (n === undefined) return undefined;
    const family = getOp(n.op)?.family;
    const cheap = n.op === 'input' || (family === 'source' && n.op !== 'weight') || family === 'elementwise' || family === 'movement' || family === 'reduce';
    if (!cheap) return undefined;
    let elements = 1;
    for (const d of n.type.shape) elements *= dimConstValue(d) ?? dimEval(d, dims) ?? Infinity;
    if (!(elements <= MAX_INDEX_ELEMENTS)) return undefined;
    if (n.op === 'input') {
      const name = sourceName(n);
      if (name === undefined || !inputs.tensors.has(name)) return undefined;
      if (!reads.includes(name)) reads.push(name);
    }
    cone.add(k);
    stack.push(...n.operands);
  }
  const ids = [...cone].sort((a, b) => a - b);
  const map = new Map(ids.map((k, i) => [k, i]));
  const nodes = ids.map((k, i) => {
    const n = g.nodes[k] as Node;
    return { ...n, id: i, operands: n.operands.map((o) => map.get(o) ?? -1) };
  });
  let t: Tensor64 | undefined;
  try {
    const sub: Graph = { name: g.name, dims: g.dims, nodes, outputs: [{ name: 'ids', value: map.get(id) ?? -1, loc: g.nodes[id]?.loc ?? fileSpan(inputs.file) }] };
    t = interpret(sub, { inputs: inputs.tensors, weights: new Map() }, { dims }).outputs.get('ids');
  } catch {
    return undefined; // the target's own run reports what is wrong with the inputs
  }
  if (t === undefined || t.data.length === 0) return undefined;
  let min = Infinity;
  let max = -Infinity;
  for (const v of t.data) {
    min = Math.min(min, v);
    max = Math.max(max, v);
  }
  return { min, max, reads };
}

/**
 * Gathers read rows `[0, rows)` of their table; an index outside reads another tensor's memory on
 * a GPU (or is clamped there), so indices are checked here, once, before any target runs (TFC309):
 * an input used as ids (`wte[tokens]`: every id below vocab), and `arange(start, end)` positions
 * (`wpe[arange(T)]`: T no longer than the context); any other index expression is computed on
 * the host when it is cheap (computeIndices: `arange(T) + 2`, `grid[T](i) => i + P`,
 * `tokens + 1`, clamps) and its [min, max] checked. An empty id input (T = 0) is an error too,
 * not empty logits. `g` is the checked graph (before target
 * passes: the same check on every target); `dims` come from checkTensors.
 */
export function checkIndexRanges(g: Graph, inputs: TensorSource, dims: ReadonlyMap<string, number>): Diagnostic[] {
  const ds: Diagnostic[] = [];
  const reported = new Set<string>();
  for (const n of g.nodes) {
    if (n.op !== 'gather') continue;
    const tableNode = g.nodes[n.operands[0] ?? -1];
    const rowsDim = tableNode?.type.shape[0];
    if (tableNode === undefined || rowsDim === undefined) continue;
    const rows = dimConstValue(rowsDim) ?? dimEval(rowsDim, dims);
    if (rows === undefined) continue;
    const tableName = sourceName(tableNode);
    const table = tableName === undefined ? `a table of ${rows} rows` : `${tableNode.op} "${tableName}" (${rows} rows)`;
    const ids = indexSource(g, n.operands[1]);
    if (ids?.op === 'input') {
      const name = sourceName(ids);
      const t = name === undefined ? undefined : inputs.tensors.get(name);
      if (name === undefined || t === undefined || reported.has(`input:${name}`)) continue;
      if (t.data.length === 0) {
        // An empty sequence (T = 0) is refused on every target rather than giving empty logits.
        reported.add(`input:${name}`);
        ds.push(diag('TFC309', ids.loc, `input "${name}" in ${inputs.file} is empty (shape [${t.shape.join(',')}]): an empty sequence has nothing to run; pass at least one token`));
        continue;
      }
      for (let i = 0; i < t.data.length; i++) {
        const v = t.data[i] ?? 0;
        if (Number.isInteger(v) && v >= 0 && v < rows) continue;
        reported.add(`input:${name}`);
        ds.push(diag('TFC309', n.loc, `input "${name}" in ${inputs.file}: element ${i} is ${v}, outside [0, ${rows}): it indexes ${table}`, [{ message: 'the input is declared here', loc: ids.loc }]));
        break;
      }
    } else if (ids?.op === 'arange') {
      const a = ids.attrs['start'];
      const b = ids.attrs['end'];
      if (a?.kind !== 'dim' || b?.kind !== 'dim') continue;
      const start = dimEval(a.value, dims);
      const end = dimEval(b.value, dims);
      if (start === undefined || end === undefined || end <= start || (start >= 0 && end <= rows)) continue;
      const key = `arange:${printDim(a.value)}:${printDim(b.value)}:${rows}`;
      if (reported.has(key)) continue;
      reported.add(key);
      const bound = [...new Set([...dimVars(a.value), ...dimVars(b.value)])].map((v) => `${v}=${dims.get(v)}`).join(', ');
      const range = `arange(${printDim(a.value)}, ${printDim(b.value)}) = [${start}, ${end})`;
      ds.push(diag('TFC309', n.loc, `positions ${range}${bound === '' ? '' : ` with ${bound}`} index ${table}: the sequence is longer than the context of ${rows} positions`));
    } else if (ids !== undefined) {
      // Any other index expression (`arange(T) + 2`, a grid over dims, `tokens + 1`): computed.
      const r = computeIndices(g, ids.id, inputs, dims);
      if (r === undefined || (r.min >= 0 && r.max < rows)) continue;
      const key = `computed:${ids.id}:${rows}`;
      if (reported.has(key)) continue;
      reported.add(key);
      const bound = g.dims.filter((v) => dims.has(v)).map((v) => `${v}=${dims.get(v)}`).join(', ');
      const from = r.reads.length === 0 ? 'positions' : `indices computed from ${r.reads.map((x) => `input "${x}"`).join(', ')}${r.reads.length > 0 ? ` in ${inputs.file}` : ''}`;
      const why = r.reads.length === 0 && r.min >= 0 ? `: the sequence is longer than the context of ${rows} positions` : '';
      ds.push(diag('TFC309', n.loc, `${from} range over [${r.min}, ${r.max}]${bound === '' ? '' : ` with ${bound}`}, outside [0, ${rows}): they index ${table}${why}`));
    }
  }
  return ds;
}

/** Rounds `v` to the nearest value of a float dtype (ties to even); f32 through Math.fround. */
export function roundToDType(v: number, dtype: DType): number {
  if (dtype === 'f16') return f16Table()[f16Bits(v)] ?? NaN;
  if (dtype === 'bf16') return bf16FromBits(bf16Bits(v));
  if (dtype === 'f32') return Math.fround(v);
  return v;
}

/** The value of every f16 bit pattern, built once: decoding through the table is ~10x faster. */
let f16Values: Float64Array | undefined;
function f16Table(): Float64Array {
  if (f16Values === undefined) {
    f16Values = new Float64Array(65536);
    for (let b = 0; b < 65536; b++) f16Values[b] = f16FromBits(b);
  }
  return f16Values;
}

/**
 * The first finite value that rounds to infinity in `dtype`: |x| >= 65520 for f16 (65504 plus half
 * its ulp of 32), past f32's range for bf16 and f32 (an F64 file).
 */
function firstOverflow(data: Float64Array, dtype: DType): number | undefined {
  if (!isFloat(dtype)) return undefined;
  const limit = dtype === 'f16' ? 65520 : undefined;
  for (let i = 0; i < data.length; i++) {
    const v = data[i] ?? 0;
    if (!Number.isFinite(v)) continue;
    if (limit !== undefined ? Math.abs(v) >= limit : !Number.isFinite(Math.fround(v))) return i;
  }
  return undefined;
}

/**
 * The fed tensors in the dtypes the graph declares (after checkTensors passed): a float tensor of
 * another float dtype is rounded to the declared one, as a GPU buffer of that dtype would hold it
 * (an f32 or bf16 checkpoint feeding an f16 model: `--dtype f16`). Everything else is returned as is.
 */
export function declaredTensors(needed: readonly NeededTensor[], kind: 'input' | 'weight', tensors: ReadonlyMap<string, Tensor64>): Map<string, Tensor64> {
  const want = new Map(needed.filter((n) => n.kind === kind).map((n) => [n.name, n.type.dtype]));
  const out = new Map<string, Tensor64>();
  for (const [name, t] of tensors) {
    const dtype = want.get(name);
    if (dtype === undefined || dtype === t.dtype || !isFloat(dtype) || !isFloat(t.dtype)) {
      out.set(name, t);
      continue;
    }
    out.set(name, { dtype, shape: t.shape, data: t.data.map((v) => roundToDType(v, dtype)) });
  }
  return out;
}
