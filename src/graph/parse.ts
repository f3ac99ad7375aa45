// Reads the graph IR text that printGraph (print.ts, which documents the syntax) writes, so that
// dumps become test inputs and the CLI can start from an `.ir` file. Malformed text is a user
// error: TFC310 diagnostics with line:col, several per run (the parser skips to the next line).
// Op names and attribute kinds are checked against the catalog; types are read, not inferred
// (verifyGraph re-infers them), so hand-written bad graphs can still be verified.
// Over 400 lines: one recursive-descent parser class (IrParser) with its small tokenizer; the
// syntax it reads is print.ts's.
import { type Dim, dimAdd, dimConst, dimMul, dimNeg, dimSub, dimVar } from '../base/dim.js';
import { DiagnosticSink, closestName, diag } from '../diag/diagnostic.js';
import type { Span } from '../diag/span.js';
import { catalog, getOp } from '../ops/catalog.js';
import type { Attr, AttrKind, Graph, GraphOutput, Node, ScalarExpr } from './ir.js';
import { defaultScalarDType } from './print.js';
import { type DType, type TensorType, dtypes } from './types.js';
import { freezeGraph } from './rewrite.js';

type TokKind = 'ident' | 'num' | 'str' | 'ref' | 'punct' | 'eof';
interface Tok {
  readonly kind: TokKind;
  readonly text: string;
  readonly pos: number; // offset of the first character
  readonly end: number; // offset after the last character
}

const PUNCT = ['=>', '(', ')', '{', '}', '[', ']', ',', '=', ':', '+', '-', '*'] as const;
const RE_WS = /(?:[ \t\r\n]+|\/\/[^\n]*)+/y;
const RE_IDENT = /[A-Za-z_][A-Za-z0-9_]*/y;
const RE_NUM = /\d+(?:\.\d+)?(?:[eE][-+]?\d+)?/y;
const RE_STR = /"(?:[^"\\\n]|\\.)*"/y;
const RE_REF = /%[A-Za-z0-9_]+/y;
const RE_SPAN = /(?:("(?:[^"\\\n]|\\.)*")|([A-Za-z0-9_./+@-]+)):(\d+):(\d+)(?:[ \t]+to[ \t]+(?:(\d+))?:(\d+))?/y;

/** Unwinds one statement after its diagnostic was reported; never escapes parseGraph. */
class StatementFailed extends Error {}

class IrParser {
  private pos = 0;
  private readonly lineStarts: number[] = [0];
  private readonly values = new Map<string, number>(); // %name -> node index
  readonly nodes: Node[] = [];
  readonly outputs: GraphOutput[] = [];
  private failed = false;

  constructor(
    private readonly text: string,
    private readonly file: string,
    private readonly sink: DiagnosticSink,
  ) {
    for (let i = 0; i < text.length; i++) if (text[i] === '\n') this.lineStarts.push(i + 1);
  }

  // ---- locations and errors ----
  private lineCol(offset: number): { line: number; col: number } {
    let lo = 0;
    let hi = this.lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((this.lineStarts[mid] ?? 0) <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, col: offset - (this.lineStarts[lo] ?? 0) + 1 };
  }

  private spanOf(start: number, end: number): Span {
    const a = this.lineCol(start);
    const b = this.lineCol(Math.max(start, end - 1));
    return { file: this.file, line: a.line, col: a.col, endLine: b.line, endCol: b.col };
  }

  private error(start: number, end: number, message: string): void {
    this.failed = true;
    this.sink.report(diag('TFC310', this.spanOf(start, end), message));
  }

  private fail(tok: Tok, message: string): never {
    this.error(tok.pos, tok.end, message);
    throw new StatementFailed(message);
  }

  get hasFailed(): boolean {
    return this.failed;
  }

  // ---- tokens ----
  /** The offset after any whitespace and comments at the current position (does not move). */
  private wsEnd(): number {
    RE_WS.lastIndex = this.pos;
    return RE_WS.exec(this.text) !== null ? RE_WS.lastIndex : this.pos;
  }

  private peek(): Tok {
    const p = this.wsEnd();
    if (p >= this.text.length) return { kind: 'eof', text: '', pos: p, end: p };
    const tryRe = (re: RegExp, kind: TokKind): Tok | undefined => {
      re.lastIndex = p;
      const m = re.exec(this.text);
      return m === null ? undefined : { kind, text: m[0], pos: p, end: p + m[0].length };
    };
    const t = tryRe(RE_IDENT, 'ident') ?? tryRe(RE_NUM, 'num') ?? tryRe(RE_STR, 'str') ?? tryRe(RE_REF, 'ref');
    if (t !== undefined) return t;
    for (const s of PUNCT) if (this.text.startsWith(s, p)) return { kind: 'punct', text: s, pos: p, end: p + s.length };
    const ch = this.text[p] ?? '';
    return { kind: 'punct', text: ch, pos: p, end: p + 1 };
  }

  private next(): Tok {
    const t = this.peek();
    this.pos = t.end;
    return t;
  }

  private isPunct(text: string): boolean {
    const t = this.peek();
    return t.kind === 'punct' && t.text === text;
  }

  private accept(text: string): boolean {
    if (this.isPunct(text)) {
      this.next();
      return true;
    }
    return false;
  }

  private expect(text: string, what?: string): Tok {
    const t = this.peek();
    if (t.kind !== 'punct' || t.text !== text) this.fail(t, `expected '${text}'${what === undefined ? '' : ` ${what}`}, found ${describe(t)}`);
    return this.next();
  }

  private expectIdent(what: string): Tok {
    const t = this.peek();
    if (t.kind !== 'ident') this.fail(t, `expected ${what}, found ${describe(t)}`);
    return this.next();
  }

  /** Skips to the start of the next line (error recovery). */
  private skipLine(): void {
    const nl = this.text.indexOf('\n', this.pos);
    this.pos = nl < 0 ? this.text.length : nl + 1;
  }

  private onSameLine(offset: number): boolean {
    const p = this.wsEnd();
    return p < this.text.length && this.lineCol(offset).line === this.lineCol(p).line;
  }

  // ---- the graph ----
  parse(): { name: string; dims: string[] } | undefined {
    let header: { name: string; dims: string[] };
    try {
      const kw = this.peek();
      if (kw.kind !== 'ident' || kw.text !== 'graph') this.fail(kw, `expected 'graph', found ${describe(kw)}`);
      this.next();
      const nameTok = this.next();
      let name: string;
      if (nameTok.kind === 'ident') name = nameTok.text;
      else if (nameTok.kind === 'str') name = parseJsonString(nameTok.text);
      else this.fail(nameTok, `expected a graph name, found ${describe(nameTok)}`);
      this.expect('(');
      const dims: string[] = [];
      if (!this.accept(')')) {
        do {
          const d = this.expectIdent('a dimension name');
          if (dims.includes(d.text)) this.error(d.pos, d.end, `dimension '${d.text}' is listed twice`);
          dims.push(d.text);
        } while (this.accept(','));
        this.expect(')');
      }
      this.expect('{');
      header = { name, dims };
    } catch (e) {
      if (e instanceof StatementFailed) return undefined;
      throw e;
    }
    for (;;) {
      const t = this.peek();
      if (t.kind === 'eof') {
        this.error(t.pos, t.end, "expected '}' to close the graph, found the end of the text");
        return header;
      }
      if (t.kind === 'punct' && t.text === '}') {
        this.next();
        const after = this.peek();
        if (after.kind !== 'eof') this.error(after.pos, after.end, `unexpected ${describe(after)} after the end of the graph`);
        return header;
      }
      try {
        if (t.kind === 'ref') this.parseNode();
        else if (t.kind === 'ident' && t.text === 'output') this.parseOutput();
        else this.fail(t, `expected a node '%N = ...', 'output' or '}', found ${describe(t)}`);
      } catch (e) {
        if (!(e instanceof StatementFailed)) throw e;
        this.skipLine();
      }
    }
  }

  private parseNode(): void {
    const def = this.next();
    if (this.values.has(def.text)) this.fail(def, `value ${def.text} is defined twice`);
    this.expect('=');
    const opTok = this.expectIdent('an op name');
    const op = getOp(opTok.text);
    if (op === undefined) {
      const near = closestName(opTok.text, catalog.keys());
      this.fail(opTok, `unknown op '${opTok.text}'${near === undefined ? '' : ` (did you mean '${near}'?)`}`);
    }
    const operands: number[] = [];
    if (this.peek().kind === 'ref') {
      do operands.push(this.parseRef());
      while (this.accept(','));
    }
    const operandTypes = operands.map((i) => this.nodes[i]?.type);
    const attrs: Record<string, Attr> = {};
    const keyToks = new Map<string, Tok>();
    if (this.accept('{')) {
      if (!this.accept('}')) {
        do {
          const k = this.expectIdent('an attribute name');
          if (keyToks.has(k.text)) this.fail(k, `attribute '${k.text}' is given twice`);
          keyToks.set(k.text, k);
          this.expect('=');
          attrs[k.text] = this.parseAttrValue(operandTypes);
        } while (this.accept(','));
        this.expect('}', 'to close the attributes');
      }
    }
    // Attribute kinds against the catalog (reported, but the node is still built).
    for (const [k, tok] of keyToks) {
      const want = op.attrs[k] ?? op.optionalAttrs?.[k];
      const got = attrs[k]?.kind;
      if (want === undefined) this.error(tok.pos, tok.end, `op '${op.name}' has no attribute '${k}'${suggest(k, [...Object.keys(op.attrs), ...Object.keys(op.optionalAttrs ?? {})])}`);
      else if (got !== want) this.error(tok.pos, tok.end, `attribute '${k}' of '${op.name}' must be ${kindName(want)}, found ${kindName(got)}`);
    }
    for (const [k, kind] of Object.entries(op.attrs)) {
      if (!keyToks.has(k)) this.error(opTok.pos, opTok.end, `op '${op.name}' needs attribute '${k}' (${kindName(kind)})`);
    }
    this.expect(':', 'before the result type');
    const type = this.parseType();
    let loc: Span = this.spanOf(def.pos, this.pos);
    let from: Span[] | undefined;
    if (this.peekKeyword('loc')) loc = this.parseLocClause('loc');
    if (this.peekKeyword('from')) from = this.parseFromClause();
    this.endOfStatement(def);
    const id = this.nodes.length;
    this.values.set(def.text, id);
    const node: Node = from === undefined ? { id, op: op.name, operands, attrs, type, loc } : { id, op: op.name, operands, attrs, type, loc, from };
    this.nodes.push(node);
  }

  private parseOutput(): void {
    const kw = this.next();
    const nameTok = this.next();
    if (nameTok.kind !== 'str') this.fail(nameTok, `expected the output name as a string, found ${describe(nameTok)}`);
    const name = parseJsonString(nameTok.text);
    if (this.outputs.some((o) => o.name === name)) this.fail(nameTok, `output ${nameTok.text} is given twice`);
    this.expect('=');
    const value = this.parseRef();
    let loc: Span = this.spanOf(kw.pos, this.pos);
    if (this.peekKeyword('loc')) loc = this.parseLocClause('loc');
    this.endOfStatement(kw);
    this.outputs.push({ name, value, loc });
  }

  private endOfStatement(start: Tok): void {
    if (this.onSameLine(start.pos)) {
      const t = this.peek();
      this.fail(t, `unexpected ${describe(t)} at the end of the statement`);
    }
  }

  private peekKeyword(word: string): boolean {
    const t = this.peek();
    return t.kind === 'ident' && t.text === word;
  }

  private parseRef(): number {
    const t = this.next();
    if (t.kind !== 'ref') this.fail(t, `expected a value %N, found ${describe(t)}`);
    const id = this.values.get(t.text);
    if (id === undefined) this.fail(t, `use of undefined value ${t.text}`);
    return id;
  }

  // ---- types and dims ----
  private parseType(): TensorType {
    const dt = this.expectIdent('a dtype');
    const dtype = asDType(dt.text);
    if (dtype === undefined) this.fail(dt, `unknown dtype '${dt.text}' (expected one of ${dtypes.join(', ')})`);
    this.expect('[', 'after the dtype');
    const shape: Dim[] = [];
    if (!this.accept(']')) {
      do shape.push(this.parseDimExpr());
      while (this.accept(','));
      this.expect(']', 'to close the shape');
    }
    return { dtype, shape };
  }

  private parseDimExpr(): Dim {
    let d = this.parseDimProduct();
    for (;;) {
      if (this.accept('+')) d = dimAdd(d, this.parseDimProduct());
      else if (this.accept('-')) d = dimSub(d, this.parseDimProduct());
      else return d;
    }
  }

  private parseDimProduct(): Dim {
    let d = this.parseDimAtom();
    while (this.accept('*')) d = dimMul(d, this.parseDimAtom());
    return d;
  }

  private parseDimAtom(): Dim {
    const t = this.next();
    if (t.kind === 'punct' && t.text === '-') return dimNeg(this.parseDimAtom());
    if (t.kind === 'punct' && t.text === '(') {
      const d = this.parseDimExpr();
      this.expect(')');
      return d;
    }
    if (t.kind === 'num' && /^\d+$/.test(t.text)) {
      const n = Number(t.text);
      if (!Number.isSafeInteger(n)) this.fail(t, `dimension ${t.text} is too large`);
      return dimConst(n);
    }
    if (t.kind === 'ident') return dimVar(t.text);
    return this.fail(t, `expected a dimension (an integer or a name), found ${describe(t)}`);
  }

  // ---- attributes ----
  private parseAttrValue(operandTypes: readonly (TensorType | undefined)[]): Attr {
    const t = this.peek();
    if (t.kind === 'str') {
      this.next();
      return { kind: 'str', value: parseJsonString(t.text) };
    }
    if (t.kind === 'punct' && t.text === '[') {
      this.next();
      const value: number[] = [];
      if (!this.accept(']')) {
        do value.push(this.parseInt());
        while (this.accept(','));
        this.expect(']', 'to close the int list');
      }
      return { kind: 'ints', value };
    }
    if (t.kind === 'punct' && t.text === '(') return this.parseLambda(operandTypes);
    if (t.kind === 'punct' && t.text === '-') {
      const n = this.parseNumber();
      return n.isInt ? { kind: 'int', value: n.value } : { kind: 'float', value: n.value };
    }
    if (t.kind === 'num') {
      const n = this.parseNumber();
      return n.isInt ? { kind: 'int', value: n.value } : { kind: 'float', value: n.value };
    }
    if (t.kind === 'ident') {
      if (t.text === 'true' || t.text === 'false') {
        this.next();
        return { kind: 'bool', value: t.text === 'true' };
      }
      if (t.text === 'inf' || t.text === 'nan') return { kind: 'float', value: this.parseNumber().value };
      const dtype = asDType(t.text);
      if (dtype !== undefined) {
        this.next();
        return { kind: 'dtype', value: dtype };
      }
      if (t.text === 'dim') {
        this.next();
        this.expect('(');
        const value = this.parseDimExpr();
        this.expect(')');
        return { kind: 'dim', value };
      }
      if (t.text === 'dims') {
        this.next();
        this.expect('[');
        const value: Dim[] = [];
        if (!this.accept(']')) {
          do value.push(this.parseDimExpr());
          while (this.accept(','));
          this.expect(']', 'to close the dims');
        }
        return { kind: 'dims', value };
      }
    }
    return this.fail(t, `expected an attribute value, found ${describe(t)}`);
  }

  private parseInt(): number {
    const start = this.peek();
    const n = this.parseNumber();
    if (!n.isInt) this.fail(start, `expected an integer, found ${n.text}`);
    return n.value;
  }

  /** `-`? (digits | float | inf | nan). */
  private parseNumber(): { value: number; isInt: boolean; text: string } {
    const neg = this.accept('-');
    const t = this.next();
    const sign = neg ? -1 : 1;
    if (t.kind === 'ident' && (t.text === 'inf' || t.text === 'nan')) {
      return { value: t.text === 'inf' ? sign * Infinity : NaN, isInt: false, text: (neg ? '-' : '') + t.text };
    }
    if (t.kind !== 'num') this.fail(t, `expected a number, found ${describe(t)}`);
    const isInt = /^\d+$/.test(t.text);
    const value = sign * Number(t.text);
    if (isInt && !Number.isSafeInteger(value)) this.fail(t, `integer ${t.text} is too large`);
    return { value, isInt, text: (neg ? '-' : '') + t.text };
  }

  private parseLambda(operandTypes: readonly (TensorType | undefined)[]): Attr {
    this.expect('(');
    const params: string[] = [];
    if (!this.accept(')')) {
      do {
        const p = this.expectIdent('a lambda parameter');
        if (params.includes(p.text)) this.fail(p, `lambda parameter '${p.text}' is listed twice`);
        if (RESERVED_IN_LAMBDA.has(p.text)) this.fail(p, `'${p.text}' cannot name a lambda parameter`);
        params.push(p.text);
      } while (this.accept(','));
      this.expect(')');
    }
    this.expect('=>');
    const body = this.parseScalar(params, operandTypes);
    return { kind: 'lambda', params, body };
  }

  private parseScalar(params: readonly string[], operandTypes: readonly (TensorType | undefined)[]): ScalarExpr {
    const t = this.peek();
    if (t.kind === 'num' || (t.kind === 'punct' && t.text === '-') || (t.kind === 'ident' && (t.text === 'inf' || t.text === 'nan'))) {
      const n = this.parseNumber();
      return { kind: 'const', value: n.value, dtype: n.isInt ? 'i32' : 'f32' };
    }
    if (t.kind !== 'ident') return this.fail(t, `expected a scalar expression, found ${describe(t)}`);
    this.next();
    if (t.text === 'true' || t.text === 'false') return { kind: 'const', value: t.text === 'true' ? 1 : 0, dtype: 'bool' };
    if (!this.isPunct('(') && !this.isPunct(':') && !this.isPunct('{')) {
      const axis = params.indexOf(t.text);
      if (axis < 0) this.fail(t, `unknown name '${t.text}' in the lambda body (parameters: ${params.join(', ')})`);
      return { kind: 'index', axis };
    }
    let explicit: DType | undefined;
    if (this.accept(':')) {
      const dt = this.expectIdent('a dtype');
      explicit = asDType(dt.text);
      if (explicit === undefined) this.fail(dt, `unknown dtype '${dt.text}'`);
    }
    // An op's attributes, as on a node: `gelu{approx="tanh"}(x)`.
    const attrs: Record<string, Attr> = {};
    if (this.accept('{') && !this.accept('}')) {
      do {
        const k = this.expectIdent('an attribute name');
        if (attrs[k.text] !== undefined) this.fail(k, `attribute '${k.text}' is given twice`);
        this.expect('=');
        attrs[k.text] = this.parseAttrValue(operandTypes);
      } while (this.accept(','));
      this.expect('}', 'to close the attributes');
    }
    this.expect('(');
    const name = t.text;
    const hasAttrs = Object.keys(attrs).length > 0;
    if (hasAttrs && (name === 'dim' || name === 'index' || name === 'read' || asDType(name) !== undefined)) this.fail(t, `'${name}(...)' takes no attributes`);
    if (explicit === undefined && name === 'dim') {
      const dim = this.parseDimExpr();
      this.expect(')');
      return { kind: 'dim', dim };
    }
    if (explicit === undefined && name === 'index') {
      const axis = this.parseInt();
      this.expect(')');
      return { kind: 'index', axis };
    }
    const constType = explicit === undefined ? asDType(name) : undefined;
    if (constType !== undefined) {
      const n = this.parseNumber();
      this.expect(')');
      return { kind: 'const', value: n.value, dtype: constType };
    }
    if (name === 'read') {
      const operand = this.parseInt();
      const indices: ScalarExpr[] = [];
      while (this.accept(',')) indices.push(this.parseScalar(params, operandTypes));
      this.expect(')');
      const dtype = explicit ?? defaultScalarDType({ kind: 'read', operand }, operandTypes);
      if (dtype === undefined) this.fail(t, `read(${operand}, ...) refers to operand ${operand}, but the node has ${operandTypes.length} operands`);
      return { kind: 'read', operand, indices, dtype };
    }
    if (getOp(name) === undefined) {
      this.fail(t, `unknown op '${name}' in the lambda body${suggest(name, catalog.keys())}`);
    }
    const args: ScalarExpr[] = [];
    if (!this.accept(')')) {
      do args.push(this.parseScalar(params, operandTypes));
      while (this.accept(','));
      this.expect(')');
    }
    const dtype = explicit ?? defaultScalarDType({ kind: 'apply', op: name, args }, operandTypes);
    if (dtype === undefined) this.fail(t, `cannot infer the dtype of '${name}(...)' here; write it as '${name}:DTYPE(...)'`);
    return hasAttrs ? { kind: 'apply', op: name, args, dtype, attrs } : { kind: 'apply', op: name, args, dtype };
  }

  // ---- locations ----
  private parseLocClause(word: 'loc'): Span {
    this.next();
    this.expect('(', `after '${word}'`);
    const s = this.parseSpanText();
    this.expect(')', `to close '${word}(...)'`);
    return s;
  }

  private parseFromClause(): Span[] {
    this.next();
    this.expect('(', "after 'from'");
    const spans: Span[] = [];
    if (!this.accept(')')) {
      do spans.push(this.parseSpanText());
      while (this.accept(','));
      this.expect(')', "to close 'from(...)'");
    }
    return spans;
  }

  /** `file:line:col` with an optional ` to [endLine]:endCol`; read as raw text, not tokens. */
  private parseSpanText(): Span {
    this.pos = this.wsEnd();
    RE_SPAN.lastIndex = this.pos;
    const m = RE_SPAN.exec(this.text);
    if (m === null) {
      const t = this.peek();
      return this.fail(t, `expected a location 'file:line:col', found ${describe(t)}`);
    }
    this.pos = RE_SPAN.lastIndex;
    const file = m[1] !== undefined ? parseJsonString(m[1]) : (m[2] ?? '');
    const line = Number(m[3]);
    const col = Number(m[4]);
    const endCol = m[6] === undefined ? col : Number(m[6]);
    const endLine = m[6] === undefined ? line : m[5] === undefined ? line : Number(m[5]);
    return { file, line, col, endLine, endCol };
  }
}

const RESERVED_IN_LAMBDA: ReadonlySet<string> = new Set(['true', 'false', 'inf', 'nan']);

/** Parses IR text; undefined (with TFC310 diagnostics in `sink`) when it is malformed. */
export function parseGraph(text: string, file: string, sink: DiagnosticSink): Graph | undefined {
  const p = new IrParser(text, file, sink);
  const header = p.parse();
  if (header === undefined || p.hasFailed) return undefined;
  return freezeGraph({ name: header.name, dims: header.dims, nodes: p.nodes, outputs: p.outputs });
}

function asDType(s: string): DType | undefined {
  return (dtypes as readonly string[]).includes(s) ? (s as DType) : undefined;
}

function parseJsonString(text: string): string {
  const v: unknown = JSON.parse(text);
  return typeof v === 'string' ? v : '';
}

function describe(t: Tok): string {
  switch (t.kind) {
    case 'eof':
      return 'the end of the text';
    case 'str':
      return `string ${t.text}`;
    default:
      return `'${t.text}'`;
  }
}

function kindName(k: AttrKind | undefined): string {
  switch (k) {
    case undefined:
      return 'nothing';
    case 'int':
      return 'an int';
    case 'float':
      return 'a float (e.g. 1.0, -inf)';
    case 'str':
      return 'a string';
    case 'bool':
      return 'a bool';
    case 'ints':
      return 'an int list [..]';
    case 'dtype':
      return 'a dtype';
    case 'dim':
      return 'a dim(..)';
    case 'dims':
      return 'a dim list dims[..]';
    case 'lambda':
      return 'a lambda (..) => ..';
  }
}

function suggest(name: string, candidates: Iterable<string>): string {
  const near = closestName(name, candidates);
  return near === undefined ? '' : ` (did you mean '${near}'?)`;
}
