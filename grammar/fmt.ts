// formatModule: prints an AST back as canonical .tfx source (`tfc fmt`). Two-space indent, one
// statement per line, minimal parentheses that keep the tree exactly, comments re-attached by
// line. parse(fmt(x)) equals parse(x) without locations, and fmt is idempotent (tested).
import type { Arg, Comment, Expr, Item, Module, Stmt, TensorTypeExpr, TypeExpr } from './ast.js';
import { binaryLevel } from './cst-to-ast.js';
import type { Span } from '../src/diag/span.js';

// Binding strength, loosest first (docs/language.md). A grid's body extends as far right as it
// can, so a grid anywhere but a whole-expression slot is parenthesized (level 0).
const PIPE = 1;
const CMP = 4;
const UNARY = 7;
const POSTFIX = 8;

function level(e: Expr): number {
  switch (e.kind) {
    case 'grid':
      return 0;
    case 'pipe':
      return PIPE;
    case 'binary':
      return binaryLevel[e.op] ?? 0;
    case 'unary':
      return UNARY;
    case 'index':
      return POSTFIX;
    default:
      return 9;
  }
}

/**
 * Whether `child` under `parent` needs parentheses for a reader though not for the tree:
 * arithmetic left of `@` (`(silu(a) * b) @ c` reads as `silu(a) * (b @ c)` without them; the
 * other order, `q @ k / s`, reads left to right) and `&&` inside `||`.
 */
function mixesKinds(parent: Extract<Expr, { kind: 'binary' }>, child: Expr): boolean {
  if (child.kind !== 'binary') return false;
  if (parent.op === '@') return child.op === '*' || child.op === '/' || child.op === '//' || child.op === '%';
  return parent.op === '||' && child.op === '&&';
}

function wrap(e: Expr, parens: boolean): string {
  const s = formatExpr(e);
  return parens ? `(${s})` : s;
}

function formatArg(a: Arg): string {
  return a.name === undefined ? formatExpr(a.value) : `${a.name.name}=${formatExpr(a.value)}`;
}

function list(xs: readonly Expr[]): string {
  return xs.map(formatExpr).join(', ');
}

/** One expression in canonical form, parenthesized only where the tree needs it. */
export function formatExpr(e: Expr): string {
  switch (e.kind) {
    case 'num':
      return e.text;
    case 'str':
      return JSON.stringify(e.value);
    case 'name':
      return e.name;
    case 'unary':
      return `${e.op}${wrap(e.operand, level(e.operand) < UNARY)}`;
    case 'binary': {
      const p = binaryLevel[e.op] ?? 0;
      // Left-associative; comparisons do not associate at all. Parentheses a reader needs stay
      // even where the tree does not (mixesKinds).
      const left = wrap(e.left, level(e.left) < p || (p === CMP && level(e.left) === CMP) || mixesKinds(e, e.left));
      const right = wrap(e.right, level(e.right) <= p || mixesKinds(e, e.right));
      return `${left} ${e.op} ${right}`;
    }
    case 'call':
      return `${e.callee.name}(${e.args.map(formatArg).join(', ')})`;
    case 'pipe':
      return `${wrap(e.value, level(e.value) < PIPE)} |> ${formatExpr(e.call)}`;
    case 'index':
      return `${wrap(e.target, level(e.target) < POSTFIX)}[${list(e.indices)}]`;
    case 'list':
      return `[${list(e.items)}]`;
    case 'grid':
      return `grid[${list(e.shape)}](${e.params.map((p) => p.name).join(', ')}) => ${formatExpr(e.body)}`;
  }
}

function formatTensorType(ty: TensorTypeExpr): string {
  return ty.shape.length === 0 ? ty.dtype : `${ty.dtype}[${list(ty.shape)}]`;
}

function formatType(ty: TypeExpr): string {
  return ty.kind === 'index' ? 'index' : formatTensorType(ty);
}

const declKinds: ReadonlySet<string> = new Set(['dims', 'weight', 'input', 'output']);

/** The part of a Span that placing comments needs. */
interface LineSpan {
  readonly line: number;
  readonly endLine: number;
  readonly endCol: number;
}

function collectUnitStarts(module: Module): Map<number, number[]> {
  const starts = new Map<number, number[]>();
  const add = (line: number, col: number): void => {
    const cols = starts.get(line) ?? [];
    cols.push(col);
    starts.set(line, cols);
  };
  // A block's closing brace counts as a unit of its own line.
  const closer = (loc: Span): void => add(loc.endLine, loc.endCol);
  const stmts = (body: readonly Stmt[]): void => {
    for (const s of body) {
      add(s.loc.line, s.loc.col);
      if (s.kind === 'for') {
        stmts(s.body);
        closer(s.loc);
      }
    }
  };
  for (const it of module.items) {
    add(it.loc.line, it.loc.col);
    if (it.kind === 'config') {
      it.entries.forEach((e) => add(e.loc.line, e.loc.col));
      closer(it.loc);
    }
    if (it.kind === 'fn' || it.kind === 'model') {
      stmts(it.body);
      closer(it.loc);
    }
  }
  return starts;
}

/** Writes lines and places comments: own-line ones before the next line, trailing ones after. */
class Writer {
  readonly lines: string[] = [];
  /** The trailing comment of each line, if any; aligned per run of lines in finish(). */
  private readonly trailing: (string | undefined)[] = [];
  private next = 0;
  /** Source line of the last thing written, for keeping (one) blank line where the source had one. */
  private lastSrcLine = 0;
  private afterOpener = true;

  constructor(
    private readonly comments: readonly Comment[],
    /** Source line -> start columns of the statements, entries and items that begin on it. */
    private readonly unitStarts: ReadonlyMap<number, readonly number[]>,
  ) {}

  private blankIfGap(srcLine: number): void {
    if (!this.afterOpener && this.lastSrcLine > 0 && srcLine > this.lastSrcLine + 1) this.blank();
  }

  blank(): void {
    if (this.lines.length > 0 && this.lines[this.lines.length - 1] !== '') this.push(0, '');
  }

  private push(indent: number, text: string, comment?: string): void {
    this.lines.push(text === '' ? '' : `${'  '.repeat(indent)}${text}`);
    this.trailing.push(comment);
    if (text !== '') this.afterOpener = false;
  }

  /** Own-line comments before source line `line`; those inside [unitStart, line) move up too. */
  flushBefore(line: number, indent: number, unitStart = line): void {
    for (let c = this.comments[this.next]; c !== undefined && c.loc.line < line; c = this.comments[++this.next]) {
      const at = Math.min(c.loc.line, unitStart);
      this.blankIfGap(at);
      this.push(indent, c.text);
      this.lastSrcLine = Math.max(this.lastSrcLine, at);
    }
  }

  /** A line of code from source lines [start, end], with the comment that ends line `end`. */
  code(indent: number, text: string, loc: LineSpan): void {
    const start = loc.line;
    const end = loc.endLine;
    this.flushBefore(end, indent, start);
    this.blankIfGap(start);
    const c = this.comments[this.next];
    // With `a = 1; b = 2  # c` the comment belongs to the last unit on the line.
    const isLastOnLine = !(this.unitStarts.get(end) ?? []).some((col) => col > loc.endCol);
    if (c !== undefined && c.loc.line === end && isLastOnLine) {
      this.push(indent, text, c.text);
      this.next++;
    } else {
      this.push(indent, text);
    }
    this.lastSrcLine = Math.max(this.lastSrcLine, end);
  }

  /** `header {` for a block starting on source line `start`; `firstInner` is its first content line. */
  open(indent: number, text: string, start: number, firstInner: number | undefined): void {
    this.flushBefore(start, indent);
    this.blankIfGap(start);
    const c = this.comments[this.next];
    if (c !== undefined && c.loc.line === start && (firstInner === undefined || firstInner > start)) {
      this.push(indent, text, c.text);
      this.next++;
    } else {
      this.push(indent, text);
    }
    this.lastSrcLine = Math.max(this.lastSrcLine, start);
    this.afterOpener = true;
  }

  /** The `}` of a block ending on source line `end`, after the block's remaining comments. */
  close(indent: number, block: LineSpan): void {
    const end = block.endLine;
    this.flushBefore(end, indent + 1);
    this.afterOpener = true; // no blank line before a closing brace
    this.code(indent, '}', { line: end, endLine: end, endCol: block.endCol });
  }

  /** Forces one blank line before what is written next. */
  separate(): void {
    this.blank();
    this.afterOpener = true;
  }

  /**
   * The text, with trailing comments aligned (two spaces after the longest code line) across
   * each run of consecutive lines that all have one, as gofmt does. Alignment depends on the
   * code alone, so fmt stays idempotent.
   */
  finish(): string {
    this.flushBefore(Number.POSITIVE_INFINITY, 0);
    const out: string[] = [];
    for (let i = 0; i < this.lines.length; ) {
      let j = i;
      while (j < this.lines.length && this.trailing[j] !== undefined) j++;
      if (j === i) {
        out.push(this.lines[i] ?? '');
        i++;
        continue;
      }
      const width = Math.max(...this.lines.slice(i, j).map((l) => l.length));
      for (let k = i; k < j; k++) out.push(`${(this.lines[k] ?? '').padEnd(width)}  ${this.trailing[k] ?? ''}`);
      i = j;
    }
    while (out.length > 0 && out[out.length - 1] === '') out.pop();
    return out.length === 0 ? '' : `${out.join('\n')}\n`;
  }
}

function writeStmt(w: Writer, indent: number, s: Stmt): void {
  switch (s.kind) {
    case 'assign': {
      const targets = s.targets.map((t) => (t.index === undefined ? t.name.name : `${t.name.name}[${formatExpr(t.index)}]`));
      w.code(indent, `${targets.join(', ')} = ${formatExpr(s.value)}`, s.loc);
      return;
    }
    case 'return':
      w.code(indent, `return ${list(s.values)}`, s.loc);
      return;
    case 'for':
      w.open(indent, `for ${s.index.name} in ${formatExpr(s.from)}..${formatExpr(s.to)} {`, s.loc.line, s.body[0]?.loc.line);
      writeBody(w, indent + 1, s.body);
      w.close(indent, s.loc);
      return;
  }
}

function writeBody(w: Writer, indent: number, body: readonly Stmt[]): void {
  for (const s of body) writeStmt(w, indent, s);
}

function writeItem(w: Writer, it: Item): void {
  switch (it.kind) {
    case 'config':
      w.open(0, 'config {', it.loc.line, it.entries[0]?.loc.line);
      for (const e of it.entries) {
        const keys = e.keys === undefined ? '' : ` from ${e.keys.map((k) => JSON.stringify(k.value)).join(', ')}`;
        w.code(1, `${e.name.name} = ${formatExpr(e.value)}${keys}`, e.loc);
      }
      w.close(0, it.loc);
      return;
    case 'dims':
      w.code(0, `dims ${it.names.map((n) => n.name).join(', ')}`, it.loc);
      return;
    case 'limit':
      w.code(0, `limit ${formatExpr(it.bound)}`, it.loc);
      return;
    case 'weight':
    case 'input':
    case 'output': {
      const family = it.family === undefined ? '' : `[${it.family.index.name} in ${formatExpr(it.family.from)}..${formatExpr(it.family.to)}]`;
      const key = it.key === undefined ? '' : ` = ${JSON.stringify(it.key.value)}`;
      w.code(0, `${it.kind} ${it.name.name}${family}: ${formatTensorType(it.type)}${key}`, it.loc);
      return;
    }
    case 'fn': {
      const generics = it.generics.length === 0 ? '' : `[${it.generics.map((g) => g.name).join(', ')}]`;
      const params = it.params.map((p) => `${p.name.name}: ${formatType(p.type)}`).join(', ');
      const results = it.results.length === 1 && it.results[0] !== undefined
        ? formatTensorType(it.results[0])
        : `(${it.results.map(formatTensorType).join(', ')})`;
      w.open(0, `fn ${it.name.name}${generics}(${params}) -> ${results} {`, it.loc.line, it.body[0]?.loc.line);
      writeBody(w, 1, it.body);
      w.close(0, it.loc);
      return;
    }
    case 'model':
      w.open(0, `model ${it.name.name} {`, it.loc.line, it.body[0]?.loc.line);
      writeBody(w, 1, it.body);
      w.close(0, it.loc);
      return;
  }
}

/** The canonical source text of a module (ends with a newline unless empty). */
export function formatModule(module: Module): string {
  const w = new Writer(module.comments, collectUnitStarts(module));
  let prev: Item | undefined;
  for (const it of module.items) {
    // A blank line between items, except inside a run of declarations of one kind.
    if (prev !== undefined && !(prev.kind === it.kind && declKinds.has(it.kind))) w.separate();
    writeItem(w, it);
    prev = it;
  }
  return w.finish();
}
