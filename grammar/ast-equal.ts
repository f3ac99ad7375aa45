// AST equality without source locations: the round-trip check parse(fmt(x)) == parse(x) and
// the parser tests use it. Comments are not part of the tree (fmt re-attaches them by line).
import type { Module } from './ast.js';

/** A deep copy of an AST value with every `loc` removed (and a Module's `comments`). */
export function stripLocs(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(stripLocs);
  if (node === null || typeof node !== 'object') return node;
  const isModule = 'items' in node && 'comments' in node;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(node)) {
    if (k === 'loc' || (isModule && k === 'comments') || v === undefined) continue;
    out[k] = stripLocs(v);
  }
  return out;
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  }
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false;
  const ka = Object.keys(a).sort();
  const kb = Object.keys(b).sort();
  if (!deepEqual(ka, kb)) return false;
  return ka.every((k) => deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

/** Whether two ASTs (modules, items, expressions) are the same tree, ignoring locations. */
export function astEqual(a: Module | Readonly<object>, b: Module | Readonly<object>): boolean {
  return deepEqual(stripLocs(a), stripLocs(b));
}
