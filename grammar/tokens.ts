// Tokens of the .tfx language and its lexer: the first step of the front end
// (source -> tokens -> CST in parser.ts -> AST in cst-to-ast.ts).
// Newlines are plain whitespace; comments go to their own token group so fmt can keep them.
import { createToken, Lexer, type ILexerErrorMessageProvider, type TokenType } from 'chevrotain';

export const WhiteSpace = createToken({ name: 'WhiteSpace', pattern: /[ \t\r\n]+/, group: Lexer.SKIPPED });
export const Comment = createToken({ name: 'Comment', pattern: /#[^\n\r]*/, group: 'comments' });

/**
 * Stands in for characters the lexer rejected (TFC001), so the parser sees that something is
 * there, and recovers past it, instead of joining its neighbours into a different statement.
 */
export const BadChar = createToken({ name: 'BadChar', pattern: Lexer.NA });

export const Ident = createToken({ name: 'Ident', pattern: /[A-Za-z_][A-Za-z0-9_]*/ });

function keyword(name: string, word: string, categories: TokenType[] = []): TokenType {
  return createToken({ name, pattern: new RegExp(word), longer_alt: Ident, categories });
}

export const Config = keyword('Config', 'config');
export const Dims = keyword('Dims', 'dims');
/** `weight`, `input` and `output` share one grammar rule; the category lets it CONSUME any of them. */
export const DeclKw = createToken({ name: 'DeclKw', pattern: Lexer.NA });
export const Weight = keyword('Weight', 'weight', [DeclKw]);
export const Input = keyword('Input', 'input', [DeclKw]);
export const Output = keyword('Output', 'output', [DeclKw]);
export const Fn = keyword('Fn', 'fn');
export const Model = keyword('Model', 'model');
export const For = keyword('For', 'for');
export const In = keyword('In', 'in');
export const Return = keyword('Return', 'return');
export const Index = keyword('Index', 'index');
export const Grid = keyword('Grid', 'grid');
/** `d = 768 from "n_embd"`: the checkpoint config.json key(s) a config constant is read from. */
export const From = keyword('From', 'from');
/** `limit T + P <= ctx`: a bound on dims checked at every run (the model's context length). */
export const Limit = keyword('Limit', 'limit');

/** Dtype keywords: type names in declarations, plain names in expressions (`cast(x, f16)`). */
export const DType = createToken({ name: 'DType', pattern: Lexer.NA });
export const F32 = keyword('F32', 'f32', [DType]);
export const F16 = keyword('F16', 'f16', [DType]);
export const BF16 = keyword('BF16', 'bf16', [DType]);
export const I32 = keyword('I32', 'i32', [DType]);
export const I8 = keyword('I8', 'i8', [DType]);
export const Bool = keyword('Bool', 'bool', [DType]);

/**
 * Anything that starts with a digit, including malformed forms (`1e`, `1.2.3`, `3d`), so that
 * parse.ts reports one TFC004 for the whole run instead of a cascade of odd tokens. `0..n` lexes
 * as `0` `..` `n` because a fraction needs a digit after the dot.
 */
export const NumberLit = createToken({
  name: 'NumberLit',
  pattern: /\d+(?:\.\d+)*(?:[eE][+-]?\d*)?[A-Za-z0-9_]*/,
});
/** The well-formed subset of NumberLit; anything else is TFC004. */
export const wellFormedNumber = /^\d+(?:\.\d+)?(?:[eE][+-]?\d+)?$/;

export const StringLit = createToken({ name: 'StringLit', pattern: /"(?:[^"\\\n\r]|\\.)*"/ });
/** A string that reaches the end of its line: reported as TFC002, parsed as a string to go on. */
export const UnterminatedString = createToken({
  name: 'UnterminatedString',
  pattern: /"(?:[^"\\\n\r]|\\.)*\\?/,
  categories: [StringLit],
});

// Punctuation: longer spellings before their prefixes.
/** Every binary operator but |>: the parser reads them as one chain (see parser.ts). */
export const BinOp = createToken({ name: 'BinOp', pattern: Lexer.NA });
export const Pipe = createToken({ name: 'Pipe', pattern: /\|>/ });
export const OrOr = createToken({ name: 'OrOr', pattern: /\|\|/, categories: [BinOp] });
export const AndAnd = createToken({ name: 'AndAnd', pattern: /&&/, categories: [BinOp] });
export const CmpOp = createToken({ name: 'CmpOp', pattern: Lexer.NA });
export const EqEq = createToken({ name: 'EqEq', pattern: /==/, categories: [CmpOp, BinOp] });
export const NotEq = createToken({ name: 'NotEq', pattern: /!=/, categories: [CmpOp, BinOp] });
export const LtEq = createToken({ name: 'LtEq', pattern: /<=/, categories: [CmpOp, BinOp] });
export const GtEq = createToken({ name: 'GtEq', pattern: />=/, categories: [CmpOp, BinOp] });
export const Lt = createToken({ name: 'Lt', pattern: /</, categories: [CmpOp, BinOp] });
export const Gt = createToken({ name: 'Gt', pattern: />/, categories: [CmpOp, BinOp] });
export const FatArrow = createToken({ name: 'FatArrow', pattern: /=>/ });
export const Arrow = createToken({ name: 'Arrow', pattern: /->/ });
export const Eq = createToken({ name: 'Eq', pattern: /=/ });
export const UnaryOp = createToken({ name: 'UnaryOp', pattern: Lexer.NA });
export const Bang = createToken({ name: 'Bang', pattern: /!/, categories: [UnaryOp] });
export const Plus = createToken({ name: 'Plus', pattern: /\+/, categories: [BinOp] });
export const Minus = createToken({ name: 'Minus', pattern: /-/, categories: [UnaryOp, BinOp] });
export const Star = createToken({ name: 'Star', pattern: /\*/, categories: [BinOp] });
// `//` is integer (floor) division; `/` always divides as real numbers (int / int may be a float).
export const SlashSlash = createToken({ name: 'SlashSlash', pattern: /\/\//, categories: [BinOp] });
export const Slash = createToken({ name: 'Slash', pattern: /\//, categories: [BinOp] });
export const Percent = createToken({ name: 'Percent', pattern: /%/, categories: [BinOp] });
export const At = createToken({ name: 'At', pattern: /@/, categories: [BinOp] });
export const DotDot = createToken({ name: 'DotDot', pattern: /\.\./ });
export const Comma = createToken({ name: 'Comma', pattern: /,/ });
export const Colon = createToken({ name: 'Colon', pattern: /:/ });
export const Semi = createToken({ name: 'Semi', pattern: /;/ });
export const LParen = createToken({ name: 'LParen', pattern: /\(/ });
export const RParen = createToken({ name: 'RParen', pattern: /\)/ });
export const LBracket = createToken({ name: 'LBracket', pattern: /\[/ });
export const RBracket = createToken({ name: 'RBracket', pattern: /]/ });
export const LCurly = createToken({ name: 'LCurly', pattern: /{/ });
export const RCurly = createToken({ name: 'RCurly', pattern: /}/ });

export const allTokens: TokenType[] = [
  WhiteSpace,
  Comment,
  // categories (no pattern) are listed so the parser knows them
  BadChar,
  DeclKw,
  DType,
  BinOp,
  CmpOp,
  UnaryOp,
  Config,
  Dims,
  Weight,
  Input,
  Output,
  Fn,
  Model,
  For,
  Return,
  Index,
  Grid,
  From,
  Limit,
  In, // after `index` and `input`, which it prefixes
  F32,
  F16,
  BF16,
  I32,
  I8,
  Bool,
  Ident,
  NumberLit,
  StringLit,
  UnterminatedString,
  Pipe,
  OrOr,
  AndAnd,
  EqEq,
  NotEq,
  LtEq,
  GtEq,
  Lt,
  Gt,
  FatArrow,
  Arrow,
  Eq,
  Bang,
  Plus,
  Minus,
  Star,
  SlashSlash,
  Slash,
  Percent,
  At,
  DotDot,
  Comma,
  Colon,
  Semi,
  LParen,
  RParen,
  LBracket,
  RBracket,
  LCurly,
  RCurly,
];

/** Plain-word names of tokens for messages (`expected a name but found ')'`). */
const tokenWords: Readonly<Record<string, string>> = {
  Ident: 'a name',
  NumberLit: 'a number',
  StringLit: 'a string',
  UnterminatedString: 'a string',
  DType: 'a dtype (f32, f16, bf16, i32, i8, bool)',
  DeclKw: "'weight', 'input' or 'output'",
  BinOp: 'an operator',
  CmpOp: 'a comparison',
  UnaryOp: "'-' or '!'",
  BadChar: 'an unexpected character',
  EOF: 'the end of the input',
};

/** How a token type is named in a diagnostic: a word for classes, the quoted spelling otherwise. */
export function tokenLabel(t: TokenType): string {
  const word = tokenWords[t.name];
  if (word !== undefined) return word;
  const pattern = t.PATTERN;
  if (pattern instanceof RegExp) return `'${pattern.source.replace(/\\/g, '')}'`;
  return t.name;
}

const lexerMessages: ILexerErrorMessageProvider = {
  buildUnexpectedCharactersMessage(fullText, startOffset, length) {
    const text = fullText.slice(startOffset, startOffset + length);
    return `unexpected character${length > 1 ? 's' : ''} '${text}'`;
  },
  buildUnableToPopLexerModeMessage() {
    return 'internal lexer mode error';
  },
};

/** One lexer for the process, like the parser (construction validates every pattern). */
export const tfxLexer = new Lexer(allTokens, {
  positionTracking: 'full',
  ensureOptimizations: true,
  errorMessageProvider: lexerMessages,
});

export interface StringProblem {
  readonly offset: number; // within the token image
  readonly length: number;
  readonly message: string;
}

const simpleEscapes: Readonly<Record<string, string>> = {
  '"': '"',
  '\\': '\\',
  '/': '/',
  b: '\b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
};

/**
 * Decodes a string token (JSON escapes; `{l}` placeholders are kept as written) and lists what
 * is malformed: bad escapes, and braces that are not a `{name}` placeholder (TFC007).
 */
export function decodeString(image: string, isTerminated: boolean): { value: string; problems: StringProblem[] } {
  const problems: StringProblem[] = [];
  const end = isTerminated ? image.length - 1 : image.length;
  let value = '';
  for (let i = 1; i < end; i++) {
    const c = image[i] ?? '';
    if (c !== '\\') {
      value += c;
      continue;
    }
    const e = image[i + 1] ?? '';
    const simple = simpleEscapes[e];
    if (simple !== undefined) {
      value += simple;
      i++;
    } else if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(image.slice(i + 2, i + 6))) {
      value += String.fromCharCode(parseInt(image.slice(i + 2, i + 6), 16));
      i += 5;
    } else {
      problems.push({ offset: i, length: e === '' ? 1 : 2, message: `invalid escape '\\${e}' in a string` });
      value += e;
      i++;
    }
  }
  // Placeholders: `{name}`; any other brace is a mistake (the checker resolves the name).
  const braces = /\{[A-Za-z_][A-Za-z0-9_]*\}|[{}]/g;
  for (let m = braces.exec(value); m !== null; m = braces.exec(value)) {
    if (m[0].length === 1) {
      problems.push({ offset: 0, length: image.length, message: `a brace in a string must be a placeholder like {l}` });
      break;
    }
  }
  return { value, problems };
}
