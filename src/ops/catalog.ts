// The op catalog: every op declared once, collected here from the family files (and any op added
// with registerOp). Op groups (elementwise, reduce, ...) are derived from it, as tinygrad derives
// GroupOp.
import type { OpDef, OpFamily } from './define.js';
import { registerOp, registry } from './registry.js';
import { sourceOps } from './source.js';
import { elementwiseOps } from './elementwise.js';
import { reduceOps } from './reduce.js';
import { matmulOps } from './matmul.js';
import { movementOps } from './movement.js';
import { normOps } from './norm.js';
import { attentionOps } from './attention.js';
import { attentionGradOps } from './attention-grad.js';
import { crossEntropyOps } from './cross-entropy.js';
import { fusedOps } from './fused.js';

for (const op of [...sourceOps, ...elementwiseOps, ...reduceOps, ...matmulOps, ...movementOps, ...normOps, ...fusedOps, ...attentionOps, ...attentionGradOps, ...crossEntropyOps]) void registerOp(op);

export { registerOp };

export const catalog: ReadonlyMap<string, OpDef> = registry;

export function getOp(name: string): OpDef | undefined {
  return registry.get(name);
}

export function opsInFamily(family: OpFamily): readonly OpDef[] {
  return [...registry.values()].filter((op) => op.family === family);
}
