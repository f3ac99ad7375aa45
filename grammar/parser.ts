// The .tfx grammar as one Chevrotain CstParser: tokens (tokens.ts) -> CST. Rules are pure
// (no semantic actions); cst-to-ast.ts turns the CST into the AST. One instance serves the
// process (`tfxParser`), reset by assigning `input`; recovery is on so one run reports every
// syntax error. Plain LL(k): no BACKTRACK, so parsing stays linear in the input.
// Over 400 lines: a Chevrotain CstParser declares every rule in its constructor, so the grammar
// is one class.
import {
  CstParser,
  EOF,
  generateCstDts,
  tokenMatcher,
  type IParserErrorMessageProvider,
  type IToken,
  type TokenType,
} from 'chevrotain';
import * as t from './tokens.js';

/** Rule descriptions for "expected X" when several alternatives were possible. */
const ruleWords: Readonly<Record<string, string>> = {
  item: 'a top-level item (config, dims, weight, input, output, fn or model)',
  statement: 'a statement (an assignment, for or return)',
  primary: 'an expression',
  unaryExpr: 'an expression',
  expr: 'an expression',
  exprList: 'an expression',
  paramType: "a tensor type or 'index'",
  results: 'a result type',
  arg: 'an argument',
};

function found(tok: IToken | undefined): string {
  if (tok === undefined || tok.tokenType === EOF) return 'the end of the input';
  return `'${tok.image}'`;
}

/** Rules where a closing bracket ends a comma-separated list. */
const listRules: ReadonlySet<string> = new Set(['callArgs', 'fnItem', 'results', 'tensorType', 'unaryExpr', 'listExpr', 'gridExpr']);

/** Whether `tok` is the first token on its line (statements and items begin lines). */
function startsLine(tok: IToken, prev: IToken): boolean {
  if (prev.tokenType === EOF || Number.isNaN(prev.endLine ?? NaN)) return true;
  return (tok.startLine ?? 0) > (prev.endLine ?? 0);
}

function isCloser(type: TokenType): boolean {
  return type === t.RParen || type === t.RBracket || type === t.RCurly;
}

/** Recovery internals of Chevrotain's parser that TfxParser refines (not in its public types). */
interface RecoveryInternals {
  flattenFollowSet(): TokenType[];
  tryInRepetitionRecovery(rule: unknown, args: unknown[], lookahead: () => boolean, expected: TokenType): void;
  SKIP_TOKEN(): IToken;
}

function alternativesLabel(paths: readonly (readonly TokenType[])[]): string {
  const labels: string[] = [];
  for (const p of paths) {
    const first = p[0];
    const label = first === undefined ? undefined : t.tokenLabel(first);
    if (label !== undefined && !labels.includes(label)) labels.push(label);
  }
  if (labels.length <= 1) return labels[0] ?? 'something else';
  return `${labels.slice(0, -1).join(', ')} or ${labels[labels.length - 1] ?? ''}`;
}

/** Builds `expected X but found 'Y'`; parse.ts picks the diagnostic code (TFC003 or TFC005). */
export const tfxParserMessages: IParserErrorMessageProvider = {
  buildMismatchTokenMessage({ expected, actual, ruleName }) {
    const what =
      expected === EOF
        ? (ruleWords['item'] ?? '')
        : expected === t.RCurly && ruleName === 'block'
        ? "a statement or '}'"
        : expected === t.RCurly && ruleName === 'configItem'
          ? "a config entry (name = value) or '}'"
          : (expected === t.RParen || expected === t.RBracket) && listRules.has(ruleName)
            ? `',' or ${t.tokenLabel(expected)}`
            : t.tokenLabel(expected);
    return `expected ${what} but found ${found(actual)}`;
  },
  buildNotAllInputParsedMessage({ firstRedundant }) {
    return `expected ${ruleWords['item'] ?? ''} but found ${found(firstRedundant)}`;
  },
  buildNoViableAltMessage({ expectedPathsPerAlt, actual, ruleName }) {
    const what = ruleWords[ruleName] ?? alternativesLabel(expectedPathsPerAlt.flat());
    return `expected ${what} but found ${found(actual[0])}`;
  },
  buildEarlyExitMessage({ expectedIterationPaths, actual, ruleName }) {
    const what = ruleWords[ruleName] ?? alternativesLabel(expectedIterationPaths);
    return `expected ${what} but found ${found(actual[0])}`;
  },
};

export class TfxParser extends CstParser {
  /**
   * Indexes into `errors` of the mismatches that recovery fixed by inserting the expected token:
   * parse.ts reports those as a missing token (TFC005) rather than a wrong one (TFC003).
   */
  readonly insertedTokens = new Map<number, TokenType>();

  constructor() {
    super(t.allTokens, {
      recoveryEnabled: true,
      nodeLocationTracking: 'full',
      errorMessageProvider: tfxParserMessages,
      maxLookahead: 3,
    });
    this.performSelfAnalysis();
  }

  override getTokenToInsert(tokType: TokenType): IToken {
    this.insertedTokens.set(this.errors.length - 1, tokType);
    return super.getTokenToInsert(tokType);
  }

  override reset(): void {
    super.reset();
    this.insertedTokens?.clear();
    this.resyncTarget = undefined;
  }

  // Recovery is line-aware. Newlines are not tokens, but statements and items begin lines, so
  // resuming at a line start keeps the rest of a broken line from turning into bogus statements
  // (and cascades of errors). A token is inserted or deleted only within a line, or to close
  // a bracket.

  protected override canTokenTypeBeInsertedInRecovery(tokType: TokenType): boolean {
    const next = this.LA(1);
    if (!isCloser(tokType)) return !startsLine(next, this.LA(0));
    // A closer is missing only where the bracketed part visibly ended.
    return next.tokenType === EOF || isCloser(next.tokenType) || startsLine(next, this.LA(0));
  }

  protected override canTokenTypeBeDeletedInRecovery(): boolean {
    return !startsLine(this.LA(1), this.LA(0)) && !startsLine(this.LA(2), this.LA(1));
  }

  /** Where between-rule recovery resumes: chosen in findReSyncTokenType, used by reSyncTo. */
  private resyncTarget: IToken | undefined;

  /** Like Chevrotain's, but only a token that begins a line (or a '}') is a resync point. */
  findReSyncTokenType(): TokenType {
    const follows = (this as unknown as RecoveryInternals).flattenFollowSet();
    let prev = this.LA(0);
    for (let k = 1; ; k++) {
      const tok = this.LA(k);
      if (tok.tokenType === EOF) {
        this.resyncTarget = undefined;
        return EOF;
      }
      const type = follows.find((f) => tokenMatcher(tok, f));
      if (type !== undefined && (tok.tokenType === t.RCurly || startsLine(tok, prev))) {
        this.resyncTarget = tok;
        return type;
      }
      prev = tok;
    }
  }

  reSyncTo(tokType: TokenType): IToken[] {
    const target = this.resyncTarget !== undefined && tokenMatcher(this.resyncTarget, tokType) ? this.resyncTarget : undefined;
    this.resyncTarget = undefined;
    const skipped: IToken[] = [];
    let next = this.LA(1);
    while (next.tokenType !== EOF && (target !== undefined ? next !== target : !tokenMatcher(next, tokType))) {
      next = (this as unknown as RecoveryInternals).SKIP_TOKEN();
      skipped.push(next);
    }
    return skipped.slice(0, -1);
  }

  /** Resumes a repetition (the next statement) only at a line start. */
  tryInRepetitionRecovery(rule: unknown, args: unknown[], lookahead: () => boolean, expected: TokenType): void {
    const atLineStart = (): boolean => startsLine(this.LA(1), this.LA(0)) && lookahead.call(this);
    const base = CstParser.prototype as unknown as RecoveryInternals;
    base.tryInRepetitionRecovery.call(this, rule, args, atLineStart, expected);
  }

  module = this.RULE('module', () => {
    this.MANY(() => this.SUBRULE(this.item));
  });

  item = this.RULE('item', () => {
    this.OR([
      { ALT: () => this.SUBRULE(this.configItem) },
      { ALT: () => this.SUBRULE(this.dimsItem) },
      { ALT: () => this.SUBRULE(this.limitItem) },
      { ALT: () => this.SUBRULE(this.tensorDecl) },
      { ALT: () => this.SUBRULE(this.fnItem) },
      { ALT: () => this.SUBRULE(this.modelItem) },
    ]);
    this.OPTION(() => this.CONSUME(t.Semi));
  });

  configItem = this.RULE('configItem', () => {
    this.CONSUME(t.Config);
    this.CONSUME(t.LCurly);
    this.MANY(() => this.SUBRULE(this.configEntry));
    this.CONSUME(t.RCurly);
  });

  configEntry = this.RULE('configEntry', () => {
    this.CONSUME(t.Ident);
    this.CONSUME(t.Eq);
    this.SUBRULE(this.expr);
    this.OPTION2(() => {
      this.CONSUME(t.From);
      this.AT_LEAST_ONE_SEP({ SEP: t.Comma, DEF: () => this.CONSUME(t.StringLit) });
    });
    this.OPTION(() => this.CONSUME(t.Semi));
  });

  limitItem = this.RULE('limitItem', () => {
    this.CONSUME(t.Limit);
    this.SUBRULE(this.expr);
  });

  dimsItem = this.RULE('dimsItem', () => {
    this.CONSUME(t.Dims);
    this.AT_LEAST_ONE_SEP({ SEP: t.Comma, DEF: () => this.CONSUME(t.Ident) });
  });

  tensorDecl = this.RULE('tensorDecl', () => {
    this.CONSUME(t.DeclKw);
    this.CONSUME(t.Ident);
    this.OPTION(() => this.SUBRULE(this.familyRange));
    this.CONSUME(t.Colon);
    this.SUBRULE(this.tensorType);
    this.OPTION2(() => {
      this.CONSUME(t.Eq);
      this.CONSUME(t.StringLit);
    });
  });

  familyRange = this.RULE('familyRange', () => {
    this.CONSUME(t.LBracket);
    this.CONSUME(t.Ident);
    this.CONSUME(t.In);
    this.SUBRULE(this.expr, { LABEL: 'from' });
    this.CONSUME(t.DotDot);
    this.SUBRULE2(this.expr, { LABEL: 'to' });
    this.CONSUME(t.RBracket);
  });

  tensorType = this.RULE('tensorType', () => {
    this.CONSUME(t.DType);
    this.OPTION(() => {
      this.CONSUME(t.LBracket);
      this.OPTION2(() => this.SUBRULE(this.exprList));
      this.CONSUME(t.RBracket);
    });
  });

  fnItem = this.RULE('fnItem', () => {
    this.CONSUME(t.Fn);
    this.CONSUME(t.Ident, { LABEL: 'name' });
    this.OPTION(() => {
      this.CONSUME(t.LBracket);
      this.AT_LEAST_ONE_SEP({ SEP: t.Comma, DEF: () => this.CONSUME2(t.Ident, { LABEL: 'generic' }) });
      this.CONSUME(t.RBracket);
    });
    this.CONSUME(t.LParen);
    this.MANY_SEP({ SEP: t.Comma, DEF: () => this.SUBRULE(this.param) });
    this.CONSUME(t.RParen);
    this.CONSUME(t.Arrow);
    this.SUBRULE(this.results);
    this.SUBRULE(this.block);
  });

  param = this.RULE('param', () => {
    this.CONSUME(t.Ident);
    this.CONSUME(t.Colon);
    this.SUBRULE(this.paramType);
  });

  paramType = this.RULE('paramType', () => {
    this.OR([{ ALT: () => this.SUBRULE(this.tensorType) }, { ALT: () => this.CONSUME(t.Index) }]);
  });

  results = this.RULE('results', () => {
    this.OR([
      { ALT: () => this.SUBRULE(this.tensorType) },
      {
        ALT: () => {
          this.CONSUME(t.LParen);
          this.AT_LEAST_ONE_SEP({ SEP: t.Comma, DEF: () => this.SUBRULE2(this.tensorType) });
          this.CONSUME(t.RParen);
        },
      },
    ]);
  });

  modelItem = this.RULE('modelItem', () => {
    this.CONSUME(t.Model);
    this.CONSUME(t.Ident);
    this.SUBRULE(this.block);
  });

  block = this.RULE('block', () => {
    this.CONSUME(t.LCurly);
    this.MANY(() => this.SUBRULE(this.statement));
    this.CONSUME(t.RCurly);
  });

  statement = this.RULE('statement', () => {
    this.OR([
      { ALT: () => this.SUBRULE(this.assignStmt) },
      { ALT: () => this.SUBRULE(this.forStmt) },
      { ALT: () => this.SUBRULE(this.returnStmt) },
    ]);
    this.OPTION(() => this.CONSUME(t.Semi));
  });

  assignStmt = this.RULE('assignStmt', () => {
    this.AT_LEAST_ONE_SEP({ SEP: t.Comma, DEF: () => this.SUBRULE(this.assignTarget) });
    this.CONSUME(t.Eq);
    this.SUBRULE(this.expr);
  });

  assignTarget = this.RULE('assignTarget', () => {
    this.CONSUME(t.Ident);
    this.OPTION(() => {
      this.CONSUME(t.LBracket);
      this.SUBRULE(this.expr);
      this.CONSUME(t.RBracket);
    });
  });

  forStmt = this.RULE('forStmt', () => {
    this.CONSUME(t.For);
    this.CONSUME(t.Ident);
    this.CONSUME(t.In);
    this.SUBRULE(this.expr, { LABEL: 'from' });
    this.CONSUME(t.DotDot);
    this.SUBRULE2(this.expr, { LABEL: 'to' });
    this.SUBRULE(this.block);
  });

  returnStmt = this.RULE('returnStmt', () => {
    this.CONSUME(t.Return);
    this.SUBRULE(this.exprList);
  });

  exprList = this.RULE('exprList', () => {
    this.AT_LEAST_ONE_SEP({ SEP: t.Comma, DEF: () => this.SUBRULE(this.expr) });
  });

  // Expressions. Binary operators are parsed as one flat chain and given their precedence in
  // cst-to-ast.ts (precedence climbing): one rule per nesting level instead of one per
  // precedence level keeps deep nesting far from the stack limit. Loosest first: |>, ||, &&,
  // comparisons, + -, * / % @, prefix - !, postfix index; calls, lists and grid are primaries.
  expr = this.RULE('expr', () => {
    this.SUBRULE(this.unaryExpr, { LABEL: 'operand' });
    this.MANY(() => {
      this.CONSUME(t.BinOp);
      this.SUBRULE2(this.unaryExpr, { LABEL: 'operand' });
    });
    this.MANY2(() => {
      this.CONSUME(t.Pipe);
      this.SUBRULE(this.callExpr);
    });
  });

  /** Prefix operators, a primary, then index suffixes (`-x[0]` is `-(x[0])`). */
  unaryExpr = this.RULE('unaryExpr', () => {
    this.MANY(() => this.CONSUME(t.UnaryOp));
    this.SUBRULE(this.primary);
    this.MANY2(() => {
      this.CONSUME(t.LBracket);
      this.SUBRULE(this.exprList);
      this.CONSUME(t.RBracket);
    });
  });

  primary = this.RULE('primary', () => {
    this.OR([
      { ALT: () => this.CONSUME(t.NumberLit) },
      { ALT: () => this.CONSUME(t.StringLit) },
      { ALT: () => this.SUBRULE(this.nameOrCall) },
      { ALT: () => this.CONSUME(t.DType) },
      {
        ALT: () => {
          this.CONSUME(t.LParen);
          this.SUBRULE(this.expr);
          this.CONSUME(t.RParen);
        },
      },
      { ALT: () => this.SUBRULE(this.listExpr) },
      { ALT: () => this.SUBRULE(this.gridExpr) },
    ]);
  });

  nameOrCall = this.RULE('nameOrCall', () => {
    this.CONSUME(t.Ident);
    this.OPTION(() => this.SUBRULE(this.callArgs));
  });

  /** The right side of `|>`: a call on a plain name. */
  callExpr = this.RULE('callExpr', () => {
    this.CONSUME(t.Ident);
    this.SUBRULE(this.callArgs);
  });

  callArgs = this.RULE('callArgs', () => {
    this.CONSUME(t.LParen);
    this.MANY_SEP({ SEP: t.Comma, DEF: () => this.SUBRULE(this.arg) });
    this.CONSUME(t.RParen);
  });

  arg = this.RULE('arg', () => {
    this.OPTION(() => {
      this.CONSUME(t.Ident, { LABEL: 'argName' });
      this.CONSUME(t.Eq);
    });
    this.SUBRULE(this.expr);
  });

  listExpr = this.RULE('listExpr', () => {
    this.CONSUME(t.LBracket);
    this.OPTION(() => this.SUBRULE(this.exprList));
    this.CONSUME(t.RBracket);
  });

  /** `grid[D1, D2](i, j) => body`: the body extends as far right as an expression can. */
  gridExpr = this.RULE('gridExpr', () => {
    this.CONSUME(t.Grid);
    this.CONSUME(t.LBracket);
    this.SUBRULE(this.exprList);
    this.CONSUME(t.RBracket);
    this.CONSUME(t.LParen);
    this.AT_LEAST_ONE_SEP({ SEP: t.Comma, DEF: () => this.CONSUME(t.Ident) });
    this.CONSUME(t.RParen);
    this.CONSUME(t.FatArrow);
    this.SUBRULE(this.expr);
  });
}

/** The one parser instance (construction runs the grammar analysis, the expensive part). */
export const tfxParser = new TfxParser();

/** The text of grammar/cst.d.ts; a unit test fails when the committed file differs. */
export function cstDtsText(): string {
  const header =
    '// Generated from grammar/parser.ts by chevrotain generateCstDts; do not edit.\n' +
    '// Regenerate: TFC_WRITE_CST_DTS=1 npx vitest run test/unit/grammar/cst-dts.test.ts\n';
  return header + generateCstDts(tfxParser.getGAstProductions(), { visitorInterfaceName: 'ICstNodeVisitor' });
}
