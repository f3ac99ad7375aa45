// printAst: the AST as an indented tree (`tfc compile --emit ast`), one node per line with its
// role, kind and `@file:line:col` (like MLIR Toy's -emit=ast). Deterministic: it depends on the
// tree alone. Used by the parser golden tests in test/golden/ast.
import type { Arg, Expr, FamilyRange, Item, Module, Stmt, TensorTypeExpr, TypeExpr } from './ast.js';
import type { Span } from '../src/diag/span.js';

export interface PrintAstOptions {
  readonly locs: boolean;
}

export function printAst(module: Module, options: PrintAstOptions = { locs: true }): string {
  const lines: string[] = [];
  const at = (loc: Span): string => (options.locs ? ` @${loc.file}:${loc.line}:${loc.col}` : '');
  const emit = (depth: number, text: string, loc?: Span): void => {
    lines.push(`${'  '.repeat(depth)}${text}${loc !== undefined ? at(loc) : ''}`);
  };

  const expr = (d: number, role: string, e: Expr): void => {
    const r = role === '' ? '' : `${role}: `;
    switch (e.kind) {
      case 'num':
        emit(d, `${r}Num ${e.text}`, e.loc);
        return;
      case 'str':
        emit(d, `${r}Str ${JSON.stringify(e.value)}`, e.loc);
        return;
      case 'name':
        emit(d, `${r}Name ${e.name}`, e.loc);
        return;
      case 'unary':
        emit(d, `${r}Unary ${e.op}`, e.loc);
        expr(d + 1, '', e.operand);
        return;
      case 'binary':
        emit(d, `${r}Binary ${e.op}`, e.loc);
        expr(d + 1, 'lhs', e.left);
        expr(d + 1, 'rhs', e.right);
        return;
      case 'call':
        emit(d, `${r}Call ${e.callee.name}`, e.loc);
        e.args.forEach((a) => arg(d + 1, a));
        return;
      case 'pipe':
        emit(d, `${r}Pipe`, e.loc);
        expr(d + 1, 'value', e.value);
        expr(d + 1, 'into', e.call);
        return;
      case 'index':
        emit(d, `${r}Index`, e.loc);
        expr(d + 1, 'target', e.target);
        e.indices.forEach((i) => expr(d + 1, 'at', i));
        return;
      case 'list':
        emit(d, `${r}List`, e.loc);
        e.items.forEach((i) => expr(d + 1, '', i));
        return;
      case 'grid':
        emit(d, `${r}Grid (${e.params.map((p) => p.name).join(', ')})`, e.loc);
        e.shape.forEach((s) => expr(d + 1, 'dim', s));
        expr(d + 1, 'body', e.body);
        return;
    }
  };

  const arg = (d: number, a: Arg): void => {
    if (a.name === undefined) expr(d, 'arg', a.value);
    else expr(d, `arg ${a.name.name}`, a.value);
  };

  const tensorType = (d: number, role: string, ty: TensorTypeExpr): void => {
    emit(d, `${role}: Type ${ty.dtype}${ty.shape.length === 0 ? '[]' : ''}`, ty.loc);
    ty.shape.forEach((s) => expr(d + 1, 'dim', s));
  };

  const typeExpr = (d: number, role: string, ty: TypeExpr): void => {
    if (ty.kind === 'index') emit(d, `${role}: Type index`, ty.loc);
    else tensorType(d, role, ty);
  };

  const family = (d: number, f: FamilyRange): void => {
    emit(d, `Family ${f.index.name}`, f.loc);
    expr(d + 1, 'from', f.from);
    expr(d + 1, 'to', f.to);
  };

  const stmt = (d: number, s: Stmt): void => {
    switch (s.kind) {
      case 'assign':
        emit(d, 'Assign', s.loc);
        for (const tg of s.targets) {
          emit(d + 1, `target ${tg.name.name}`, tg.loc);
          if (tg.index !== undefined) expr(d + 2, 'at', tg.index);
        }
        expr(d + 1, 'value', s.value);
        return;
      case 'for':
        emit(d, `For ${s.index.name}`, s.loc);
        expr(d + 1, 'from', s.from);
        expr(d + 1, 'to', s.to);
        s.body.forEach((b) => stmt(d + 1, b));
        return;
      case 'return':
        emit(d, 'Return', s.loc);
        s.values.forEach((v) => expr(d + 1, '', v));
        return;
    }
  };

  const item = (d: number, it: Item): void => {
    switch (it.kind) {
      case 'config':
        emit(d, 'Config', it.loc);
        for (const e of it.entries) {
          expr(d + 1, e.name.name, e.value);
          for (const k of e.keys ?? []) emit(d + 2, `from: ${JSON.stringify(k.value)}`, k.loc);
        }
        return;
      case 'limit':
        emit(d, 'Limit', it.loc);
        expr(d + 1, 'bound', it.bound);
        return;
      case 'dims':
        emit(d, `Dims ${it.names.map((n) => n.name).join(', ')}`, it.loc);
        return;
      case 'weight':
      case 'input':
      case 'output':
        emit(d, `${it.kind[0]?.toUpperCase() ?? ''}${it.kind.slice(1)} ${it.name.name}`, it.loc);
        if (it.family !== undefined) family(d + 1, it.family);
        tensorType(d + 1, 'type', it.type);
        if (it.key !== undefined) emit(d + 1, `key: ${JSON.stringify(it.key.value)}`, it.key.loc);
        return;
      case 'fn':
        emit(d, `Fn ${it.name.name}${it.generics.length > 0 ? `[${it.generics.map((g) => g.name).join(', ')}]` : ''}`, it.loc);
        for (const p of it.params) typeExpr(d + 1, `param ${p.name.name}`, p.type);
        it.results.forEach((r) => tensorType(d + 1, 'result', r));
        it.body.forEach((s) => stmt(d + 1, s));
        return;
      case 'model':
        emit(d, `Model ${it.name.name}`, it.loc);
        it.body.forEach((s) => stmt(d + 1, s));
        return;
    }
  };

  emit(0, `Module ${module.file}`);
  module.items.forEach((it) => item(1, it));
  for (const c of module.comments) emit(1, `Comment ${JSON.stringify(c.text)}`, c.loc);
  return `${lines.join('\n')}\n`;
}
