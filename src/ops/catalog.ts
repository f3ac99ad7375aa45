// The op catalog: every op declared once, collected here from the family files.
// Op groups (elementwise, reduce, ...) are derived from it, as tinygrad derives GroupOp.
import type { OpDef, OpFamily } from './define.js';
import { sourceOps } from './source.js';
import { elementwiseOps } from './elementwise.js';
import { reduceOps } from './reduce.js';
import { matmulOps } from './matmul.js';
import { movementOps } from './movement.js';
import { normOps } from './norm.js';
import { attentionOps } from './attention.js';
import { fusedOps } from './fused.js';

const all: readonly OpDef[] = [...sourceOps, ...elementwiseOps, ...reduceOps, ...matmulOps, ...movementOps, ...normOps, ...fusedOps, ...attentionOps];

export const catalog: ReadonlyMap<string, OpDef> = new Map(all.map((op) => [op.name, op]));

export function getOp(name: string): OpDef | undefined {
  return catalog.get(name);
}

export function opsInFamily(family: OpFamily): readonly OpDef[] {
  return all.filter((op) => op.family === family);
}
