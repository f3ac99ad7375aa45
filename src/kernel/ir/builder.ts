// Collects one kernel's global-buffer slots, workgroup arrays and fresh local names while a
// lowering builds its body. Shared by every lowering (lower/lower.ts, lower/fused.ts, attention/attention.ts).
import type { DType } from '../../graph/types.js';
import { type Expr, type GlobalBuffer, type ScalarType, type SharedArray, type Stmt, exprType, v } from './ir.js';
import { storageType } from './storage.js';

export class KernelBuilder {
  readonly buffers: GlobalBuffer[] = [];
  /** Graph value bound to each slot, in slot order. */
  readonly bindings: number[] = [];
  readonly shared: SharedArray[] = [];
  private readonly counters = new Map<string, number>();
  private readonly used = new Set<string>();

  input(role: string, value: number, dtype: DType): number {
    return this.slot(role, value, 'read', storageType(dtype));
  }
  /** A read-only slot accessed `width` elements at a time, through `load_vec` only. */
  inputVector(role: string, value: number, dtype: DType, width: 4): number {
    const slot = this.slot(role, value, 'read', storageType(dtype));
    const b = this.buffers[slot];
    if (b !== undefined) this.buffers[slot] = { ...b, vector: width };
    return slot;
  }
  output(role: string, value: number, dtype: DType): number {
    return this.slot(role, value, 'read_write', storageType(dtype));
  }
  slot(role: string, value: number, access: 'read' | 'read_write', type: ScalarType): number {
    const slot = this.buffers.length;
    this.used.add(role);
    this.buffers.push({ slot, role, access, type });
    this.bindings.push(value);
    return slot;
  }
  sharedArray(prefix: string, type: ScalarType, length: number): string {
    const name = this.fresh(prefix);
    this.shared.push({ name, type, length });
    return name;
  }
  /** `prefix` on first use, then `prefix1`, `prefix2`... (per-prefix counters, print order). */
  fresh(prefix: string): string {
    let n = this.counters.get(prefix) ?? 0;
    let name = n === 0 ? prefix : `${prefix}${n}`;
    while (this.used.has(name)) name = `${prefix}${++n}`;
    this.counters.set(prefix, n + 1);
    this.used.add(name);
    return name;
  }
  /** Emits `let name = init;` and returns the variable (literals, variables and uniforms are returned as they are). */
  let(out: Stmt[], prefix: string, init: Expr): Expr {
    if (init.kind === 'lit' || init.kind === 'var' || init.kind === 'uniform') return init;
    const name = this.fresh(prefix);
    const type = exprType(init);
    out.push({ kind: 'let', name, type, init });
    return v(name, type);
  }
  /** Emits `var name = init;` (always initialized: lavapipe keeps a loop-local var's old value otherwise). */
  var(out: Stmt[], prefix: string, type: ScalarType, init: Expr): string {
    const name = this.fresh(prefix);
    out.push({ kind: 'var', name, type, init });
    return name;
  }
}
