// Generated from grammar/parser.ts by chevrotain generateCstDts; do not edit.
// Regenerate: TFC_WRITE_CST_DTS=1 npx vitest run test/unit/grammar/cst-dts.test.ts
import type { CstNode, ICstVisitor, IToken } from "chevrotain";

export interface ModuleCstNode extends CstNode {
  name: "module";
  children: ModuleCstChildren;
}

export type ModuleCstChildren = {
  item?: ItemCstNode[];
};

export interface ItemCstNode extends CstNode {
  name: "item";
  children: ItemCstChildren;
}

export type ItemCstChildren = {
  configItem?: ConfigItemCstNode[];
  dimsItem?: DimsItemCstNode[];
  limitItem?: LimitItemCstNode[];
  tensorDecl?: TensorDeclCstNode[];
  fnItem?: FnItemCstNode[];
  modelItem?: ModelItemCstNode[];
  Semi?: IToken[];
};

export interface ConfigItemCstNode extends CstNode {
  name: "configItem";
  children: ConfigItemCstChildren;
}

export type ConfigItemCstChildren = {
  Config: IToken[];
  LCurly: IToken[];
  configEntry?: ConfigEntryCstNode[];
  RCurly: IToken[];
};

export interface ConfigEntryCstNode extends CstNode {
  name: "configEntry";
  children: ConfigEntryCstChildren;
}

export type ConfigEntryCstChildren = {
  Ident: IToken[];
  Eq: IToken[];
  expr: ExprCstNode[];
  From?: IToken[];
  StringLit?: IToken[];
  Comma?: IToken[];
  Semi?: IToken[];
};

export interface LimitItemCstNode extends CstNode {
  name: "limitItem";
  children: LimitItemCstChildren;
}

export type LimitItemCstChildren = {
  Limit: IToken[];
  expr: ExprCstNode[];
};

export interface DimsItemCstNode extends CstNode {
  name: "dimsItem";
  children: DimsItemCstChildren;
}

export type DimsItemCstChildren = {
  Dims: IToken[];
  Ident: IToken[];
  Comma?: IToken[];
};

export interface TensorDeclCstNode extends CstNode {
  name: "tensorDecl";
  children: TensorDeclCstChildren;
}

export type TensorDeclCstChildren = {
  DeclKw: IToken[];
  Ident: IToken[];
  familyRange?: FamilyRangeCstNode[];
  Colon: IToken[];
  tensorType: TensorTypeCstNode[];
  Eq?: IToken[];
  StringLit?: IToken[];
};

export interface FamilyRangeCstNode extends CstNode {
  name: "familyRange";
  children: FamilyRangeCstChildren;
}

export type FamilyRangeCstChildren = {
  LBracket: IToken[];
  Ident: IToken[];
  In: IToken[];
  from: ExprCstNode[];
  DotDot: IToken[];
  to: ExprCstNode[];
  RBracket: IToken[];
};

export interface TensorTypeCstNode extends CstNode {
  name: "tensorType";
  children: TensorTypeCstChildren;
}

export type TensorTypeCstChildren = {
  DType: IToken[];
  LBracket?: IToken[];
  exprList?: ExprListCstNode[];
  RBracket?: IToken[];
};

export interface FnItemCstNode extends CstNode {
  name: "fnItem";
  children: FnItemCstChildren;
}

export type FnItemCstChildren = {
  Fn: IToken[];
  name: IToken[];
  LBracket?: IToken[];
  generic?: IToken[];
  Comma?: (IToken)[];
  RBracket?: IToken[];
  LParen: IToken[];
  param?: ParamCstNode[];
  RParen: IToken[];
  Arrow: IToken[];
  results: ResultsCstNode[];
  block: BlockCstNode[];
};

export interface ParamCstNode extends CstNode {
  name: "param";
  children: ParamCstChildren;
}

export type ParamCstChildren = {
  Ident: IToken[];
  Colon: IToken[];
  paramType: ParamTypeCstNode[];
};

export interface ParamTypeCstNode extends CstNode {
  name: "paramType";
  children: ParamTypeCstChildren;
}

export type ParamTypeCstChildren = {
  tensorType?: TensorTypeCstNode[];
  Index?: IToken[];
};

export interface ResultsCstNode extends CstNode {
  name: "results";
  children: ResultsCstChildren;
}

export type ResultsCstChildren = {
  tensorType?: (TensorTypeCstNode)[];
  LParen?: IToken[];
  Comma?: IToken[];
  RParen?: IToken[];
};

export interface ModelItemCstNode extends CstNode {
  name: "modelItem";
  children: ModelItemCstChildren;
}

export type ModelItemCstChildren = {
  Model: IToken[];
  Ident: IToken[];
  block: BlockCstNode[];
};

export interface BlockCstNode extends CstNode {
  name: "block";
  children: BlockCstChildren;
}

export type BlockCstChildren = {
  LCurly: IToken[];
  statement?: StatementCstNode[];
  RCurly: IToken[];
};

export interface StatementCstNode extends CstNode {
  name: "statement";
  children: StatementCstChildren;
}

export type StatementCstChildren = {
  assignStmt?: AssignStmtCstNode[];
  forStmt?: ForStmtCstNode[];
  returnStmt?: ReturnStmtCstNode[];
  Semi?: IToken[];
};

export interface AssignStmtCstNode extends CstNode {
  name: "assignStmt";
  children: AssignStmtCstChildren;
}

export type AssignStmtCstChildren = {
  assignTarget: AssignTargetCstNode[];
  Comma?: IToken[];
  Eq: IToken[];
  expr: ExprCstNode[];
};

export interface AssignTargetCstNode extends CstNode {
  name: "assignTarget";
  children: AssignTargetCstChildren;
}

export type AssignTargetCstChildren = {
  Ident: IToken[];
  LBracket?: IToken[];
  expr?: ExprCstNode[];
  RBracket?: IToken[];
};

export interface ForStmtCstNode extends CstNode {
  name: "forStmt";
  children: ForStmtCstChildren;
}

export type ForStmtCstChildren = {
  For: IToken[];
  Ident: IToken[];
  In: IToken[];
  from: ExprCstNode[];
  DotDot: IToken[];
  to: ExprCstNode[];
  block: BlockCstNode[];
};

export interface ReturnStmtCstNode extends CstNode {
  name: "returnStmt";
  children: ReturnStmtCstChildren;
}

export type ReturnStmtCstChildren = {
  Return: IToken[];
  exprList: ExprListCstNode[];
};

export interface ExprListCstNode extends CstNode {
  name: "exprList";
  children: ExprListCstChildren;
}

export type ExprListCstChildren = {
  expr: ExprCstNode[];
  Comma?: IToken[];
};

export interface ExprCstNode extends CstNode {
  name: "expr";
  children: ExprCstChildren;
}

export type ExprCstChildren = {
  operand: (UnaryExprCstNode)[];
  BinOp?: IToken[];
  Pipe?: IToken[];
  callExpr?: CallExprCstNode[];
};

export interface UnaryExprCstNode extends CstNode {
  name: "unaryExpr";
  children: UnaryExprCstChildren;
}

export type UnaryExprCstChildren = {
  UnaryOp?: IToken[];
  primary: PrimaryCstNode[];
  LBracket?: IToken[];
  exprList?: ExprListCstNode[];
  RBracket?: IToken[];
};

export interface PrimaryCstNode extends CstNode {
  name: "primary";
  children: PrimaryCstChildren;
}

export type PrimaryCstChildren = {
  NumberLit?: IToken[];
  StringLit?: IToken[];
  nameOrCall?: NameOrCallCstNode[];
  DType?: IToken[];
  LParen?: IToken[];
  expr?: ExprCstNode[];
  RParen?: IToken[];
  listExpr?: ListExprCstNode[];
  gridExpr?: GridExprCstNode[];
};

export interface NameOrCallCstNode extends CstNode {
  name: "nameOrCall";
  children: NameOrCallCstChildren;
}

export type NameOrCallCstChildren = {
  Ident: IToken[];
  callArgs?: CallArgsCstNode[];
};

export interface CallExprCstNode extends CstNode {
  name: "callExpr";
  children: CallExprCstChildren;
}

export type CallExprCstChildren = {
  Ident: IToken[];
  callArgs: CallArgsCstNode[];
};

export interface CallArgsCstNode extends CstNode {
  name: "callArgs";
  children: CallArgsCstChildren;
}

export type CallArgsCstChildren = {
  LParen: IToken[];
  arg?: ArgCstNode[];
  Comma?: IToken[];
  RParen: IToken[];
};

export interface ArgCstNode extends CstNode {
  name: "arg";
  children: ArgCstChildren;
}

export type ArgCstChildren = {
  argName?: IToken[];
  Eq?: IToken[];
  expr: ExprCstNode[];
};

export interface ListExprCstNode extends CstNode {
  name: "listExpr";
  children: ListExprCstChildren;
}

export type ListExprCstChildren = {
  LBracket: IToken[];
  exprList?: ExprListCstNode[];
  RBracket: IToken[];
};

export interface GridExprCstNode extends CstNode {
  name: "gridExpr";
  children: GridExprCstChildren;
}

export type GridExprCstChildren = {
  Grid: IToken[];
  LBracket: IToken[];
  exprList: ExprListCstNode[];
  RBracket: IToken[];
  LParen: IToken[];
  Ident: IToken[];
  Comma?: IToken[];
  RParen: IToken[];
  FatArrow: IToken[];
  expr: ExprCstNode[];
};

export interface ICstNodeVisitor<IN, OUT> extends ICstVisitor<IN, OUT> {
  module(children: ModuleCstChildren, param?: IN): OUT;
  item(children: ItemCstChildren, param?: IN): OUT;
  configItem(children: ConfigItemCstChildren, param?: IN): OUT;
  configEntry(children: ConfigEntryCstChildren, param?: IN): OUT;
  limitItem(children: LimitItemCstChildren, param?: IN): OUT;
  dimsItem(children: DimsItemCstChildren, param?: IN): OUT;
  tensorDecl(children: TensorDeclCstChildren, param?: IN): OUT;
  familyRange(children: FamilyRangeCstChildren, param?: IN): OUT;
  tensorType(children: TensorTypeCstChildren, param?: IN): OUT;
  fnItem(children: FnItemCstChildren, param?: IN): OUT;
  param(children: ParamCstChildren, param?: IN): OUT;
  paramType(children: ParamTypeCstChildren, param?: IN): OUT;
  results(children: ResultsCstChildren, param?: IN): OUT;
  modelItem(children: ModelItemCstChildren, param?: IN): OUT;
  block(children: BlockCstChildren, param?: IN): OUT;
  statement(children: StatementCstChildren, param?: IN): OUT;
  assignStmt(children: AssignStmtCstChildren, param?: IN): OUT;
  assignTarget(children: AssignTargetCstChildren, param?: IN): OUT;
  forStmt(children: ForStmtCstChildren, param?: IN): OUT;
  returnStmt(children: ReturnStmtCstChildren, param?: IN): OUT;
  exprList(children: ExprListCstChildren, param?: IN): OUT;
  expr(children: ExprCstChildren, param?: IN): OUT;
  unaryExpr(children: UnaryExprCstChildren, param?: IN): OUT;
  primary(children: PrimaryCstChildren, param?: IN): OUT;
  nameOrCall(children: NameOrCallCstChildren, param?: IN): OUT;
  callExpr(children: CallExprCstChildren, param?: IN): OUT;
  callArgs(children: CallArgsCstChildren, param?: IN): OUT;
  arg(children: ArgCstChildren, param?: IN): OUT;
  listExpr(children: ListExprCstChildren, param?: IN): OUT;
  gridExpr(children: GridExprCstChildren, param?: IN): OUT;
}
