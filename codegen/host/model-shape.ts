// The language-model roles of a plan, found by naming convention: token ids, logits and KV-cache
// pairs (past.* inputs fed by present.* outputs). Used by the host-module emitter (emit.ts) and by
// `tfc run --prompt` (src/cli/generate.ts); kept apart from emit.ts so the CLI loads no ts-morph.
import type { Plan, SizeExpr } from '../../src/kernel/plan/plan.js';

/** What codegen/host derives from the plan about a language model (see `describeModel`). */
export interface ModelShape {
  readonly tokens?: string;
  readonly logits?: string;
  readonly vocab?: number;
  readonly cache: readonly { readonly past: string; readonly present: string }[];
  readonly pastDim?: string;
}

function constOf(e: SizeExpr | undefined): number | undefined {
  return e?.kind === 'const' ? e.value : undefined;
}

/**
 * Finds the language-model roles by convention: an i32 input of rank 2 (token ids), an output of
 * rank 3 whose last dim is constant (logits; vocab = that dim), and KV-cache pairs: an input whose
 * name contains `past` and an output named the same with `present` in its place.
 */
export function describeModel(plan: Plan): ModelShape {
  const inputs = plan.buffers.filter((b) => b.kind === 'input');
  const outputs = plan.outputs.map((o) => ({ name: o.name, b: plan.buffers.find((b) => b.id === o.buffer) }));
  const tokens = inputs.find((b) => b.dtype === 'i32' && b.shape.length === 2);
  const logits = outputs.find((o) => o.b !== undefined && o.b.shape.length === 3 && constOf(o.b.shape[2]) !== undefined && !o.name.includes('present'));
  const cache: { past: string; present: string }[] = [];
  let pastDim: string | undefined;
  for (const b of inputs) {
    const name = b.name ?? '';
    if (!name.includes('past')) continue;
    const present = name.replace('past', 'present');
    if (!plan.outputs.some((o) => o.name === present)) continue;
    cache.push({ past: name, present });
    const dim = b.shape.find((e, i) => i > 0 && e.kind === 'dim' && e.name !== (tokens?.shape[1]?.kind === 'dim' ? tokens.shape[1].name : ''));
    if (dim?.kind === 'dim') pastDim = dim.name;
  }
  const vocab = constOf(logits?.b?.shape[2]);
  return {
    ...(tokens?.name !== undefined ? { tokens: tokens.name } : {}),
    ...(logits !== undefined ? { logits: logits.name } : {}),
    ...(vocab !== undefined ? { vocab } : {}),
    cache,
    ...(pastDim !== undefined ? { pastDim } : {}),
  };
}
