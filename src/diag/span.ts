// Source locations carried by every AST, graph and kernel node.

export interface Span {
  readonly file: string;
  readonly line: number; // 1-based
  readonly col: number; // 1-based
  readonly endLine: number;
  readonly endCol: number; // 1-based, inclusive
}

export const unknownSpan: Span = { file: '<unknown>', line: 0, col: 0, endLine: 0, endCol: 0 };

export function spanUnion(a: Span, b: Span): Span {
  const aFirst = a.line < b.line || (a.line === b.line && a.col <= b.col);
  const start = aFirst ? a : b;
  const bLast = b.endLine > a.endLine || (b.endLine === a.endLine && b.endCol >= a.endCol);
  const end = bLast ? b : a;
  return { file: a.file, line: start.line, col: start.col, endLine: end.endLine, endCol: end.endCol };
}

export function formatSpan(s: Span): string {
  return `${s.file}:${s.line}:${s.col}`;
}
