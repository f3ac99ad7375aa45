// Evaluates the `config` block (compile-time constants, in order, with --set overrides) and the
// `dims` declarations; an override of a dim name binds that dim to a constant for this compile.
// Runs first in graph building (src/check/build.ts).
import type { Expr, Module } from '../../grammar/ast.js';
import { type DiagnosticSink, closestName, diag } from '../diag/diagnostic.js';
import type { Span } from '../diag/span.js';
import { getOp } from '../ops/catalog.js';
import { getBuiltin } from '../ops/builtins.js';
import { type FoldOp, foldNumbers } from './values.js';

export interface ConfigConstant {
  readonly value: number;
  readonly isInt: boolean;
  readonly loc: Span;
}

export interface ConfigResult {
  /** Config constants after overrides, in declaration order. */
  readonly constants: ReadonlyMap<string, ConfigConstant>;
  /** Dims not bound by an override, in declaration order: the graph's run-time dims. */
  readonly dims: readonly string[];
  /** Dims bound by an override (`--set T=1024`): the graph uses the constant in their place. */
  readonly dimBindings: ReadonlyMap<string, number>;
  /** Where each declared dim is declared. */
  readonly dimLocs: ReadonlyMap<string, Span>;
}

/** Names that are always defined in expressions. */
export const builtinConstants: ReadonlyMap<string, number | boolean> = new Map<string, number | boolean>([
  ['inf', Infinity],
  ['pi', Math.PI],
  ['true', true],
  ['false', false],
]);

export function fileStart(file: string): Span {
  return { file, line: 1, col: 1, endLine: 1, endCol: 1 };
}

type Num = { value: number; isInt: boolean };

export function evaluateConfig(module: Module, overrides: ReadonlyMap<string, number>, sink: DiagnosticSink): ConfigResult {
  const constants = new Map<string, ConfigConstant>();
  const declared = new Set<string>(); // including constants whose value failed
  const dimLocs = new Map<string, Span>();
  const configItems = module.items.filter((i) => i.kind === 'config');
  const laterNames = new Set(configItems.flatMap((c) => c.entries.map((e) => e.name.name)));

  for (const item of module.items) {
    if (item.kind !== 'dims') continue;
    for (const n of item.names) {
      if (dimLocs.has(n.name) || laterNames.has(n.name)) {
        sink.report(diag('TFC102', n.loc, `'${n.name}' is defined twice`));
        continue;
      }
      dimLocs.set(n.name, n.loc);
    }
  }

  const evalExpr = (e: Expr): Num | undefined => {
    switch (e.kind) {
      case 'num':
        return { value: e.value, isInt: e.isInt };
      case 'name': {
        const c = constants.get(e.name);
        if (c !== undefined) return c;
        if (declared.has(e.name)) return undefined; // its own error was reported
        const b = builtinConstants.get(e.name);
        if (typeof b === 'number') return { value: b, isInt: false };
        if (dimLocs.has(e.name)) {
          sink.report(diag('TFC215', e.loc, `config constants cannot depend on the run-time dim '${e.name}'`));
          return undefined;
        }
        if (laterNames.has(e.name)) {
          sink.report(diag('TFC101', e.loc, `'${e.name}' is used before it is defined (config constants are evaluated in order)`));
          return undefined;
        }
        const near = closestName(e.name, [...constants.keys(), 'inf', 'pi']);
        sink.report(diag('TFC101', e.loc, `unknown name '${e.name}'${near !== undefined ? `; did you mean '${near}'?` : ''}`));
        return undefined;
      }
      case 'unary': {
        const v = evalExpr(e.operand);
        if (v === undefined) return undefined;
        if (e.op === '!') {
          sink.report(diag('TFC215', e.loc, `'!' needs a bool; config constants are numbers`));
          return undefined;
        }
        return { value: -v.value, isInt: v.isInt };
      }
      case 'binary': {
        const l = evalExpr(e.left);
        const r = evalExpr(e.right);
        if (l === undefined || r === undefined) return undefined;
        if (e.op === '+' || e.op === '-' || e.op === '*' || e.op === '/' || e.op === '//' || e.op === '%') {
          const v = foldNumbers(e.op as FoldOp, l, r);
          if (typeof v === 'string') {
            sink.report(diag('TFC215', e.loc, `cannot evaluate the config constant: ${v}`));
            return undefined;
          }
          return v.kind === 'num' ? v : undefined;
        }
        sink.report(diag('TFC215', e.loc, `operator '${e.op}' cannot be used in a config constant`));
        return undefined;
      }
      case 'call': {
        const name = e.callee.name;
        const b = getBuiltin(name);
        const op = getOp(b?.op ?? name);
        const fn = op?.scalar;
        const positional = e.args.filter((a) => a.name === undefined);
        if (b === undefined || fn === undefined || (b.lowering !== 'unary' && b.lowering !== 'binary' && b.lowering !== 'max')) {
          sink.report(diag('TFC215', e.loc, `'${name}' cannot be used in a config constant (only elementwise math)`));
          return undefined;
        }
        const want = b.lowering === 'unary' ? 1 : 2;
        if (positional.length !== want || positional.length !== e.args.length) {
          sink.report(diag('TFC104', e.loc, `'${name}' takes ${want} argument${want === 1 ? '' : 's'} here, got ${e.args.length}`));
          return undefined;
        }
        const vals = positional.map((a) => evalExpr(a.value));
        const nums: number[] = [];
        for (const v of vals) {
          if (v === undefined) return undefined;
          nums.push(v.value);
        }
        const value = fn(...nums);
        const isInt = (name === 'max' || name === 'min' || name === 'abs' || name === 'neg') && vals.every((v) => v?.isInt === true);
        return { value, isInt };
      }
      default:
        sink.report(diag('TFC215', e.loc, `a config constant must be a number or arithmetic on numbers`));
        return undefined;
    }
  };

  for (const item of configItems) {
    for (const entry of item.entries) {
      const name = entry.name.name;
      if (declared.has(name)) {
        sink.report(diag('TFC102', entry.name.loc, `config constant '${name}' is defined twice`));
        continue;
      }
      declared.add(name);
      const o = overrides.get(name);
      const v = o !== undefined ? { value: o, isInt: Number.isInteger(o) } : evalExpr(entry.value);
      if (v !== undefined) constants.set(name, { value: v.value, isInt: v.isInt, loc: entry.loc });
    }
  }

  const dimBindings = new Map<string, number>();
  const overrideLoc = configItems[0]?.loc ?? fileStart(module.file);
  for (const [name, value] of overrides) {
    if (declared.has(name)) continue;
    if (dimLocs.has(name)) {
      if (!Number.isInteger(value) || value < 0) {
        sink.report(diag('TFC305', overrideLoc, `--set ${name}=${value}: a dim needs a non-negative integer`));
      } else {
        dimBindings.set(name, value);
      }
      continue;
    }
    const near = closestName(name, [...declared, ...dimLocs.keys()]);
    sink.report(
      diag(
        'TFC305',
        overrideLoc,
        `--set ${name}=${value}: no config constant or dim named '${name}'${near !== undefined ? `; did you mean '${near}'?` : ''}`,
      ),
    );
  }

  const dims = [...dimLocs.keys()].filter((d) => !dimBindings.has(d));
  return { constants, dims, dimBindings, dimLocs };
}
