// The catalog's storage: every op by name. catalog.ts fills it with the family files' ops at load;
// `registerOp` adds one more (an extension, or a test's op: adding an elementwise op is its
// definition and nothing else). Family files that look ops up while running (a grid lambda
// applies any elementwise op) read it here: importing catalog.ts from them would be a cycle.
import type { OpDef } from './define.js';

const ops = new Map<string, OpDef>();

export const registry: ReadonlyMap<string, OpDef> = ops;

/**
 * Adds an op; a name already taken is a bug (two definitions of one op). Returns the function that
 * removes it again: a test that adds an op must remove it, since unit test files share processes
 * (vitest.config.ts `isolate: false`) and the op would show up in the next file's catalog.
 */
export function registerOp(def: OpDef): () => void {
  if (ops.has(def.name)) throw new Error(`internal: op '${def.name}' is defined twice`);
  ops.set(def.name, def);
  return () => {
    if (ops.get(def.name) === def) ops.delete(def.name);
  };
}
