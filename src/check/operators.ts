// The checker's operators: unary and binary operators on the values of the model checker
// (build.ts): tensors become catalog ops (scalars converted first), compile-time numbers, bools
// and dims fold, and a shape division must be exact.
import type { BinaryOp } from '../../grammar/ast.js';
import { dimAdd, dimConst, dimDiv, dimMul, dimNeg, dimSub, printDim } from '../base/dim.js';
import type { Span } from '../diag/span.js';
import { attr } from '../graph/ir.js';
import { printType } from '../graph/types.js';
import type { Checker } from './checker.js';
import { type FoldOp, type Value, binaryOpNames, describe, dimValue, foldNumbers, num, poison } from './values.js';

export function unaryOp(c: Checker, op: '-' | '!', v: Value, loc: Span): Value {
  switch (v.kind) {
    case 'poison':
      return poison;
    case 'num':
      if (op === '-') return num(-v.value, v.isInt);
      break;
    case 'bool':
      if (op === '!') return { kind: 'bool', value: !v.value };
      break;
    case 'dim':
      if (op === '-') return dimValue(dimNeg(v.dim));
      break;
    case 'tensor':
      return c.addNode(op === '-' ? 'neg' : 'not', [v], {}, loc);
    default:
      break;
  }
  return c.error('TFC110', loc, `'${op}' cannot be applied to ${describe(v)}`);
}

export function binaryOp(c: Checker, op: BinaryOp, l: Value, r: Value, loc: Span, lloc = loc, rloc = loc): Value {
  if (l.kind === 'poison' || r.kind === 'poison') return poison;
  if (l.kind === 'tensor' || r.kind === 'tensor') {
    const what = `'${op}'`;
    const a = l.kind === 'tensor' ? l : c.scalarAsTensor(l, r.kind === 'tensor' ? r.type.dtype : 'f32', lloc, what);
    const b = r.kind === 'tensor' ? r : c.scalarAsTensor(r, l.kind === 'tensor' ? l.type.dtype : 'f32', rloc, what);
    if (a.kind !== 'tensor' || b.kind !== 'tensor') return poison;
    if (op === '//') return floorDivide(c, a, b, loc);
    // `/` divides as real numbers everywhere (as between config constants): integers convert first.
    if (op === '/' && a.type.dtype === 'i32' && b.type.dtype === 'i32') {
      return c.addNode('div', [c.addNode('cast', [a], { to: attr.dtype('f32') }, lloc), c.addNode('cast', [b], { to: attr.dtype('f32') }, rloc)], {}, loc);
    }
    return c.addNode(binaryOpNames[op], [a, b], {}, loc);
  }
  // Compile-time folding.
  if (l.kind === 'num' && r.kind === 'num' && op !== '@' && op !== '&&' && op !== '||') {
    const v = foldNumbers(op as FoldOp, l, r);
    return typeof v === 'string' ? c.error('TFC215', loc, `cannot evaluate the constant expression: ${v}`) : v;
  }
  if (l.kind === 'bool' && r.kind === 'bool') {
    switch (op) {
      case '&&':
        return { kind: 'bool', value: l.value && r.value };
      case '||':
        return { kind: 'bool', value: l.value || r.value };
      case '==':
        return { kind: 'bool', value: l.value === r.value };
      case '!=':
        return { kind: 'bool', value: l.value !== r.value };
      default:
        break;
    }
  }
  const ld = l.kind === 'dim' ? l.dim : l.kind === 'num' && l.isInt ? dimConst(l.value) : undefined;
  const rd = r.kind === 'dim' ? r.dim : r.kind === 'num' && r.isInt ? dimConst(r.value) : undefined;
  if (ld !== undefined && rd !== undefined && (l.kind === 'dim' || r.kind === 'dim')) {
    switch (op) {
      case '+':
        return dimValue(dimAdd(ld, rd));
      case '-':
        return dimValue(dimSub(ld, rd));
      case '*':
        return dimValue(dimMul(ld, rd));
      case '/':
      case '//': {
        // A shape cannot round: both divisions must be exact for every size.
        const q = dimDiv(ld, rd);
        if (q === undefined) return c.error('TFC206', loc, `${printDim(ld)} ${op} ${printDim(rd)} is not an integer for all sizes`);
        return dimValue(q);
      }
      default:
        break;
    }
  }
  return c.error('TFC110', loc, `'${op}' cannot combine ${describe(l)} and ${describe(r)}`);
}

/**
 * `a // b` on integer tensors: floor division (Python's, the partner of the floor modulo `%`),
 * built from catalog ops as div(a - a % b, b), whose truncating division is then exact.
 */
function floorDivide(c: Checker, a: Extract<Value, { kind: 'tensor' }>, b: Extract<Value, { kind: 'tensor' }>, loc: Span): Value {
  if (a.type.dtype !== 'i32' || b.type.dtype !== 'i32') {
    return c.error('TFC208', loc, `'//' divides integers (floor division), got ${printType(a.type)} // ${printType(b.type)}; use '/' to divide as real numbers`);
  }
  const rest = c.addNode('mod', [a, b], {}, loc);
  return c.addNode('div', [c.addNode('sub', [a, rest], {}, loc), b], {}, loc);
}
