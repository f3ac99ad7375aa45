// CST (parser.ts) -> AST (ast.ts): the only place where the front end gives syntax meaning.
// After error recovery a CST may have nodes with missing children; every method then returns
// undefined and the enclosing statement or item is dropped, so a partial tree never crashes.
// Over 400 lines: one CST visitor, a method per grammar rule (parser.ts), kept in rule order.
import type { CstNode, IToken } from 'chevrotain';
import type {
  Arg,
  AssignTarget,
  BinaryOp,
  CallExpr,
  ConfigEntry,
  DTypeName,
  Expr,
  FamilyRange,
  Ident,
  Item,
  Param,
  Stmt,
  TensorTypeExpr,
  TypeExpr,
  UnaryOp,
} from './ast.js';
import type * as C from './cst.js';
import { tfxParser } from './parser.js';
import { decodeString, UnterminatedString } from './tokens.js';
import { spanUnion, type Span } from '../src/diag/span.js';

/** Binding strength of binary operators (|> is looser, handled in expr); see docs/language.md. */
export const binaryLevel: Readonly<Record<string, number>> = {
  '||': 2,
  '&&': 3,
  '==': 4,
  '!=': 4,
  '<': 4,
  '<=': 4,
  '>': 4,
  '>=': 4,
  '+': 5,
  '-': 5,
  '*': 6,
  '/': 6,
  '//': 6,
  '%': 6,
  '@': 6,
};
const CMP_LEVEL = 4;

/** A syntax mistake found while building the AST (reported by parse.ts as TFC003). */
export interface AstProblem {
  readonly code: 'TFC003' | 'TFC006';
  readonly token: IToken;
  readonly message: string;
}

/**
 * Longest operator chain (`a + b + ...`, `x |> f() |> ...`) or index suffix run accepted. The
 * parser reads these iteratively, but they become left-deep trees that every later stage walks
 * recursively, so a pathological length is TFC006 instead of a stack overflow downstream.
 */
export const maxChain = 1000;

const BaseVisitor = tfxParser.getBaseCstVisitorConstructor<CstNode, unknown>();

function isPresent<T>(x: T | undefined): x is T {
  return x !== undefined;
}

/** All of xs, or undefined when recovery lost any of them. */
function allOrNothing<T>(xs: readonly (T | undefined)[]): T[] | undefined {
  return xs.every(isPresent) ? (xs as T[]) : undefined;
}

export class CstToAst extends BaseVisitor implements C.ICstNodeVisitor<CstNode, unknown> {
  /** Filled by module(); cleared at its start. */
  problems: AstProblem[] = [];

  constructor(private readonly file: string) {
    super();
    this.validateVisitor();
  }

  // ---- locations ----

  private tokSpan(tok: IToken): Span {
    return {
      file: this.file,
      line: tok.startLine ?? 0,
      col: tok.startColumn ?? 0,
      endLine: tok.endLine ?? tok.startLine ?? 0,
      endCol: tok.endColumn ?? tok.startColumn ?? 0,
    };
  }

  private nodeSpan(node: CstNode): Span {
    const l = node.location;
    if (l === undefined || Number.isNaN(l.startOffset)) return { file: this.file, line: 0, col: 0, endLine: 0, endCol: 0 };
    const start = { line: l.startLine ?? 0, col: l.startColumn ?? 0 };
    const hasEnd = l.endLine !== undefined && !Number.isNaN(l.endLine) && l.endColumn !== undefined && !Number.isNaN(l.endColumn);
    return {
      file: this.file,
      line: start.line,
      col: start.col,
      endLine: hasEnd ? (l.endLine ?? start.line) : start.line,
      endCol: hasEnd ? (l.endColumn ?? start.col) : start.col,
    };
  }

  /** A real (not recovery-inserted) token, as an identifier. */
  private ident(tok: IToken | undefined): Ident | undefined {
    if (tok === undefined || tok.isInsertedInRecovery === true) return undefined;
    return { name: tok.image, loc: this.tokSpan(tok) };
  }

  /** Visits a child node unless recovery left it out or marked it partial. */
  private sub<N extends CstNode, R>(node: N | undefined, f: (children: N['children'], node: N) => R | undefined): R | undefined {
    if (node === undefined || node.recoveredNode === true) return undefined;
    return f.call(this, node.children, node);
  }

  // ---- items ----

  module(ctx: C.ModuleCstChildren): Item[] {
    this.problems = [];
    return (ctx.item ?? []).map((n) => this.sub(n, this.item)).filter(isPresent);
  }

  item(ctx: C.ItemCstChildren): Item | undefined {
    if (ctx.configItem) return this.sub(ctx.configItem[0], this.configItem);
    if (ctx.dimsItem) return this.sub(ctx.dimsItem[0], this.dimsItem);
    if (ctx.limitItem) return this.sub(ctx.limitItem[0], this.limitItem);
    if (ctx.tensorDecl) return this.sub(ctx.tensorDecl[0], this.tensorDecl);
    if (ctx.fnItem) return this.sub(ctx.fnItem[0], this.fnItem);
    if (ctx.modelItem) return this.sub(ctx.modelItem[0], this.modelItem);
    return undefined;
  }

  configItem(ctx: C.ConfigItemCstChildren, node: CstNode): Item | undefined {
    const entries = (ctx.configEntry ?? []).map((n) => this.sub(n, this.configEntry)).filter(isPresent);
    return { kind: 'config', entries, loc: this.nodeSpan(node) };
  }

  configEntry(ctx: C.ConfigEntryCstChildren, node: CstNode): ConfigEntry | undefined {
    const name = this.ident(ctx.Ident?.[0]);
    const value = this.sub(ctx.expr?.[0], this.expr);
    if (!name || !value) return undefined;
    const toks = ctx.StringLit ?? [];
    if (toks.some((tok) => tok.isInsertedInRecovery === true)) return undefined;
    const keys = toks.map((tok) => ({ value: this.stringValue(tok), loc: this.tokSpan(tok) }));
    const last = keys[keys.length - 1];
    return { name, value, ...(keys.length > 0 ? { keys } : {}), loc: spanUnion(name.loc, last?.loc ?? value.loc) };
  }

  limitItem(ctx: C.LimitItemCstChildren, node: CstNode): Item | undefined {
    const bound = this.sub(ctx.expr?.[0], this.expr);
    if (!bound) return undefined;
    return { kind: 'limit', bound, loc: this.nodeSpan(node) };
  }

  dimsItem(ctx: C.DimsItemCstChildren, node: CstNode): Item | undefined {
    const names = allOrNothing((ctx.Ident ?? []).map((tok) => this.ident(tok)));
    if (!names || names.length === 0) return undefined;
    return { kind: 'dims', names, loc: this.nodeSpan(node) };
  }

  tensorDecl(ctx: C.TensorDeclCstChildren, node: CstNode): Item | undefined {
    const kw = ctx.DeclKw?.[0];
    const name = this.ident(ctx.Ident?.[0]);
    const type = this.sub(ctx.tensorType?.[0], this.tensorType);
    if (!kw || !name || !type) return undefined;
    const kind = kw.image === 'weight' ? 'weight' : kw.image === 'input' ? 'input' : 'output';
    const familyNode = ctx.familyRange?.[0];
    const family = familyNode ? this.sub(familyNode, this.familyRange) : undefined;
    if (familyNode && !family) return undefined;
    const keyTok = ctx.StringLit?.[0];
    if (keyTok?.isInsertedInRecovery === true) return undefined;
    const key = keyTok ? { value: this.stringValue(keyTok), loc: this.tokSpan(keyTok) } : undefined;
    return {
      kind,
      name,
      ...(family ? { family } : {}),
      type,
      ...(key ? { key } : {}),
      loc: this.nodeSpan(node),
    };
  }

  familyRange(ctx: C.FamilyRangeCstChildren, node: CstNode): FamilyRange | undefined {
    const index = this.ident(ctx.Ident?.[0]);
    const from = this.sub(ctx.from?.[0], this.expr);
    const to = this.sub(ctx.to?.[0], this.expr);
    if (!index || !from || !to) return undefined;
    return { index, from, to, loc: this.nodeSpan(node) };
  }

  tensorType(ctx: C.TensorTypeCstChildren, node: CstNode): TensorTypeExpr | undefined {
    const dt = ctx.DType?.[0];
    if (!dt || dt.isInsertedInRecovery === true) return undefined;
    const listNode = ctx.exprList?.[0];
    const shape = listNode ? this.sub(listNode, this.exprList) : [];
    if (!shape) return undefined;
    return { kind: 'tensor', dtype: dt.image as DTypeName, shape, loc: this.nodeSpan(node) };
  }

  fnItem(ctx: C.FnItemCstChildren, node: CstNode): Item | undefined {
    const name = this.ident(ctx.name?.[0]);
    const generics = allOrNothing((ctx.generic ?? []).map((tok) => this.ident(tok)));
    const params = allOrNothing((ctx.param ?? []).map((n) => this.sub(n, this.param)));
    const results = this.sub(ctx.results?.[0], this.results);
    const body = this.sub(ctx.block?.[0], this.block);
    if (!name || !generics || !params || !results || !body) return undefined;
    return { kind: 'fn', name, generics, params, results, body, loc: this.nodeSpan(node) };
  }

  param(ctx: C.ParamCstChildren, node: CstNode): Param | undefined {
    const name = this.ident(ctx.Ident?.[0]);
    const type = this.sub(ctx.paramType?.[0], this.paramType);
    if (!name || !type) return undefined;
    return { name, type, loc: this.nodeSpan(node) };
  }

  paramType(ctx: C.ParamTypeCstChildren): TypeExpr | undefined {
    if (ctx.tensorType) return this.sub(ctx.tensorType[0], this.tensorType);
    const tok = ctx.Index?.[0];
    if (!tok || tok.isInsertedInRecovery === true) return undefined;
    return { kind: 'index', loc: this.tokSpan(tok) };
  }

  results(ctx: C.ResultsCstChildren): TensorTypeExpr[] | undefined {
    const types = (ctx.tensorType ?? []).map((n) => this.sub(n, this.tensorType));
    return types.length === 0 ? undefined : allOrNothing(types);
  }

  modelItem(ctx: C.ModelItemCstChildren, node: CstNode): Item | undefined {
    const name = this.ident(ctx.Ident?.[0]);
    const body = this.sub(ctx.block?.[0], this.block);
    if (!name || !body) return undefined;
    return { kind: 'model', name, body, loc: this.nodeSpan(node) };
  }

  /** Statements that failed to parse are dropped; the rest of the block is kept. */
  block(ctx: C.BlockCstChildren): Stmt[] {
    return (ctx.statement ?? []).map((n) => this.sub(n, this.statement)).filter(isPresent);
  }

  // ---- statements ----

  statement(ctx: C.StatementCstChildren): Stmt | undefined {
    if (ctx.assignStmt) return this.sub(ctx.assignStmt[0], this.assignStmt);
    if (ctx.forStmt) return this.sub(ctx.forStmt[0], this.forStmt);
    if (ctx.returnStmt) return this.sub(ctx.returnStmt[0], this.returnStmt);
    return undefined;
  }

  assignStmt(ctx: C.AssignStmtCstChildren, node: CstNode): Stmt | undefined {
    const targets = allOrNothing((ctx.assignTarget ?? []).map((n) => this.sub(n, this.assignTarget)));
    const value = this.sub(ctx.expr?.[0], this.expr);
    if (!targets || targets.length === 0 || !value) return undefined;
    return { kind: 'assign', targets, value, loc: this.nodeSpan(node) };
  }

  assignTarget(ctx: C.AssignTargetCstChildren, node: CstNode): AssignTarget | undefined {
    const name = this.ident(ctx.Ident?.[0]);
    if (!name) return undefined;
    if (!ctx.LBracket) return { name, loc: this.nodeSpan(node) };
    const index = this.sub(ctx.expr?.[0], this.expr);
    if (!index) return undefined;
    return { name, index, loc: this.nodeSpan(node) };
  }

  forStmt(ctx: C.ForStmtCstChildren, node: CstNode): Stmt | undefined {
    const index = this.ident(ctx.Ident?.[0]);
    const from = this.sub(ctx.from?.[0], this.expr);
    const to = this.sub(ctx.to?.[0], this.expr);
    const body = this.sub(ctx.block?.[0], this.block);
    if (!index || !from || !to || !body) return undefined;
    return { kind: 'for', index, from, to, body, loc: this.nodeSpan(node) };
  }

  returnStmt(ctx: C.ReturnStmtCstChildren, node: CstNode): Stmt | undefined {
    const values = this.sub(ctx.exprList?.[0], this.exprList);
    if (!values) return undefined;
    return { kind: 'return', values, loc: this.nodeSpan(node) };
  }

  exprList(ctx: C.ExprListCstChildren): Expr[] | undefined {
    const items = (ctx.expr ?? []).map((n) => this.sub(n, this.expr));
    return items.length === 0 ? undefined : allOrNothing(items);
  }

  // ---- expressions ----

  expr(ctx: C.ExprCstChildren): Expr | undefined {
    const ops = ctx.BinOp ?? [];
    const tooLong = ops[maxChain] ?? ctx.Pipe?.[maxChain];
    if (tooLong !== undefined) return this.tooLong(tooLong, 'operators in one expression');
    const operands = allOrNothing((ctx.operand ?? []).map((n) => this.sub(n, this.unaryExpr)));
    if (!operands || operands.length !== ops.length + 1) return undefined;
    let value = this.climb(operands, ops);
    for (const callNode of ctx.callExpr ?? []) {
      const call = this.sub(callNode, this.callExpr);
      if (!value || !call) return undefined;
      value = { kind: 'pipe', value, call, loc: spanUnion(value.loc, call.loc) };
    }
    return value;
  }

  /**
   * Precedence climbing over the flat chain `x0 op1 x1 op2 x2 ...`: binary operators are
   * left-associative, except comparisons, which do not associate (`a < b < c` is an error).
   */
  private climb(operands: readonly Expr[], ops: readonly IToken[]): Expr | undefined {
    let next = 0;
    let opIdx = 0;
    let ok = true;
    const comparisons = new Set<Expr>(); // made in this chain, so not parenthesized
    const parse = (minLevel: number): Expr | undefined => {
      let left = operands[next++];
      for (let op = ops[opIdx]; op !== undefined && left !== undefined; op = ops[opIdx]) {
        const lvl = binaryLevel[op.image] ?? 0;
        if (lvl < minLevel) break;
        opIdx++;
        const right = parse(lvl + 1);
        if (right === undefined) return undefined;
        if (lvl === CMP_LEVEL && comparisons.has(left)) {
          this.problems.push({
            code: 'TFC003',
            token: op,
            message: `comparisons do not chain: found '${op.image}' after a comparison; combine them with && or use parentheses`,
          });
          ok = false;
        }
        left = { kind: 'binary', op: op.image as BinaryOp, left, right, loc: spanUnion(left.loc, right.loc) };
        if (lvl === CMP_LEVEL) comparisons.add(left);
      }
      return left;
    };
    const result = parse(0);
    return ok ? result : undefined;
  }

  private tooLong(token: IToken, what: string): undefined {
    this.problems.push({ code: 'TFC006', token, message: `expression too long: more than ${maxChain} ${what}` });
    return undefined;
  }

  unaryExpr(ctx: C.UnaryExprCstChildren): Expr | undefined {
    const tooLong = ctx.LBracket?.[maxChain];
    if (tooLong !== undefined) return this.tooLong(tooLong, 'index suffixes in a row');
    let value = this.sub(ctx.primary?.[0], this.primary);
    const closers = ctx.RBracket ?? [];
    const lists = ctx.exprList ?? [];
    for (let i = 0; i < lists.length; i++) {
      const indices = this.sub(lists[i], this.exprList);
      const close = closers[i];
      if (!value || !indices || !close || close.isInsertedInRecovery === true) return undefined;
      value = { kind: 'index', target: value, indices, loc: spanUnion(value.loc, this.tokSpan(close)) };
    }
    // Prefix operators bind looser than indexing: apply the innermost (last) first.
    const prefix = ctx.UnaryOp ?? [];
    for (let i = prefix.length - 1; i >= 0 && value; i--) {
      const op = prefix[i];
      if (!op) return undefined;
      value = { kind: 'unary', op: op.image as UnaryOp, operand: value, loc: spanUnion(this.tokSpan(op), value.loc) };
    }
    return value;
  }

  primary(ctx: C.PrimaryCstChildren): Expr | undefined {
    const num = ctx.NumberLit?.[0];
    if (num) {
      return {
        kind: 'num',
        value: Number(num.image),
        isInt: /^\d+$/.test(num.image),
        text: num.image,
        loc: this.tokSpan(num),
      };
    }
    const str = ctx.StringLit?.[0];
    if (str) return { kind: 'str', value: this.stringValue(str), loc: this.tokSpan(str) };
    const dt = ctx.DType?.[0];
    if (dt) return { kind: 'name', name: dt.image, loc: this.tokSpan(dt) };
    if (ctx.nameOrCall) return this.sub(ctx.nameOrCall[0], this.nameOrCall);
    // Parentheses only group: the AST keeps the inner node (and its span) as is.
    if (ctx.LParen) return ctx.RParen?.[0]?.isInsertedInRecovery === true ? undefined : this.sub(ctx.expr?.[0], this.expr);
    if (ctx.listExpr) return this.sub(ctx.listExpr[0], this.listExpr);
    if (ctx.gridExpr) return this.sub(ctx.gridExpr[0], this.gridExpr);
    return undefined;
  }

  nameOrCall(ctx: C.NameOrCallCstChildren, node: CstNode): Expr | undefined {
    const callee = this.ident(ctx.Ident?.[0]);
    if (!callee) return undefined;
    if (!ctx.callArgs) return { kind: 'name', name: callee.name, loc: callee.loc };
    const args = this.sub(ctx.callArgs[0], this.callArgs);
    if (!args) return undefined;
    return { kind: 'call', callee, args, loc: this.nodeSpan(node) };
  }

  callExpr(ctx: C.CallExprCstChildren, node: CstNode): CallExpr | undefined {
    const callee = this.ident(ctx.Ident?.[0]);
    const args = this.sub(ctx.callArgs?.[0], this.callArgs);
    if (!callee || !args) return undefined;
    return { kind: 'call', callee, args, loc: this.nodeSpan(node) };
  }

  callArgs(ctx: C.CallArgsCstChildren): Arg[] | undefined {
    if (ctx.RParen?.[0]?.isInsertedInRecovery === true) return undefined;
    return allOrNothing((ctx.arg ?? []).map((n) => this.sub(n, this.arg)));
  }

  arg(ctx: C.ArgCstChildren, node: CstNode): Arg | undefined {
    const value = this.sub(ctx.expr?.[0], this.expr);
    if (!value) return undefined;
    if (!ctx.argName) return { value, loc: value.loc };
    const name = this.ident(ctx.argName[0]);
    if (!name) return undefined;
    return { name, value, loc: spanUnion(name.loc, value.loc) };
  }

  listExpr(ctx: C.ListExprCstChildren, node: CstNode): Expr | undefined {
    const items = ctx.exprList ? this.sub(ctx.exprList[0], this.exprList) : [];
    if (!items) return undefined;
    return { kind: 'list', items, loc: this.nodeSpan(node) };
  }

  gridExpr(ctx: C.GridExprCstChildren, node: CstNode): Expr | undefined {
    const shape = this.sub(ctx.exprList?.[0], this.exprList);
    const params = allOrNothing((ctx.Ident ?? []).map((tok) => this.ident(tok)));
    const body = this.sub(ctx.expr?.[0], this.expr);
    if (!shape || !params || params.length === 0 || !body) return undefined;
    return { kind: 'grid', shape, params, body, loc: spanUnion(this.nodeSpan(node), body.loc) };
  }

  private stringValue(tok: IToken): string {
    return decodeString(tok.image, tok.tokenType !== UnterminatedString).value;
  }
}
