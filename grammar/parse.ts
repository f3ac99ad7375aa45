// parseTfx: source text -> AST (grammar/ast.ts), the entry point of the front end.
// Lexing (tokens.ts), parsing (parser.ts, with recovery) and the CST visitor (cst-to-ast.ts);
// every lexical and syntax mistake becomes a TFC00x diagnostic and parsing goes on.
import { createTokenInstance, EOF, type ILexingError, type IRecognitionException, type IToken, type TokenType } from 'chevrotain';
import type { Comment, Module } from './ast.js';
import { CstToAst } from './cst-to-ast.js';
import type { ModuleCstChildren } from './cst.js';
import { tfxParser } from './parser.js';
import * as t from './tokens.js';
import { diag, type DiagnosticSink } from '../src/diag/diagnostic.js';
import type { Span } from '../src/diag/span.js';

/** Bracket plus prefix-operator nesting allowed; deeper input is TFC006, not a stack overflow. */
export const maxNesting = 200;
/** Larger sources are refused (TFC006) rather than risk running out of memory. */
export const maxSourceChars = 16 * 1024 * 1024;

const visitors = new Map<string, CstToAst>();

function visitorFor(file: string): CstToAst {
  let v = visitors.get(file);
  if (v === undefined) {
    if (visitors.size > 64) visitors.clear();
    v = new CstToAst(file);
    visitors.set(file, v);
  }
  return v;
}

function tokSpan(file: string, tok: IToken): Span {
  return {
    file,
    line: tok.startLine ?? 0,
    col: tok.startColumn ?? 0,
    endLine: tok.endLine ?? tok.startLine ?? 0,
    endCol: tok.endColumn ?? tok.startColumn ?? 0,
  };
}

/** The point just after a token: where a missing token or the early end of input is shown. */
function afterSpan(file: string, tok: IToken | undefined): Span {
  if (tok === undefined || tok.endLine === undefined || Number.isNaN(tok.endLine)) {
    return { file, line: 1, col: 1, endLine: 1, endCol: 1 };
  }
  const line = tok.endLine;
  const col = (tok.endColumn ?? 0) + 1;
  return { file, line, col, endLine: line, endCol: col };
}

function isRealToken(tok: IToken | undefined): tok is IToken {
  return tok !== undefined && tok.tokenType !== EOF && !Number.isNaN(tok.startOffset);
}

/** Reports TFC001 for each run of rejected characters; returns BadChar tokens standing in for them. */
function reportLexErrors(file: string, text: string, errors: readonly ILexingError[], sink: DiagnosticSink): IToken[] {
  return errors.map((e) => {
    const line = e.line ?? 1;
    const col = e.column ?? 1;
    const chunk = text.slice(e.offset, e.offset + e.length);
    const firstLine = chunk.split(/\r?\n/)[0] ?? chunk;
    const endCol = col + Math.max(1, firstLine.length) - 1;
    sink.report(diag('TFC001', { file, line, col, endLine: line, endCol }, e.message));
    return createTokenInstance(t.BadChar, chunk, e.offset, e.offset + e.length - 1, line, line, col, endCol);
  });
}

/** Merges two offset-sorted token lists. */
function mergeTokens(a: readonly IToken[], b: readonly IToken[]): IToken[] {
  if (b.length === 0) return [...a];
  const out: IToken[] = [];
  let j = 0;
  for (const tok of a) {
    while (j < b.length && (b[j]?.startOffset ?? Infinity) < tok.startOffset) out.push(b[j++] as IToken);
    out.push(tok);
  }
  while (j < b.length) out.push(b[j++] as IToken);
  return out;
}

/** Checks what the lexer let through so parsing can go on: malformed numbers and strings. */
function reportTokenProblems(file: string, tokens: readonly IToken[], sink: DiagnosticSink): void {
  for (const tok of tokens) {
    if (tok.tokenType === t.NumberLit && !t.wellFormedNumber.test(tok.image)) {
      sink.report(diag('TFC004', tokSpan(file, tok), `malformed number '${tok.image}'`));
    } else if (tok.tokenType === t.UnterminatedString) {
      sink.report(diag('TFC002', tokSpan(file, tok), 'unterminated string: a string must end with \'"\' on the same line'));
    } else if (tok.tokenType === t.StringLit) {
      for (const p of t.decodeString(tok.image, true).problems) {
        const line = tok.startLine ?? 0;
        const col = (tok.startColumn ?? 0) + p.offset;
        sink.report(diag('TFC007', { file, line, col, endLine: line, endCol: col + p.length - 1 }, p.message));
      }
    }
  }
}

/**
 * The first token that nests deeper than maxNesting: open brackets plus a run of prefix
 * operators (`- - - x`), the two ways the recursive-descent parser recurses.
 */
function findTooDeep(tokens: readonly IToken[]): IToken | undefined {
  let depth = 0;
  let prefixRun = 0;
  let prev: IToken | undefined;
  for (const tok of tokens) {
    const type = tok.tokenType;
    if (type === t.LParen || type === t.LBracket || type === t.LCurly) depth++;
    else if (type === t.RParen || type === t.RBracket || type === t.RCurly) depth = Math.max(0, depth - 1);
    // A '-' right after an operand is binary; elsewhere it is a prefix operator.
    const isPrefix =
      (type === t.Bang || type === t.Minus) &&
      (prev === undefined ||
        !(
          prev.tokenType === t.Ident ||
          prev.tokenType === t.NumberLit ||
          prev.tokenType === t.StringLit ||
          prev.tokenType === t.UnterminatedString ||
          prev.tokenType === t.RParen ||
          prev.tokenType === t.RBracket ||
          prev.tokenType.CATEGORIES?.includes(t.DType) === true
        ));
    prefixRun = isPrefix ? prefixRun + 1 : 0;
    if (depth + prefixRun > maxNesting) return tok;
    prev = tok;
  }
  return undefined;
}

/**
 * The first `if` (or `else`, `while`) that starts a statement rather than being assigned to: the
 * language has none, and the parser's own message ("missing '=' before 'x'") does not say so.
 */
function controlFlowWord(tokens: readonly IToken[]): IToken | undefined {
  for (let i = 0; i < tokens.length; i++) {
    const tok = tokens[i];
    const next = tokens[i + 1];
    if (tok?.tokenType === t.Ident && controlWords.has(tok.image) && next !== undefined && ![t.Eq, t.Comma, t.Colon, t.RParen, t.RBracket].includes(next.tokenType)) return tok;
  }
  return undefined;
}

const controlWords: ReadonlySet<string> = new Set(['if', 'else', 'elif', 'while']);

function reportParseErrors(
  file: string,
  errors: readonly IRecognitionException[],
  inserted: ReadonlyMap<number, TokenType>,
  lastToken: IToken | undefined,
  sink: DiagnosticSink,
  tokens: readonly IToken[],
): void {
  // An `if` statement: one message that shows the language's forms, instead of the recovery's
  // cascade of errors after it (those before it are still reported).
  const control = errors.length > 0 ? controlFlowWord(tokens) : undefined;
  let controlReported = false;
  errors.forEach((e, i) => {
    // A rejected character was reported by the lexer already (TFC001).
    if (e.token.tokenType === t.BadChar) return;
    if (control !== undefined && e.token.startOffset >= control.startOffset) {
      if (!controlReported) {
        sink.report(
          diag(
            'TFC003',
            tokSpan(file, control),
            `tfx has no '${control.image}' statement: choose between values with where(cond, a, b), e.g. y = where(x > 0.0, x, 0.0), and write masks as predicate grids, e.g. causal = grid[T, T](q, k) => k <= q`,
          ),
        );
        controlReported = true;
      }
      return;
    }
    const insertedType = inserted.get(i);
    const previous = (e as { previousToken?: IToken }).previousToken;
    if (insertedType !== undefined && isRealToken(e.token)) {
      const where = afterSpan(file, isRealToken(previous) ? previous : lastToken);
      sink.report(diag('TFC005', where, `missing ${t.tokenLabel(insertedType)} before '${e.token.image}'`));
    } else if (!isRealToken(e.token)) {
      const expected = e.message.replace(/^expected (.*) but found .*$/s, '$1');
      sink.report(diag('TFC005', afterSpan(file, lastToken), `the input ended early: expected ${expected}`));
    } else {
      sink.report(diag('TFC003', tokSpan(file, e.token), e.message));
    }
  });
}

/**
 * Parses one .tfx source. Never throws for any input: lexical and syntax errors go to `sink`
 * (TFC001-TFC007) and the returned Module holds the items and statements that parsed cleanly.
 */
export function parseTfx(text: string, file: string, sink: DiagnosticSink): Module {
  if (text.length > maxSourceChars) {
    sink.report(
      diag('TFC006', { file, line: 1, col: 1, endLine: 1, endCol: 1 }, `source too large: ${text.length} characters (at most ${maxSourceChars})`),
    );
    return { file, items: [], comments: [] };
  }
  const lexed = t.tfxLexer.tokenize(text);
  const comments: Comment[] = (lexed.groups['comments'] ?? []).map((tok) => ({
    text: tok.image.replace(/\s+$/, ''),
    loc: tokSpan(file, tok),
  }));
  const badChars = reportLexErrors(file, text, lexed.errors, sink);
  reportTokenProblems(file, lexed.tokens, sink);
  const tokens = mergeTokens(lexed.tokens, badChars);

  const tooDeep = findTooDeep(tokens);
  if (tooDeep !== undefined) {
    sink.report(diag('TFC006', tokSpan(file, tooDeep), `expression nested too deeply (more than ${maxNesting} levels)`));
    return { file, items: [], comments };
  }

  tfxParser.input = tokens;
  let items: Module['items'] = [];
  try {
    const cst = tfxParser.module();
    reportParseErrors(file, tfxParser.errors, tfxParser.insertedTokens, tokens[tokens.length - 1], sink, tokens);
    const visitor = visitorFor(file);
    items = visitor.module(cst.children as ModuleCstChildren);
    for (const p of visitor.problems) sink.report(diag(p.code, tokSpan(file, p.token), p.message));
  } catch (e) {
    // Bracket nesting is bounded above; nesting the count cannot see (grid bodies inside grid
    // bodies) overflows the stack here instead. Any other exception on a tree that recovery
    // left partial is swallowed (its syntax errors are reported); on a clean tree it is a bug.
    if (e instanceof RangeError) {
      sink.report(diag('TFC006', { file, line: 1, col: 1, endLine: 1, endCol: 1 }, 'source nested too deeply to parse'));
    } else if (tfxParser.errors.length === 0 && lexed.errors.length === 0) {
      throw e;
    }
  }
  return { file, items, comments };
}
