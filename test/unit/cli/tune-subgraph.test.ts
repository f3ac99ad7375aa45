// `tfc tune` times each shape on a sub-graph of that shape's distinct nodes. What it times must be
// what the model runs: the WGSL lowered from each representative in the sub-graph is the WGSL
// lowered from that node in the whole model, for every group of GPT-2, a Llama-style decoder (KV
// cache, GQA, RoPE, a separate RMSNorm temp shared by q/k/v) and attention variants, under two
// candidate schedule (the default and the last one).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { compileSource } from '../../../src/cli/bench.js';
import { tuneGroups, withCandidate } from '../../../src/cli/tune-candidates.js';
import { tuneSubgraph } from '../../../src/cli/tune-subgraph.js';
import { compilePlan } from '../../../src/compile/plan.js';
import type { Graph } from '../../../src/graph/ir.js';
import { verifyGraph } from '../../../src/graph/verify.js';
import { interpret } from '../../../src/interp/interpret.js';
import { lowerToKernels } from '../../../src/kernel/lower/lower.js';
import type { Plan } from '../../../src/kernel/plan/plan.js';
import { type Schedule, chooseSchedule, lavapipeLimits } from '../../../src/kernel/schedule/schedule.js';
import { makeTensor } from '../../../src/base/tensor.js';

const t = lavapipeLimits;
const read = (p: string): string => readFileSync(new URL(`../../../${p}`, import.meta.url), 'utf8');
const models: [string, string, Record<string, number>][] = [
  ['gpt2', 'examples/gpt2.tfx', { layers: 2, d: 64, heads: 4, vocab: 256, ctx: 64 }],
  // vocab 160: not the packed q/k/v width (64 + 32 + 32), so the LM head stays a group of its own.
  ['llama', 'examples/llama.tfx', { layers: 2, d: 64, heads: 4, kv_heads: 2, ffn: 96, vocab: 160, ctx: 64 }],
  ['sliding-window', 'examples/variants/sliding-window.tfx', {}],
];

/**
 * WGSL of the steps lowered from each node, keyed by node id, without comment lines (they list
 * the source spans a kernel came from, which differ between layers; the code does not).
 */
function wgslByNode(g: Graph, s: Schedule): Map<number, string[]> {
  const program = lowerToKernels(g, t, s);
  const plan: Plan = compilePlan(g, { target: t, schedule: s, program });
  const out = new Map<number, string[]>();
  (program.origin ?? []).forEach((node, step) => {
    const name = plan.steps[step]?.kernel;
    const src = plan.kernels.find((k) => k.name === name)?.source.wgsl ?? `missing ${String(name)}`;
    const code = src.split('\n').filter((l) => !l.trimStart().startsWith('//')).join('\n');
    out.set(node, [...(out.get(node) ?? []), code]);
  });
  return out;
}

/**
 * Each representative lowers to its model node's kernels, in order; an extra kernel is allowed
 * only where the model lowers it from another node (a norm temp q, k and v share is computed by
 * the first of them, which in a sub-graph without q is k). Returns how many nodes it compared.
 */
function expectModelKernels(modelNode: ReadonlyMap<number, number>, model: Map<number, string[]>, small: Map<number, string[]>): number {
  for (const [subId, modelId] of modelNode) {
    const want = model.get(modelId);
    expect(want, `node %${modelId} lowers to kernels`).toBeDefined();
    const got = small.get(subId) ?? [];
    expect(got.filter((k) => (want ?? []).includes(k))).toEqual(want);
    const others = [...model.entries()].filter(([id]) => id !== modelId).flatMap(([, ks]) => ks);
    for (const extra of got.filter((k) => !(want ?? []).includes(k))) expect(others).toContain(extra);
  }
  return modelNode.size;
}

describe('tune sub-graphs lower to the kernels the model runs', () => {
  for (const [label, file, set] of models) {
    it(`${label}: every group, every candidate: same WGSL per representative, multiplicities sum to the group`, () => {
      const g = compileSource(read(file), file, new Map(Object.entries(set)), true);
      const groups = tuneGroups(g, t);
      expect(groups.length).toBeGreaterThan(0);
      let compared = 0;
      for (const gr of groups) {
        const sub = tuneSubgraph(g, gr.nodeIds);
        expect(verifyGraph(sub.graph)).toEqual([]);
        expect([...sub.multiplicity.values()].reduce((a, b) => a + b, 0)).toBe(gr.nodeIds.length);
        // The default and the last candidate (a different kernel family: direct tiles vs lane broadcast).
        for (const c of gr.candidates.length > 0 ? [...new Set([gr.candidates[0], gr.candidates[gr.candidates.length - 1]])] : [undefined]) {
          const s = c === undefined ? chooseSchedule(t) : withCandidate(chooseSchedule(t), gr.kind, gr.shape, c);
          const model = wgslByNode(g, s);
          const small = wgslByNode(sub.graph, s);
          compared += expectModelKernels(sub.modelNode, model, small);
          // Nothing else runs in the sub-graph: every step comes from a representative.
          expect([...small.keys()].every((id) => sub.modelNode.has(id))).toBe(true);
        }
      }
      expect(compared).toBeGreaterThan(groups.length);
    });
  }

  it('llama: layers collapse to one representative per distinct node (count = layers)', () => {
    const g = compileSource(read('examples/llama.tfx'), 'llama.tfx', new Map(Object.entries(models[1]?.[2] ?? {})), true);
    const repeated = tuneGroups(g, t).filter((gr) => gr.nodeIds.length > 1); // the LM head is one node
    expect(repeated.length).toBeGreaterThan(2);
    for (const gr of repeated) {
      const sub = tuneSubgraph(g, gr.nodeIds);
      expect(sub.multiplicity.size).toBeLessThan(gr.nodeIds.length);
      for (const m of sub.multiplicity.values()) expect(m % 2).toBe(0); // 2 layers: each node twice
    }
  });

  it('a weight split for the binding limit (GPT-2 LM head, vocab 50257 x 768) becomes one weight per chunk, of the chunk shape, same WGSL', () => {
    const set = { layers: 1, d: 768, heads: 12, vocab: 50257, ctx: 64 };
    const g = compileSource(read('examples/gpt2.tfx'), 'gpt2.tfx', new Map(Object.entries(set)), true);
    const chunks = g.nodes.filter((n) => n.op === 'weight' && n.attrs['rows'] !== undefined);
    expect(chunks.length).toBeGreaterThan(1); // 154 MB of f32 > 128 MiB: split
    // The LM head reads the chunks through views (a transpose); follow operands to the leaves.
    const views = new Set(['reshape', 'view', 'transpose', 'permute']);
    const leaf = (o: number): number => (views.has(g.nodes[o]?.op ?? '') ? leaf(g.nodes[o]?.operands[0] ?? -1) : o);
    // Uneven chunks (25129 + 25128 rows) are two shapes: two groups.
    const heads = tuneGroups(g, t).filter((gr) => gr.nodeIds.some((id) => g.nodes[id]?.operands.some((o) => chunks.some((c) => c.id === leaf(o)))));
    expect(heads.length).toBeGreaterThan(0);
    const s = chooseSchedule(t);
    const model = wgslByNode(g, s);
    let chunkWeights = 0;
    for (const head of heads) {
      const sub = tuneSubgraph(g, head.nodeIds);
      expect(verifyGraph(sub.graph)).toEqual([]);
      // ln_f's weight (the folded norm) is the other weight.
      const subWeights = sub.graph.nodes.filter((n) => n.op === 'weight' && n.attrs['name']?.kind === 'str' && n.attrs['name'].value.startsWith('wte'));
      for (const w of subWeights) {
        expect(w.attrs['rows']).toBeUndefined();
        expect(w.attrs['total_rows']).toBeUndefined();
        const name = w.attrs['name']?.kind === 'str' ? w.attrs['name'].value : '';
        expect(name).toMatch(/^wte\.weight\.rows\[\d+:\d+\]$/);
        const range = name.slice(name.indexOf('[') + 1, -1);
        const chunk = chunks.find((c) => c.attrs['rows']?.kind === 'ints' && c.attrs['rows'].value.join(':') === range);
        expect(chunk, `a model chunk has rows ${range}`).toBeDefined();
        expect(w.type).toEqual(chunk?.type);
        chunkWeights++;
      }
      const small = wgslByNode(sub.graph, s);
      // The second chunk's sub-graph computes ln_f's statistics itself (the model's first chunk does).
      expectModelKernels(sub.modelNode, model, small);
    }
    expect(chunkWeights).toBe(chunks.length);
  });

  it('operands become named inputs; model weights keep their names; the float64 run gives the node', () => {
    const src = `config {\n  m = 4\n  k = 8\n  n = 4\n}\ninput a: f32[m, k]\nweight w: f32[k, n] = "w"\noutput y: f32[m, n]\nmodel mm {\n  y = relu(exp(a) @ w)\n}\n`;
    const g = compileSource(src, 'mm.tfx', new Map(), true);
    const [gr] = tuneGroups(g, t);
    if (gr === undefined) throw new Error('no group');
    const sub = tuneSubgraph(g, gr.nodeIds);
    const names = sub.graph.nodes.filter((n) => n.op === 'input' || n.op === 'weight').map((n) => `${n.op}:${n.attrs['name']?.kind === 'str' ? n.attrs['name'].value : '?'}`);
    expect(names).toHaveLength(2);
    expect(names).toContain('weight:w');
    const produced = names.find((n) => n.startsWith('input:tune.%'));
    expect(produced).toBeDefined();
    const x = Array.from({ length: 32 }, (_, i) => Math.sin(i) * 2);
    const w = Array.from({ length: 32 }, (_, i) => Math.cos(i * 0.7));
    const r = interpret(sub.graph, { inputs: new Map([[produced?.slice('input:'.length) ?? '', makeTensor('f32', [4, 8], x)]]), weights: new Map([['w', makeTensor('f32', [8, 4], w)]]) });
    const [out] = r.outputs.values();
    for (let i = 0; i < 4; i++) {
      for (let j = 0; j < 4; j++) {
        let acc = 0;
        for (let p = 0; p < 8; p++) acc += (x[i * 8 + p] ?? 0) * (w[p * 4 + j] ?? 0);
        expect(out?.data[i * 4 + j]).toBeCloseTo(Math.max(0, acc), 12);
      }
    }
  });
});
