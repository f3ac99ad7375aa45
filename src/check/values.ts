// The values the model checker computes while it walks the AST: graph tensors, compile-time
// scalars, symbolic dims, lists, tuples, families. `poison` marks a value whose error has
// already been reported, so that dependent checks stay quiet (no cascades).
import type { TensorDeclItem } from '../../grammar/ast.js';
import { type Dim, dimConstValue, printDim } from '../base/dim.js';
import { type DType, type TensorType, printType } from '../graph/types.js';

export interface FamilyInfo {
  readonly item: TensorDeclItem;
  readonly index: string;
  readonly from: number;
  readonly to: number; // exclusive
}

export type Value =
  | { readonly kind: 'tensor'; readonly id: number; readonly type: TensorType }
  | { readonly kind: 'num'; readonly value: number; readonly isInt: boolean; readonly constant?: string } // constant: the config constant it was read from
  | { readonly kind: 'bool'; readonly value: boolean }
  | { readonly kind: 'dim'; readonly dim: Dim } // never constant: constants are `num`
  | { readonly kind: 'str'; readonly value: string }
  | { readonly kind: 'dtype'; readonly dtype: DType }
  | { readonly kind: 'list'; readonly items: readonly Value[] }
  | { readonly kind: 'tuple'; readonly items: readonly Value[] }
  | { readonly kind: 'family'; readonly fam: FamilyInfo }
  | { readonly kind: 'poison' };

export const poison: Value = { kind: 'poison' };

export const num = (value: number, isInt = Number.isInteger(value)): Value => ({ kind: 'num', value, isInt });

/** A dim as a value: constants become `num` so that arithmetic on them folds. */
export function dimValue(d: Dim): Value {
  const c = dimConstValue(d);
  return c !== undefined ? num(c, true) : { kind: 'dim', dim: d };
}

/** How a value is described in messages: `f32[B,T,768]`, `the int 3`, `a family`. */
export function describe(v: Value): string {
  switch (v.kind) {
    case 'tensor':
      return `a tensor ${printType(v.type)}`;
    case 'num':
      return v.isInt ? `the int ${v.value}` : `the number ${v.value}`;
    case 'bool':
      return `the bool ${v.value}`;
    case 'dim':
      return `the dim ${printDim(v.dim)}`;
    case 'str':
      return `the string ${JSON.stringify(v.value)}`;
    case 'dtype':
      return `the dtype ${v.dtype}`;
    case 'list':
      return `a list of ${v.items.length}`;
    case 'tuple':
      return `${v.items.length} values`;
    case 'family':
      return `the family '${v.fam.item.name.name}' (select a member with [${v.fam.index}])`;
    case 'poison':
      return 'an invalid value';
  }
}

export type FoldOp = '+' | '-' | '*' | '/' | '//' | '%' | '==' | '!=' | '<' | '<=' | '>' | '>=';

/**
 * Compile-time arithmetic on numbers. Ints stay ints under + - * % //; `/` divides as real numbers
 * (int / int is an int when it divides exactly and a float otherwise, the one rule for `/`
 * everywhere); `//` is floor division (Python's, the partner of the floor modulo `%`). Returns a
 * message for a division by zero.
 */
export function foldNumbers(
  op: FoldOp,
  a: { value: number; isInt: boolean },
  b: { value: number; isInt: boolean },
): Value | string {
  const isInt = a.isInt && b.isInt;
  switch (op) {
    case '+':
      return num(a.value + b.value, isInt);
    case '-':
      return num(a.value - b.value, isInt);
    case '*':
      return num(a.value * b.value, isInt);
    case '/':
      if (b.value === 0) return `division by zero (${a.value} / 0)`;
      return num(a.value / b.value, isInt && a.value % b.value === 0);
    case '//':
      if (b.value === 0) return `division by zero (${a.value} // 0)`;
      return num(Math.floor(a.value / b.value), isInt);
    case '%':
      if (b.value === 0) return `division by zero (${a.value} % 0)`;
      // floor modulo (the sign of the divisor), as Python and the `mod` op
      return num(a.value - Math.floor(a.value / b.value) * b.value, isInt);
    case '==':
      return { kind: 'bool', value: a.value === b.value };
    case '!=':
      return { kind: 'bool', value: a.value !== b.value };
    case '<':
      return { kind: 'bool', value: a.value < b.value };
    case '<=':
      return { kind: 'bool', value: a.value <= b.value };
    case '>':
      return { kind: 'bool', value: a.value > b.value };
    case '>=':
      return { kind: 'bool', value: a.value >= b.value };
  }
}

/** Surface operators and the catalog ops they become. */
export const binaryOpNames = {
  '+': 'add',
  '-': 'sub',
  '*': 'mul',
  '/': 'div',
  '%': 'mod',
  '@': 'matmul',
  '==': 'eq',
  '!=': 'ne',
  '<': 'lt',
  '<=': 'le',
  '>': 'gt',
  '>=': 'ge',
  '&&': 'and',
  '||': 'or',
} as const;
