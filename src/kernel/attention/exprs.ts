// Small kernel-IR expression helpers shared by the fused attention kernels (attention/*.ts).
import { type Expr, type Stmt, call, exprType, lit } from '../ir/ir.js';

export const f32 = (x: number): Expr => lit('f32', x);
export const i32 = (x: number): Expr => lit('i32', x);
export const NEG_INF = f32(-Infinity);
export const fmax = (a: Expr, b: Expr): Expr => call('max', [a, b], exprType(a));
export const fmin = (a: Expr, b: Expr): Expr => call('min', [a, b], exprType(a));
export const forLoop = (name: string, start: Expr, end: Expr, step: Expr, body: readonly Stmt[]): Stmt => ({ kind: 'for', var: name, start, end, step, body });
