// The graph IR verifier: the invariants every stage and pass must keep (ids, SSA dominance,
// catalog membership, arity, attribute kinds, re-inferred types, locations, outputs, interface
// names). The pass driver runs it after every pass when verification is on (always in tests).
import { dimVars } from '../base/dim.js';
import type { Span } from '../diag/span.js';
import { getOp } from '../ops/catalog.js';
import { isOpError } from '../ops/define.js';
import type { Attr, Graph, ScalarExpr } from './ir.js';
import { printType, type TensorType, typeEquals } from './types.js';

/** Problems found, one line each, in a deterministic order; empty when `g` is valid. */
export function verifyGraph(g: Graph): string[] {
  const problems: string[] = [];
  const dims = new Set(g.dims);
  if (dims.size !== g.dims.length) problems.push(`graph dims are not unique: (${g.dims.join(', ')})`);
  const interfaceNames = new Map<string, Map<string, number>>(); // op -> name -> first node
  const validIds = (id: number): boolean => Number.isInteger(id) && id >= 0 && id < g.nodes.length;

  g.nodes.forEach((n, i) => {
    const at = `%${i} (${n.op})`;
    const bad = (msg: string): void => {
      problems.push(`${at}: ${msg}`);
    };
    if (n.id !== i) bad(`id is ${n.id} but the node is at position ${i}`);
    if (!isValidSpan(n.loc)) bad(`has no valid source location`);
    if (n.from !== undefined && !n.from.every(isValidSpan)) bad(`has an invalid 'from' location`);
    const operandTypes: (TensorType | undefined)[] = [];
    n.operands.forEach((o, k) => {
      if (!Number.isInteger(o) || o < 0 || o >= i) {
        bad(`operand ${k} is %${o}, which is not defined before this node`);
        operandTypes.push(undefined);
      } else {
        operandTypes.push(g.nodes[o]?.type);
      }
    });
    for (const d of n.type.shape) {
      for (const v of dimVars(d)) if (!dims.has(v)) bad(`type ${printType(n.type)} uses '${v}', which is not a graph dim`);
    }
    const op = getOp(n.op);
    if (op === undefined) {
      bad(`op '${n.op}' is not in the catalog`);
      return;
    }
    if (op.arity !== 'variadic' && n.operands.length !== op.arity) bad(`has ${n.operands.length} operands, but '${n.op}' takes ${op.arity}`);
    if (op.resultOf !== undefined) {
      const p = g.nodes[n.operands[0] ?? -1];
      if (p !== undefined && p.op !== op.resultOf) bad(`operand 0 is %${p.id} (${p.op}), but '${n.op}' is a result of a ${op.resultOf}`);
    }
    // Its buffer is filled at load from the operands' tensors (PlanBuffer.parts): weights only.
    if (n.op === 'packed_weight') {
      for (const o of n.operands) if (g.nodes[o] !== undefined && g.nodes[o]?.op !== 'weight') bad(`operand %${o} is ${g.nodes[o]?.op ?? '?'}, but packed_weight packs weights`);
    }
    let attrsOk = true;
    for (const [k, kind] of Object.entries(op.attrs)) {
      const a = n.attrs[k];
      if (a === undefined) {
        bad(`lacks attribute '${k}' (${kind})`);
        attrsOk = false;
      } else if (a.kind !== kind) {
        bad(`attribute '${k}' is ${a.kind}, but '${n.op}' declares ${kind}`);
        attrsOk = false;
      } else {
        for (const p of attrProblems(a, operandTypes)) bad(`attribute '${k}': ${p}`);
      }
    }
    for (const [k, kind] of Object.entries(op.optionalAttrs ?? {})) {
      const a = n.attrs[k];
      if (a === undefined) continue;
      if (a.kind !== kind) {
        bad(`attribute '${k}' is ${a.kind}, but '${n.op}' declares ${kind}`);
        attrsOk = false;
      } else {
        for (const p of attrProblems(a, operandTypes)) bad(`attribute '${k}': ${p}`);
      }
    }
    for (const k of Object.keys(n.attrs)) {
      if (op.attrs[k] === undefined && op.optionalAttrs?.[k] === undefined) bad(`has attribute '${k}', which '${n.op}' does not declare`);
    }
    if (isInterface(n.op)) {
      const name = n.attrs['name'];
      if (name !== undefined && name.kind === 'str') {
        const seen = interfaceNames.get(n.op) ?? new Map<string, number>();
        interfaceNames.set(n.op, seen);
        // Row chunks of one weight (split-large-weights) share its name; each range appears once.
        const rows = n.attrs['rows'];
        const key = rows?.kind === 'ints' ? `${name.value}\u0000${rows.value.join(',')}` : name.value;
        const first = seen.get(key);
        if (first !== undefined) bad(`${n.op} name ${JSON.stringify(name.value)} is already used by %${first}`);
        else seen.set(key, i);
      }
    }
    const arityOk = op.arity === 'variadic' || n.operands.length === op.arity;
    if (!attrsOk || !arityOk || operandTypes.some((t) => t === undefined)) return;
    let inferred: ReturnType<typeof op.infer>;
    try {
      inferred = op.infer(operandTypes as TensorType[], n.attrs, n.type);
    } catch (e) {
      bad(`infer threw: ${e instanceof Error ? e.message : String(e)}`);
      return;
    }
    if (isOpError(inferred)) bad(`operand types (${operandTypes.map((t) => (t === undefined ? '?' : printType(t))).join(', ')}) are invalid: ${inferred.message}`);
    else if (!typeEquals(inferred, n.type)) bad(`type is ${printType(n.type)}, but '${n.op}' infers ${printType(inferred)}`);
  });

  const outNames = new Set<string>();
  for (const o of g.outputs) {
    if (!validIds(o.value)) problems.push(`output ${JSON.stringify(o.name)}: refers to %${o.value}, which does not exist`);
    if (outNames.has(o.name)) problems.push(`output ${JSON.stringify(o.name)}: name is used twice`);
    outNames.add(o.name);
    if (!isValidSpan(o.loc)) problems.push(`output ${JSON.stringify(o.name)}: has no valid source location`);
  }
  return problems;
}

function isInterface(op: string): boolean {
  return op === 'input' || op === 'weight';
}

function isValidSpan(s: Span | undefined): boolean {
  return (
    s !== undefined &&
    typeof s.file === 'string' &&
    s.file !== '' &&
    s.file !== '<unknown>' &&
    s.line >= 1 &&
    s.col >= 1 &&
    (s.endLine > s.line || (s.endLine === s.line && s.endCol >= s.col))
  );
}

const RESERVED_PARAMS: ReadonlySet<string> = new Set(['true', 'false', 'inf', 'nan']);

/** Value-level checks that the attr kind alone does not give. */
function attrProblems(a: Attr, operandTypes: readonly (TensorType | undefined)[]): string[] {
  switch (a.kind) {
    case 'int':
      return Number.isSafeInteger(a.value) ? [] : [`${a.value} is not an integer`];
    case 'ints':
      return a.value.every((v) => Number.isSafeInteger(v)) ? [] : [`[${a.value.join(',')}] holds a non-integer`];
    case 'lambda': {
      const out: string[] = [];
      const seen = new Set<string>();
      for (const p of a.params) {
        if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(p) || RESERVED_PARAMS.has(p)) out.push(`'${p}' cannot name a lambda parameter`);
        if (seen.has(p)) out.push(`parameter '${p}' is listed twice`);
        seen.add(p);
      }
      scalarProblems(a.body, a.params.length, operandTypes, out);
      return out;
    }
    default:
      return [];
  }
}

function scalarProblems(e: ScalarExpr, nParams: number, operandTypes: readonly (TensorType | undefined)[], out: string[]): void {
  switch (e.kind) {
    case 'index':
      if (!Number.isInteger(e.axis) || e.axis < 0 || e.axis >= nParams) out.push(`index ${e.axis} is out of range for ${nParams} parameters`);
      return;
    case 'dim':
    case 'const':
      return;
    case 'read': {
      const t = operandTypes[e.operand];
      if (t === undefined) out.push(`read of operand ${e.operand}, but the node has ${operandTypes.length} operands`);
      else {
        if (t.dtype !== e.dtype) out.push(`read of operand ${e.operand} has dtype ${e.dtype}, but the operand is ${printType(t)}`);
        if (t.shape.length !== e.indices.length) out.push(`read of operand ${e.operand} uses ${e.indices.length} indices for ${printType(t)}`);
      }
      for (const x of e.indices) scalarProblems(x, nParams, operandTypes, out);
      return;
    }
    case 'apply': {
      const op = getOp(e.op);
      if (op === undefined) out.push(`op '${e.op}' in the body is not in the catalog`);
      else if (op.arity !== 'variadic' && op.arity !== e.args.length) out.push(`'${e.op}' in the body has ${e.args.length} arguments, but takes ${op.arity}`);
      for (const [k, a] of Object.entries(e.attrs ?? {})) {
        const want = op?.attrs[k] ?? op?.optionalAttrs?.[k];
        if (op !== undefined && want !== a.kind) out.push(`'${e.op}' in the body has attribute '${k}' (${a.kind}), but the op ${want === undefined ? 'has none of that name' : `takes ${want}`}`);
      }
      for (const x of e.args) scalarProblems(x, nParams, operandTypes, out);
      return;
    }
  }
}
