// The one lambda translator (src/kernel/lower/lambda.ts): the rules every user gets (weak typing,
// lazy where, catalog lowering) and the hooks (reads, 0-ary values, lets, sharing), printed with
// the kernel-IR printer so the expectations read as `--emit kernels` text.
import { describe, expect, it } from 'vitest';
import type { ScalarExpr } from '../../../src/graph/ir.js';
import { ap, i32, idx } from '../../../src/graph/lambda.js';
import { KernelBuilder } from '../../../src/kernel/ir/builder.js';
import { type Expr, type Kernel, type Stmt, cast, load, v } from '../../../src/kernel/ir/ir.js';
import { type LambdaHooks, type ReadExpr, translateScalar } from '../../../src/kernel/lower/lambda.js';
import { printKernel, printKernelExpr } from '../../../src/kernel/ir/print.js';
import { sConst } from '../../../src/kernel/plan/to-size.js';

const f = (value: number): ScalarExpr => ({ kind: 'const', value, dtype: 'f32' });
const read = (operand: number, ...indices: ScalarExpr[]): ScalarExpr => ({ kind: 'read', operand, indices, dtype: 'f32' });

/** A kernel around `body`, for the printer (it only needs the buffers' roles). */
function kernelOf(kb: KernelBuilder, body: readonly Stmt[]): Kernel {
  return {
    name: 'k',
    op: 'test',
    locs: [],
    workgroupSize: [1, 1, 1],
    grid: [sConst(1), sConst(1), sConst(1)],
    uniforms: [],
    buffers: kb.buffers,
    shared: kb.shared,
    body,
    schedule: { kind: 'map', workgroupSize: 1 },
    traffic: { bytesRead: sConst(0), bytesWritten: sConst(0), flops: sConst(0) },
    bindings: kb.bindings,
  };
}

/** Translates `e` over one u32 parameter `i0`; reads load `t<operand>[u32(index)]`; returns the printed statements and value. */
function run(e: ScalarExpr, hooks: Partial<LambdaHooks> = {}): { lines: string[]; value: string; reads: number[] } {
  const kb = new KernelBuilder();
  const slots = new Map<number, number>();
  const reads: number[] = [];
  const readHook = (x: ReadExpr, at: (y: ScalarExpr) => Expr): Expr => {
    reads.push(x.operand);
    let slot = slots.get(x.operand);
    if (slot === undefined) slots.set(x.operand, (slot = kb.input(`t${x.operand}`, x.operand, 'f32')));
    return load(slot, cast('u32', at(x.indices[0] ?? i32(0))), 'f32');
  };
  const body: Stmt[] = [];
  const value = translateScalar(e, body, { kb, idx: [v('i0', 'u32')], read: readHook, ...hooks });
  const k = kernelOf(kb, body);
  const lines = printKernel(k).split('\n');
  // The body is between the header lines (kernel, schedule, buffers...) and the kernel's closing brace.
  const end = lines.lastIndexOf('  }');
  const first = body.length === 0 ? end : lines.findIndex((l) => /^\s+(let|var|if) /.test(l));
  return { lines: lines.slice(first, end).map((l) => l.trim()).filter((l) => l !== ''), value: printKernelExpr(value, k), reads };
}

describe('translateScalar: the rules', () => {
  it('an index meeting a float computes in the float type (weak typing)', () => {
    expect(run(ap('add', 'f32', idx(0), f(1.5))).value).toBe('f32(i32(i0)) + 1.5');
    // Comparing an index with a float compares as f32; integer arithmetic stays i32.
    expect(run(ap('lt', 'bool', idx(0), f(2.5))).value).toBe('f32(i32(i0)) < 2.5');
    expect(run(ap('mul', 'i32', idx(0), i32(3))).value).toBe('i32(i0) * 3');
  });

  it('ops lower through the catalog: floor mod of i32, sigmoid written out', () => {
    expect(run(ap('sigmoid', 'f32', f(2))).value).toBe('1.0 / (1.0 + exp(-2.0))');
    expect(run(ap('mod', 'i32', idx(0), i32(4))).value).toBe('select(((i32(i0) % 4) != 0) && (((i32(i0) % 4) < 0) != (4 < 0)) ? (i32(i0) % 4) + 4 : i32(i0) % 4)');
  });

  it('where(index < bound, ...) with reads runs as if/else: each branch reads only its operand', () => {
    const concat = ap('where', 'f32', ap('lt', 'bool', idx(0), i32(4)), read(0, idx(0)), read(1, ap('sub', 'i32', idx(0), i32(4))));
    const r = run(concat);
    expect(r.lines).toEqual(['var w: f32 = 0.0', 'if i32(i0) < 4 {', 'w = t0[u32(i32(i0))]', '} else {', 'w = t1[u32(i32(i0) - 4)]', '}']);
    expect(r.value).toBe('w');
  });

  it('a where on a read condition stays a select (both values computed)', () => {
    const r = run(ap('where', 'f32', ap('gt', 'bool', read(0, idx(0)), f(0)), read(1, idx(0)), f(0)));
    expect(r.lines).toEqual([]);
    expect(r.value).toBe('select(t0[u32(i32(i0))] > 0.0 ? t1[u32(i32(i0))] : 0.0)');
  });

  it('refuses an op with no scalar lowering and a 0-ary value no hook gives', () => {
    expect(() => run(ap('softmax', 'f32', f(1)))).toThrow(/non-elementwise op 'softmax'/);
    expect(() => run(ap('acc', 'f32'))).toThrow(/'acc\(\)' has no value/);
  });
});

describe('translateScalar: the hooks', () => {
  const twice = ap('add', 'f32', ap('exp', 'f32', read(0, idx(0))), ap('exp', 'f32', read(0, idx(0))));

  it('without sharing, equal subexpressions are computed twice; bindApply lets each op', () => {
    const r = run(twice, { bindApply: 'e' });
    expect(r.lines).toEqual(['let e: f32 = exp(t0[u32(i32(i0))])', 'let e1: f32 = exp(t0[u32(i32(i0))])', 'let e2: f32 = e + e1']);
    expect(r.value).toBe('e2');
    expect(r.reads).toEqual([0, 0]);
  });

  it('with a share key, an equal subexpression is computed once', () => {
    const r = run(twice, { bindApply: 'e', shareKey: (x) => JSON.stringify(x) });
    expect(r.lines).toEqual(['let e: f32 = exp(t0[u32(i32(i0))])', 'let e1: f32 = e + e']);
    expect(r.reads).toEqual([0]);
  });

  it('a lazy where branch does not reuse a value computed in the other branch', () => {
    const e = ap('where', 'f32', ap('lt', 'bool', idx(0), i32(4)), ap('exp', 'f32', read(0, idx(0))), ap('exp', 'f32', read(0, idx(0))));
    const r = run(e, { bindApply: 'e', shareKey: (x) => JSON.stringify(x) });
    // The condition is an op like any other (let-bound); each branch loads and computes its own exp.
    expect(r.lines).toEqual(['let e: bool = i32(i0) < 4', 'var w: f32 = 0.0', 'if e {', 'let e1: f32 = exp(t0[u32(i32(i0))])', 'w = e1', '} else {', 'let e2: f32 = exp(t0[u32(i32(i0))])', 'w = e2', '}']);
    expect(r.reads).toEqual([0, 0]);
  });

  it('0-ary values come from the nullary hook', () => {
    const r = run(ap('mul', 'f32', ap('acc', 'f32'), f(2)), { nullary: (x) => (x.op === 'acc' ? v('acc', 'f32') : undefined) });
    expect(r.value).toBe('acc * 2.0');
  });
});
