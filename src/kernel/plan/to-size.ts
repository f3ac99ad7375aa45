// SizeExpr helpers for the kernel stage: symbolic dims (src/base/dim.ts) to the plan's tiny
// size formulas, light simplification (constants folded, products flattened) and printing.
import { type Dim } from '../../base/dim.js';
import type { SizeExpr } from './plan.js';

export const sConst = (value: number): SizeExpr => ({ kind: 'const', value });
export const sDim = (name: string): SizeExpr => ({ kind: 'dim', name });

export function sAdd(...args: readonly SizeExpr[]): SizeExpr {
  const flat: SizeExpr[] = [];
  let c = 0;
  for (const a of args) {
    if (a.kind === 'const') c += a.value;
    else if (a.kind === 'add') {
      for (const x of a.args) {
        if (x.kind === 'const') c += x.value;
        else flat.push(x);
      }
    } else flat.push(a);
  }
  if (c !== 0 || flat.length === 0) flat.push(sConst(c));
  return flat.length === 1 && flat[0] !== undefined ? flat[0] : { kind: 'add', args: flat };
}

export function sMul(...args: readonly SizeExpr[]): SizeExpr {
  const flat: SizeExpr[] = [];
  let c = 1;
  for (const a of args) {
    if (a.kind === 'const') c *= a.value;
    else if (a.kind === 'mul') {
      for (const x of a.args) {
        if (x.kind === 'const') c *= x.value;
        else flat.push(x);
      }
    } else flat.push(a);
  }
  if (c === 0) return sConst(0);
  // Distribute a constant over a sum only when the product has no other factors (keeps 4*(T+P)).
  const head = c === 1 ? [] : [sConst(c)];
  const all = [...head, ...flat];
  if (all.length === 0) return sConst(1);
  return all.length === 1 && all[0] !== undefined ? all[0] : { kind: 'mul', args: all };
}

export function sCeilDiv(num: SizeExpr, den: number): SizeExpr {
  if (den === 1) return num;
  if (num.kind === 'const') return sConst(Math.ceil(num.value / den));
  return { kind: 'ceildiv', num, den };
}

/** min(a, c) for a constant c, spelled with the plan's operators: a + c - max(a, c). */
export function sMinConst(a: SizeExpr, c: number): SizeExpr {
  if (a.kind === 'const') return sConst(Math.min(a.value, c));
  return sAdd(a, sConst(c), sMul(sConst(-1), { kind: 'max', args: [a, sConst(c)] }));
}

/** A dim polynomial as a size formula: sum of coef * product of dims. */
export function dimToSize(d: Dim): SizeExpr {
  if (d.terms.length === 0) return sConst(0);
  return sAdd(...d.terms.map((t) => sMul(sConst(t.coef), ...t.vars.map(sDim))));
}

export function shapeElements(shape: readonly Dim[]): SizeExpr {
  return sMul(...shape.map(dimToSize));
}

/** Readable text: `4*B*T*768`, `ceil(N/64)`, `max(a, b)`; deterministic. */
export function printSize(e: SizeExpr): string {
  switch (e.kind) {
    case 'const':
      return String(e.value);
    case 'dim':
      return e.name;
    case 'add': {
      let s = '';
      e.args.forEach((a, i) => {
        if (a.kind === 'const' && a.value < 0 && i > 0) s += ` - ${-a.value}`;
        else if (a.kind === 'mul' && a.args[0]?.kind === 'const' && a.args[0].value < 0 && i > 0) {
          s += ` - ${printSize(sMul(sConst(-a.args[0].value), ...a.args.slice(1)))}`;
        } else s += (i > 0 ? ' + ' : '') + printSize(a);
      });
      return s;
    }
    case 'mul':
      return e.args.map((a) => (a.kind === 'add' ? `(${printSize(a)})` : printSize(a))).join('*');
    case 'ceildiv':
      return `ceil(${printSize(e.num)}/${e.den})`;
    case 'max':
      return `max(${e.args.map(printSize).join(', ')})`;
  }
}
