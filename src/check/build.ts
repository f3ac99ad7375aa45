// The model checker (ModelChecker): AST (grammar/ast.ts) -> graph IR (src/graph/ir.ts). It resolves names,
// evaluates config, inlines functions (unifying generic dims per call), unrolls `for` loops,
// folds compile-time scalars and lowers builtins and operators to catalog ops, whose `infer`
// gives every result type. User mistakes are reported into the sink; building goes on with a
// poisoned value so that one run reports several independent errors.
// Over 400 lines: ModelChecker is one class over one checking state (scopes, declarations, call
// stack, outputs); its helpers already live apart (operators.ts, builtin-calls.ts, grid.ts,
// unify.ts, config.ts) and splitting further would expose that state through an interface.
import type { AssignTarget, Expr, FnItem, Item, Module, Stmt, TensorDeclItem, TensorTypeExpr } from '../../grammar/ast.js';
import { type Diagnostic, type DiagnosticSink, type Note, closestName, diag } from '../diag/diagnostic.js';
import type { DiagCode } from '../diag/codes.js';
import type { Span } from '../diag/span.js';
import { type Attrs, type Graph, type GraphOutput, type Node, attr } from '../graph/ir.js';
import { type DType, type TensorType, dtypes, printType, typeEquals } from '../graph/types.js';
import { getOp } from '../ops/catalog.js';
import { isOpError } from '../ops/define.js';
import { builtins, getBuiltin } from '../ops/builtins.js';
import { type Dim, dimConst, dimConstValue, dimVar, printDim } from '../base/dim.js';
import { type ConfigResult, builtinConstants, evaluateConfig, fileStart } from './config.js';
import { type FamilyInfo, type Value, describe, dimValue, num, poison } from './values.js';
import { type ArgValue, lowerBuiltin } from './builtin-calls.js';
import { lowerGrid } from './grid.js';
import { unifyCall } from './unify.js';
import { binaryOp, unaryOp } from './operators.js';
import { modelLimits } from './limits.js';
import type { Checker, Scope } from './checker.js';

export interface BuildOptions {
  readonly overrides: ReadonlyMap<string, number>;
}

const dtypeNames: ReadonlySet<string> = new Set(dtypes);

/** Checks one module and builds its graph (graph/rewrite.ts's GraphBuilder is the passes' node list). */
export class ModelChecker implements Checker {
  readonly nodes: Node[] = [];
  readonly config: ConfigResult;
  private readonly fns = new Map<string, FnItem>();
  private readonly decls = new Map<string, TensorDeclItem>();
  private readonly families = new Map<string, FamilyInfo>();
  private readonly declTypes = new Map<string, TensorType | undefined>();
  private readonly sourceNodes = new Map<string, number>(); // "weight:<key>" / "input:<key>" -> node id
  private readonly outputValues = new Map<string, { value: number; loc: Span }>(); // key -> node
  private readonly attemptedOutputs = new Set<string>(); // assigned, possibly a poisoned value
  private readonly callStack: string[] = [];
  /** Layer indices of the enclosing index parameters and loops, innermost last (for Node.scope). */
  private readonly layerStack: number[] = [];
  private modelName = '';
  /** Inside evalType: an unknown name is an undeclared dim (lookup's message says where to declare it). */
  private inType = false;
  private readonly called = new Set<string>();
  private readonly reported = new Set<string>();

  constructor(
    readonly module: Module,
    readonly sink: DiagnosticSink,
    private readonly overrides: ReadonlyMap<string, number>,
  ) {
    this.config = evaluateConfig(module, overrides, sink);
  }

  // ---------------------------------------------------------------------------------------------
  // Diagnostics: one report per (code, place, message), since an inlined function body is
  // walked once per call.

  error(code: DiagCode, loc: Span, message: string, notes: readonly Note[] = []): Value {
    this.report(diag(code, loc, message, notes));
    return poison;
  }

  report(d: Diagnostic): void {
    const key = `${d.code}@${d.loc.file}:${d.loc.line}:${d.loc.col}:${d.message}`;
    if (this.reported.has(key)) return;
    this.reported.add(key);
    this.sink.report(d);
  }

  // ---------------------------------------------------------------------------------------------
  // Nodes

  /** Adds a node whose type the catalog infers; reports the op's error at `loc` and poisons. */
  addNode(op: string, operands: readonly Value[], attrs: Attrs, loc: Span, declared?: TensorType): Value {
    const ids: number[] = [];
    const types: TensorType[] = [];
    for (const v of operands) {
      if (v.kind !== 'tensor') return poison;
      ids.push(v.id);
      types.push(v.type);
    }
    const def = getOp(op);
    if (def === undefined) throw new Error(`internal: the builder made unknown op '${op}'`);
    const t = def.infer(types, attrs, declared);
    if (isOpError(t)) return this.error(t.code, loc, t.message);
    const oversize = oversizeMessage(t);
    if (oversize !== undefined) return this.error('TFC218', loc, oversize);
    const base = { id: this.nodes.length, op, operands: Object.freeze(ids), attrs: Object.freeze({ ...attrs }), type: t, loc };
    const scope = op === 'input' || op === 'weight' ? undefined : this.currentScope();
    const node: Node = Object.freeze(scope === undefined ? base : { ...base, scope });
    this.nodes.push(node);
    return { kind: 'tensor', id: node.id, type: t };
  }

  /** `attention_l0`: the innermost user function (or the model) and the enclosing layer index. */
  private currentScope(): string | undefined {
    const fn = this.callStack[this.callStack.length - 1] ?? this.modelName;
    if (fn === '') return undefined;
    const layer = this.layerStack[this.layerStack.length - 1];
    return layer === undefined ? fn : `${fn}_l${layer}`;
  }

  constNode(value: number, dtype: DType, loc: Span): Value {
    return this.addNode('const', [], { value: attr.float(value) }, loc, { dtype, shape: [] });
  }

  /**
   * Weak typing: a compile-time scalar next to a tensor becomes a `const` of the tensor's dtype.
   * An int scalar fits any numeric dtype, a fractional one only floats, a bool only bool.
   */
  scalarAsTensor(v: Value, dtype: DType, loc: Span, what: string): Value {
    switch (v.kind) {
      case 'tensor':
      case 'poison':
        return v;
      case 'num':
        if (dtype === 'bool' || (dtype === 'i32' && !v.isInt)) {
          return this.error('TFC202', loc, `${what}: cannot use ${describe(v)} as ${dtype}`);
        }
        return this.constNode(v.value, dtype, loc);
      case 'bool':
        if (dtype !== 'bool') return this.error('TFC202', loc, `${what}: cannot use ${describe(v)} as ${dtype}`);
        return this.constNode(v.value ? 1 : 0, dtype, loc);
      case 'dim':
        return this.error(
          'TFC110',
          loc,
          `${what}: the dim ${printDim(v.dim)} is a size, not a tensor value (dims are values only inside grid)`,
        );
      default:
        return this.error('TFC110', loc, `${what}: expected a tensor, got ${describe(v)}`);
    }
  }

  /** A scalar alone (no tensor beside it) as a tensor: ints as i32, numbers as f32, bools as bool. */
  defaultTensor(v: Value, loc: Span, what: string): Value {
    if (v.kind === 'num') return this.scalarAsTensor(v, v.isInt ? 'i32' : 'f32', loc, what);
    if (v.kind === 'bool') return this.scalarAsTensor(v, 'bool', loc, what);
    return this.scalarAsTensor(v, 'f32', loc, what);
  }

  // ---------------------------------------------------------------------------------------------
  // Declarations

  private collect(): void {
    const globals = new Map<string, Span>();
    for (const [name, c] of this.config.constants) globals.set(name, c.loc);
    for (const [name, loc] of this.config.dimLocs) globals.set(name, loc);
    const clash = (name: string, loc: Span): boolean => {
      const prev = globals.get(name);
      if (prev !== undefined || builtinConstants.has(name) || dtypeNames.has(name)) {
        this.error('TFC102', loc, `'${name}' is defined twice`, prev !== undefined ? [{ message: 'first defined', loc: prev }] : []);
        return true;
      }
      globals.set(name, loc);
      return false;
    };
    for (const item of this.module.items) {
      if (item.kind === 'weight' || item.kind === 'input' || item.kind === 'output') {
        if (clash(item.name.name, item.name.loc)) continue;
        this.decls.set(item.name.name, item);
        this.declareTensor(item);
      } else if (item.kind === 'fn') {
        if (getBuiltin(item.name.name) !== undefined) {
          this.error('TFC102', item.name.loc, `function '${item.name.name}' has the name of a builtin`);
          continue;
        }
        if (this.fns.has(item.name.name)) {
          const prev = this.fns.get(item.name.name);
          this.error('TFC102', item.name.loc, `function '${item.name.name}' is defined twice`, prev ? [{ message: 'first defined', loc: prev.name.loc }] : []);
          continue;
        }
        this.fns.set(item.name.name, item);
      }
    }
  }

  private declareTensor(item: TensorDeclItem): void {
    const globalScope: Scope = { locals: new Map(), fn: undefined };
    let family: FamilyInfo | undefined;
    if (item.family !== undefined) {
      const from = this.compileTimeInt(this.expr(item.family.from, globalScope), item.family.from.loc, 'a family bound');
      const to = this.compileTimeInt(this.expr(item.family.to, globalScope), item.family.to.loc, 'a family bound');
      family = { item, index: item.family.index.name, from: from ?? 0, to: to ?? 0 };
      this.families.set(item.name.name, family);
    }
    // Key placeholders: only the family index.
    if (item.key !== undefined) {
      const placeholders = [...item.key.value.matchAll(/\{([^}]*)\}/g)].map((m) => m[1] ?? '');
      let bad = false;
      for (const ph of placeholders) {
        if (family === undefined || ph !== family.index) {
          bad = true;
          const hint = family === undefined ? `'${item.name.name}' is not a family` : `the family index is '${family.index}'`;
          this.error('TFC112', item.key.loc, `the name pattern ${JSON.stringify(item.key.value)} uses the unknown placeholder {${ph}}: ${hint}`);
        }
      }
      if (!bad && family !== undefined && !placeholders.includes(family.index)) {
        this.error('TFC112', item.key.loc, `the family name pattern ${JSON.stringify(item.key.value)} must use {${family.index}}, or all members share one name`);
      }
    }
    this.declTypes.set(item.name.name, this.evalType(item.type, globalScope));
  }

  /** The safetensors name of a declared tensor (member `l` of a family). */
  keyOf(item: TensorDeclItem, member: number | undefined): string {
    const pattern = item.key?.value ?? (member === undefined ? item.name.name : `${item.name.name}.{${item.family?.index.name ?? 'l'}}`);
    if (member === undefined || item.family === undefined) return pattern;
    const index = item.family.index.name;
    return pattern.replace(/\{([^}]*)\}/g, (m, ph: string) => (ph === index ? String(member) : m));
  }

  /** The graph node of a weight or input (family member `member`); one node per distinct key. */
  sourceTensor(item: TensorDeclItem, member: number | undefined): Value {
    const type = this.declTypes.get(item.name.name);
    if (type === undefined || item.kind === 'output') return poison;
    const key = this.keyOf(item, member);
    const cacheKey = `${item.kind}:${key}`;
    const id = this.sourceNodes.get(cacheKey);
    if (id !== undefined) {
      const n = this.nodes[id];
      return n === undefined ? poison : { kind: 'tensor', id, type: n.type };
    }
    const v = this.addNode(item.kind, [], { name: attr.str(key) }, item.loc, type);
    if (v.kind === 'tensor') this.sourceNodes.set(cacheKey, v.id);
    return v;
  }

  // ---------------------------------------------------------------------------------------------
  // Types and compile-time values

  /** `f32[B, T, d]` -> a TensorType; undefined (reported) when a dim is not a non-negative integer. */
  evalType(t: TensorTypeExpr, sc: Scope): TensorType | undefined {
    const shape: Dim[] = [];
    let ok = true;
    const outer = this.inType;
    this.inType = true;
    try {
      for (const e of t.shape) {
        const d = this.toDim(this.expr(e, sc), e.loc);
        if (d === undefined) ok = false;
        else shape.push(d);
      }
    } finally {
      this.inType = outer;
    }
    return ok ? { dtype: t.dtype, shape } : undefined;
  }

  /** A value used as a shape expression. Reports TFC206 for fractions and negatives. */
  toDim(v: Value, loc: Span): Dim | undefined {
    switch (v.kind) {
      case 'num':
        if (!v.isInt || !Number.isInteger(v.value) || v.value < 0) {
          this.error('TFC206', loc, ...this.fractionalDim(v));
          return undefined;
        }
        return dimConst(v.value);
      case 'dim':
        return v.dim;
      case 'poison':
        return undefined;
      default:
        this.error('TFC110', loc, `expected a dimension, got ${describe(v)}`);
        return undefined;
    }
  }

  /** TFC206's message and notes; a config constant is named, with its definition and the --set values. */
  private fractionalDim(v: Extract<Value, { kind: 'num' }>): [string, Note[]] {
    const c = v.constant === undefined ? undefined : this.config.constants.get(v.constant);
    if (v.constant === undefined || c === undefined) return [`a dimension must be a non-negative integer, got ${v.value}`, []];
    const set = [...this.overrides].map(([k, x]) => `${k}=${x}`).join(',');
    return [
      `config constant '${v.constant}' is ${v.value}${set === '' ? '' : ` with --set ${set}`}, but a dimension must be a non-negative integer`,
      [{ message: `'${v.constant}' is defined here`, loc: c.loc }],
    ];
  }

  /** Like toDim, but a negative int is allowed (axis, -1 in reshape, slice bounds). */
  toSignedDim(v: Value, loc: Span): Dim | undefined {
    if (v.kind === 'num' && v.isInt && Number.isInteger(v.value)) return dimConst(v.value);
    return this.toDim(v, loc);
  }

  compileTimeInt(v: Value, loc: Span, what: string): number | undefined {
    if (v.kind === 'num' && v.isInt && Number.isInteger(v.value)) return v.value;
    if (v.kind !== 'poison') {
      this.error('TFC110', loc, `${what} must be a compile-time int, got ${describe(v)}`);
    }
    return undefined;
  }

  // ---------------------------------------------------------------------------------------------
  // Names

  lookup(name: string, loc: Span, sc: Scope): Value {
    const local = sc.locals.get(name);
    if (local !== undefined) return local.value;
    if (sc.fn === undefined) {
      const decl = this.decls.get(name);
      if (decl !== undefined && decl.kind === 'output' && decl.family === undefined) {
        const out = this.outputValues.get(this.keyOf(decl, undefined));
        if (out !== undefined) {
          const n = this.nodes[out.value];
          if (n !== undefined) return { kind: 'tensor', id: n.id, type: n.type };
        }
      }
    }
    const c = this.config.constants.get(name);
    if (c !== undefined) return { kind: 'num', value: c.value, isInt: c.isInt, constant: name };
    const bound = this.config.dimBindings.get(name);
    if (bound !== undefined) return num(bound, true);
    if (this.config.dimLocs.has(name)) return dimValue(dimVar(name));
    const decl = this.decls.get(name);
    if (decl !== undefined) {
      const fam = this.families.get(name);
      if (fam !== undefined) return { kind: 'family', fam };
      if (decl.kind === 'output') {
        return this.error('TFC110', loc, `output '${name}' is read before it is assigned`, [{ message: 'declared', loc: decl.loc }]);
      }
      return this.sourceTensor(decl, undefined);
    }
    const k = builtinConstants.get(name);
    if (typeof k === 'number') return num(k, false);
    if (typeof k === 'boolean') return { kind: 'bool', value: k };
    if (dtypeNames.has(name)) return { kind: 'dtype', dtype: name as DType };
    if (this.fns.has(name) || builtins.has(name)) {
      return this.error('TFC110', loc, `'${name}' is a function; call it as ${name}(...)`);
    }
    if (this.isDeclaredConfig(name)) return poison; // a config constant whose own error was reported
    const near = closestName(name, this.visibleNames(sc));
    if (this.inType) {
      // An unknown name in a shape is mostly a dim nobody declared: say where dims are declared
      // (a one-letter "did you mean" is only another dim, as B for an undeclared H).
      const where = sc.fn === undefined ? `declare it in 'dims ${name}' (bound at run time from input shapes) or in config` : `declare it as a generic dim of '${sc.fn.name.name}', fn ${sc.fn.name.name}[${[...sc.fn.generics.map((g) => g.name), name].join(', ')}](...), bound at each call, or in 'dims' for a run-time dim`;
      const typo = near !== undefined && name.length > 2 ? `; or did you mean '${near}'?` : '';
      return this.error('TFC101', loc, `unknown dim '${name}' in a type: ${where}${typo}`);
    }
    return this.error('TFC101', loc, `unknown name '${name}'${near !== undefined ? `; did you mean '${near}'?` : ''}`);
  }

  private isDeclaredConfig(name: string): boolean {
    return this.module.items.some((i) => i.kind === 'config' && i.entries.some((e) => e.name.name === name));
  }

  private visibleNames(sc: Scope): string[] {
    return [...sc.locals.keys(), ...this.config.constants.keys(), ...this.config.dimLocs.keys(), ...this.decls.keys(), ...builtinConstants.keys(), ...dtypeNames];
  }

  // ---------------------------------------------------------------------------------------------
  // Expressions

  expr(e: Expr, sc: Scope): Value {
    switch (e.kind) {
      case 'num':
        return num(e.value, e.isInt);
      case 'str':
        return { kind: 'str', value: e.value };
      case 'name':
        return this.lookup(e.name, e.loc, sc);
      case 'list':
        return { kind: 'list', items: e.items.map((i) => this.expr(i, sc)) };
      case 'unary':
        return unaryOp(this, e.op, this.expr(e.operand, sc), e.loc);
      case 'binary':
        return binaryOp(this, e.op, this.expr(e.left, sc), this.expr(e.right, sc), e.loc, e.left.loc, e.right.loc);
      case 'call':
        return this.call(e.callee.name, e.callee.loc, this.evalArgs(e.args, sc), e.loc);
      case 'pipe': {
        const v = this.expr(e.value, sc);
        const rest = this.evalArgs(e.call.args, sc);
        const apply = (x: Value): Value => this.call(e.call.callee.name, e.call.callee.loc, [{ value: x, loc: e.value.loc }, ...rest], e.call.loc);
        // A tuple piped into f applies f to each value: `split(x, 3) |> heads()`.
        if (v.kind === 'tuple') return { kind: 'tuple', items: v.items.map(apply) };
        return apply(v);
      }
      case 'index':
        return this.index(e, sc);
      case 'grid':
        return lowerGrid(this, e, sc);
    }
  }

  evalArgs(args: Extract<Expr, { kind: 'call' }>['args'], sc: Scope): ArgValue[] {
    return args.map((a) => {
      const value = this.expr(a.value, sc);
      return a.name !== undefined ? { name: a.name, value, loc: a.value.loc } : { value, loc: a.value.loc };
    });
  }

  private index(e: Extract<Expr, { kind: 'index' }>, sc: Scope): Value {
    const target = this.expr(e.target, sc);
    const idx = e.indices.map((i) => this.expr(i, sc));
    if (target.kind === 'poison' || idx.some((v) => v.kind === 'poison')) return poison;
    const [i0] = idx;
    const [e0] = e.indices;
    if (target.kind === 'family') {
      if (idx.length !== 1 || i0 === undefined || e0 === undefined) {
        return this.error('TFC110', e.loc, `family '${target.fam.item.name.name}' takes one index, got ${idx.length}`);
      }
      if (target.fam.item.kind === 'output') {
        return this.error('TFC110', e.loc, `output family '${target.fam.item.name.name}' can be assigned, not read`);
      }
      const m = this.member(target.fam, i0, e0.loc);
      return m === undefined ? poison : this.sourceTensor(target.fam.item, m);
    }
    if (target.kind === 'tensor') {
      if (idx.length !== 1 || i0 === undefined) {
        return this.error('TFC110', e.loc, `indexing a tensor with ${idx.length} indices reads elements, which only a grid body can do; use table[ids] for a gather`);
      }
      const ids = i0.kind === 'num' ? this.scalarAsTensor(i0, 'i32', e.loc, 'an index') : i0;
      if (ids.kind !== 'tensor') {
        return ids.kind === 'poison' ? poison : this.error('TFC110', e.loc, `cannot index a tensor with ${describe(ids)}`);
      }
      return this.addNode('gather', [target, ids], {}, e.loc);
    }
    if (target.kind === 'list' || target.kind === 'tuple') {
      const i = i0 !== undefined && idx.length === 1 && e0 !== undefined ? this.compileTimeInt(i0, e0.loc, 'a list index') : undefined;
      if (i === undefined) return poison;
      const item = target.items[i < 0 ? target.items.length + i : i];
      return item ?? this.error('TFC111', e.loc, `index ${i} is out of range for ${describe(target)}`);
    }
    return this.error('TFC110', e.loc, `cannot index ${describe(target)}`);
  }

  /** A compile-time family member number, range-checked (TFC111). */
  member(fam: FamilyInfo, v: Value, loc: Span): number | undefined {
    const name = fam.item.name.name;
    if (v.kind === 'tensor') {
      this.error('TFC110', loc, `family '${name}' is indexed by a compile-time int (a loop index or index parameter), not ${describe(v)}`);
      return undefined;
    }
    const m = this.compileTimeInt(v, loc, `the index of family '${name}'`);
    if (m === undefined) return undefined;
    if (m < fam.from || m >= fam.to) {
      this.error('TFC111', loc, `'${name}[${m}]' is out of range: the family has members ${fam.from}..${fam.to}`, [
        { message: `'${name}' declared`, loc: fam.item.loc },
      ]);
      return undefined;
    }
    return m;
  }

  // ---------------------------------------------------------------------------------------------
  // Calls

  call(name: string, nameLoc: Span, args: readonly ArgValue[], loc: Span): Value {
    const fn = this.fns.get(name);
    if (fn !== undefined) return this.inline(fn, args, loc);
    const b = getBuiltin(name);
    if (b !== undefined) return lowerBuiltin(this, b, args, loc);
    const near = closestName(name, [...this.fns.keys(), ...builtins.keys()]);
    const isValue = this.decls.has(name) || this.config.constants.has(name);
    return this.error(
      'TFC103',
      nameLoc,
      isValue ? `'${name}' is not a function` : `unknown function '${name}'${near !== undefined ? `; did you mean '${near}'?` : ''}`,
    );
  }

  /** Inlines a user function: binds arguments, unifies generic dims, runs the body. */
  private inline(fn: FnItem, args: readonly ArgValue[], loc: Span): Value {
    const fname = fn.name.name;
    if (this.callStack.includes(fname)) {
      return this.error('TFC106', loc, `'${fname}' calls itself (${[...this.callStack, fname].join(' -> ')}); recursion is not supported`);
    }
    // Bind arguments to parameters by position, then by name.
    const bound: (ArgValue | undefined)[] = fn.params.map(() => undefined);
    let ok = true;
    const positional = args.filter((a) => a.name === undefined);
    if (positional.length > fn.params.length) {
      return this.error('TFC104', loc, `'${fname}' takes ${fn.params.length} argument(s), got ${args.length}`, [
        { message: `'${fname}' declared`, loc: fn.name.loc },
      ]);
    }
    positional.forEach((a, i) => (bound[i] = a));
    for (const a of args) {
      if (a.name === undefined) continue;
      const i = fn.params.findIndex((p) => p.name.name === a.name?.name);
      if (i < 0 || bound[i] !== undefined) {
        const near = closestName(a.name.name, fn.params.map((p) => p.name.name));
        this.error(
          'TFC105',
          a.name.loc,
          i < 0
            ? `'${fname}' has no parameter '${a.name.name}'${near !== undefined ? `; did you mean '${near}'?` : ''}`
            : `parameter '${a.name.name}' of '${fname}' is given twice`,
        );
        ok = false;
        continue;
      }
      bound[i] = a;
    }
    const missing = fn.params.filter((_, i) => bound[i] === undefined);
    if (ok && missing.length > 0) {
      return this.error('TFC104', loc, `'${fname}' takes ${fn.params.length} argument(s), got ${args.length} (missing ${missing.map((p) => `'${p.name.name}'`).join(', ')})`, [
        { message: `'${fname}' declared`, loc: fn.name.loc },
      ]);
    }
    if (!ok) return poison;
    if (bound.some((a) => a?.value.kind === 'poison')) return poison;

    const scope = unifyCall(this, fn, bound as ArgValue[], loc);
    if (scope === undefined) return poison;

    this.called.add(fname);
    this.callStack.push(fname);
    const indexParam = fn.params.find((p) => p.type.kind === 'index');
    const layer = indexParam === undefined ? undefined : scope.locals.get(indexParam.name.name)?.value;
    const pushed = layer !== undefined && layer.kind === 'num';
    if (pushed) this.layerStack.push(layer.value);
    try {
      return this.runFunctionBody(fn, scope);
    } finally {
      this.callStack.pop();
      if (pushed) this.layerStack.pop();
    }
  }

  /** Runs an inlined body in its scope; returns the single result or a tuple. */
  private runFunctionBody(fn: FnItem, sc: Scope): Value {
    const fname = fn.name.name;
    const last = fn.body[fn.body.length - 1];
    const body = last?.kind === 'return' ? fn.body.slice(0, -1) : fn.body;
    this.stmts(body, sc);
    if (last === undefined || last.kind !== 'return') {
      return this.error('TFC109', fn.name.loc, `'${fname}' must end with a return of ${fn.results.length} value(s)`);
    }
    if (last.values.length !== fn.results.length) {
      return this.error('TFC109', last.loc, `'${fname}' returns ${fn.results.length} value(s), this return gives ${last.values.length}`);
    }
    const results: Value[] = [];
    last.values.forEach((e, i) => {
      const declaredExpr = fn.results[i];
      let v = this.expr(e, sc);
      if (declaredExpr === undefined) return;
      const declared = this.evalType(declaredExpr, sc);
      if (declared === undefined || v.kind === 'poison') {
        results.push(poison);
        return;
      }
      if (v.kind !== 'tensor' && declared.shape.length === 0) v = this.scalarAsTensor(v, declared.dtype, e.loc, `result of '${fname}'`);
      if (v.kind !== 'tensor') {
        results.push(this.error('TFC212', e.loc, `'${fname}' returns ${describe(v)}, declared ${printType(declared)}`));
      } else if (!typeEquals(v.type, declared)) {
        results.push(
          this.error('TFC212', e.loc, `'${fname}' returns ${printType(v.type)}, declared ${printType(declared)}`, [
            { message: 'result type declared', loc: declaredExpr.loc },
          ]),
        );
      } else {
        results.push(v);
      }
    });
    return results.length === 1 && results[0] !== undefined ? results[0] : { kind: 'tuple', items: results };
  }

  // ---------------------------------------------------------------------------------------------
  // Statements

  stmts(body: readonly Stmt[], sc: Scope): void {
    for (const s of body) this.stmt(s, sc);
  }

  private stmt(s: Stmt, sc: Scope): void {
    switch (s.kind) {
      case 'return':
        this.error(
          'TFC109',
          s.loc,
          sc.fn === undefined ? 'the model block cannot return; assign the outputs instead' : 'return must be the last statement of a function body',
        );
        return;
      case 'for': {
        const from = this.compileTimeInt(this.expr(s.from, sc), s.from.loc, 'a loop bound');
        const to = this.compileTimeInt(this.expr(s.to, sc), s.to.loc, 'a loop bound');
        const name = s.index.name;
        if (sc.locals.has(name) || this.isGlobal(name)) {
          this.error('TFC102', s.index.loc, `loop index '${name}' is already defined`);
          return;
        }
        if (from === undefined || to === undefined) return;
        for (let i = from; i < to; i++) {
          sc.locals.set(name, { value: num(i, true), kind: 'loop' });
          this.layerStack.push(i);
          try {
            this.stmts(s.body, sc);
          } finally {
            this.layerStack.pop();
          }
        }
        sc.locals.delete(name);
        return;
      }
      case 'assign': {
        const v = this.expr(s.value, sc);
        if (s.targets.length === 1) {
          const [t] = s.targets;
          if (t === undefined) return;
          if (v.kind === 'tuple') {
            this.error('TFC110', s.loc, `the right side gives ${v.items.length} values; assign them to ${v.items.length} names`);
            this.assign(t, poison, s.value.loc, sc);
            return;
          }
          this.assign(t, v, s.value.loc, sc);
          return;
        }
        if (v.kind !== 'tuple' || v.items.length !== s.targets.length) {
          if (v.kind !== 'poison') {
            this.error('TFC110', s.loc, `${s.targets.length} names are assigned but the right side gives ${v.kind === 'tuple' ? `${v.items.length} values` : 'one value'}`);
          }
          for (const t of s.targets) this.assign(t, poison, s.value.loc, sc);
          return;
        }
        s.targets.forEach((t, i) => this.assign(t, v.items[i] ?? poison, s.value.loc, sc));
        return;
      }
    }
  }

  private isGlobal(name: string): boolean {
    return this.config.constants.has(name) || this.config.dimLocs.has(name) || this.decls.has(name) || builtinConstants.has(name);
  }

  private assign(t: AssignTarget, v: Value, valueLoc: Span, sc: Scope): void {
    const name = t.name.name;
    const decl = this.decls.get(name);
    if (decl !== undefined && decl.kind === 'output' && sc.fn === undefined && !sc.locals.has(name)) {
      this.assignOutput(decl, t, v, valueLoc, sc);
      return;
    }
    if (t.index !== undefined) {
      this.error('TFC110', t.loc, `only members of an output family can be assigned with an index ('${name}' is not one)`);
      return;
    }
    const cannot = (what: string, loc?: Span): void => {
      this.error('TFC108', t.name.loc, `cannot assign to ${what} '${name}'`, loc !== undefined ? [{ message: 'declared', loc }] : []);
    };
    const local = sc.locals.get(name);
    if (local !== undefined && local.kind !== 'local' && local.kind !== 'param') {
      cannot(local.kind === 'loop' ? 'the loop index' : local.kind === 'generic' ? 'the generic dim' : 'the index parameter');
      return;
    }
    if (local === undefined) {
      const c = this.config.constants.get(name);
      if (c !== undefined || this.isDeclaredConfig(name)) return cannot('the config constant', c?.loc);
      if (this.config.dimLocs.has(name)) return cannot('the dim', this.config.dimLocs.get(name));
      if (decl !== undefined) {
        return cannot(decl.kind === 'output' ? 'the output (outputs are assigned in the model block)' : `the ${decl.kind}`, decl.loc);
      }
      if (builtinConstants.has(name) || dtypeNames.has(name)) return cannot('the constant');
    }
    sc.locals.set(name, { value: v, kind: local?.kind ?? 'local' });
  }

  private assignOutput(decl: TensorDeclItem, t: AssignTarget, v: Value, valueLoc: Span, sc: Scope): void {
    const name = decl.name.name;
    const fam = this.families.get(name);
    let member: number | undefined;
    if (fam !== undefined) {
      if (t.index === undefined) {
        this.error('TFC110', t.loc, `'${name}' is an output family: assign its members as ${name}[${fam.index}]`);
        return;
      }
      member = this.member(fam, this.expr(t.index, sc), t.index.loc);
      if (member === undefined) return;
    } else if (t.index !== undefined) {
      this.error('TFC110', t.loc, `output '${name}' is not a family; assign it without an index`);
      return;
    }
    this.attemptedOutputs.add(this.keyOf(decl, member));
    const declared = this.declTypes.get(name);
    if (declared === undefined || v.kind === 'poison') return;
    const value = v.kind !== 'tensor' && declared.shape.length === 0 ? this.scalarAsTensor(v, declared.dtype, valueLoc, `output '${name}'`) : v;
    if (value.kind === 'poison') return;
    if (value.kind !== 'tensor') {
      this.error('TFC212', valueLoc, `output '${name}' is declared ${printType(declared)}, assigned ${describe(value)}`);
      return;
    }
    if (!typeEquals(value.type, declared)) {
      this.error('TFC212', valueLoc, `output '${name}' is declared ${printType(declared)}, assigned ${printType(value.type)}`, [
        { message: `'${name}' declared`, loc: decl.loc },
      ]);
      return;
    }
    this.outputValues.set(this.keyOf(decl, member), { value: value.id, loc: t.loc });
  }

  /**
   * Functions the model never calls are still checked, with their parameters as placeholders and
   * generic dims as symbols; the nodes made are dropped. Functions with `index` parameters are
   * skipped: their errors may depend on the index value.
   */
  private checkUncalledFunctions(): void {
    for (const fn of this.fns.values()) {
      if (this.called.has(fn.name.name) || fn.params.some((p) => p.type.kind === 'index')) continue;
      const mark = this.nodes.length;
      const sc: Scope = { locals: new Map(), fn };
      for (const g of fn.generics) sc.locals.set(g.name, { value: dimValue(dimVar(g.name)), kind: 'generic' });
      for (const p of fn.params) {
        if (p.type.kind !== 'tensor') continue;
        const t = this.evalType(p.type, sc);
        const v = t === undefined ? poison : this.addNode('input', [], { name: attr.str(p.name.name) }, p.loc, t);
        sc.locals.set(p.name.name, { value: v, kind: 'param' });
      }
      this.called.add(fn.name.name);
      this.callStack.push(fn.name.name);
      try {
        this.runFunctionBody(fn, sc);
      } finally {
        this.callStack.pop();
      }
      this.nodes.length = mark;
      for (const [k, id] of this.sourceNodes) if (id >= mark) this.sourceNodes.delete(k);
    }
  }

  // ---------------------------------------------------------------------------------------------

  build(): Graph | undefined {
    this.collect();
    modelLimits(this.module, this.config, this.sink); // reports malformed limits (TFC219)
    const models = this.module.items.filter((i): i is Extract<Item, { kind: 'model' }> => i.kind === 'model');
    const [model, second] = models;
    if (model === undefined) {
      this.error('TFC113', fileStart(this.module.file), 'the file has no model block');
      return undefined;
    }
    if (second !== undefined) {
      this.error('TFC113', second.name.loc, `a file has exactly one model block; '${model.name.name}' is already defined`, [
        { message: 'first model block', loc: model.loc },
      ]);
    }
    // Inputs first, every member, in declaration order: the graph's interface does not depend on use.
    for (const item of this.module.items) {
      if (item.kind !== 'input' || this.decls.get(item.name.name) !== item) continue;
      const fam = this.families.get(item.name.name);
      if (fam === undefined) this.sourceTensor(item, undefined);
      else for (let m = fam.from; m < fam.to; m++) this.sourceTensor(item, m);
    }
    const sc: Scope = { locals: new Map(), fn: undefined };
    this.modelName = model.name.name;
    this.stmts(model.body, sc);
    this.modelName = '';
    this.checkUncalledFunctions();

    const outputs: GraphOutput[] = [];
    for (const item of this.module.items) {
      if (item.kind !== 'output' || this.decls.get(item.name.name) !== item) continue;
      if (this.declTypes.get(item.name.name) === undefined) continue;
      const fam = this.families.get(item.name.name);
      const members = fam === undefined ? [undefined] : Array.from({ length: Math.max(0, fam.to - fam.from) }, (_, i) => fam.from + i);
      const missing: string[] = [];
      for (const m of members) {
        const key = this.keyOf(item, m);
        const out = this.outputValues.get(key);
        if (out === undefined && !this.attemptedOutputs.has(key)) missing.push(m === undefined ? item.name.name : `${item.name.name}[${m}]`);
        else if (out !== undefined) outputs.push({ name: key, value: out.value, loc: out.loc });
      }
      if (missing.length > 0) {
        this.error('TFC107', item.name.loc, `output ${missing.map((m) => `'${m}'`).join(', ')} ${missing.length > 1 ? 'are' : 'is'} never assigned in model '${model.name.name}'`);
      }
    }
    if (this.sink.hasErrors) return undefined;
    return { name: model.name.name, dims: this.config.dims, nodes: this.nodes, outputs };
  }
}

/** Generated kernels (WGSL, CUDA) index with 32-bit integers: at most 2^31 - 1 elements a tensor. */
export const maxTensorElements = 2 ** 31 - 1;

/**
 * Why a type is too large for 32-bit kernel indexing, or undefined. Only constant dims count
 * (a symbolic dim's size is checked at run time); one dim alone may not pass the limit either,
 * even when another dim is 0.
 */
function oversizeMessage(t: TensorType): string | undefined {
  let elements = 1;
  for (const d of t.shape) {
    const c = dimConstValue(d) ?? 1;
    if (c > maxTensorElements) return `${printType(t)} has a dimension of ${c}; generated kernels index with 32-bit integers, so a dimension is at most ${maxTensorElements}`;
    elements *= c;
  }
  if (elements <= maxTensorElements) return undefined;
  const n = elements > Number.MAX_SAFE_INTEGER ? elements.toExponential(3) : String(elements);
  return `${printType(t)} has ${n} elements; generated kernels index with 32-bit integers, so a tensor holds at most ${maxTensorElements}`;
}

/** AST -> graph IR with every type inferred; undefined when errors were reported. */
export function buildGraph(module: Module, options: BuildOptions, sink: DiagnosticSink): Graph | undefined {
  return new ModelChecker(module, sink, options.overrides).build();
}
