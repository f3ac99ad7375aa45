// fuse-cache-write (src/passes/fuse-cache-write.ts): a KV cache's present = concat(past, new)
// becomes the attention's K/V load and its fused_attention_k / _v results; the int8 cache (its
// load already dequantizes the stored cache) is left alone with a remark; without the pass the
// present stays a fused_map the attention reads.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { checkSource } from '../../../src/check/check-source.js';
import type { Graph } from '../../../src/graph/ir.js';
import { printType } from '../../../src/graph/types.js';
import { runPipeline } from '../../../src/passes/driver.js';
import { type Remark, createPassContext } from '../../../src/passes/pass.js';
import { pipelines } from '../../../src/passes/pipeline.js';

const config = { vocab: 64, ctx: 32, d: 32, heads: 2, layers: 2 };

function compile(file: string, keep: (name: string) => boolean = () => true, set: Readonly<Record<string, number>> = config): { g: Graph; remarks: Remark[]; hits: ReadonlyMap<string, number> } {
  const r = checkSource(readFileSync(file, 'utf8'), file, new Map(Object.entries(set)));
  if (r.graph === undefined) throw new Error(r.diagnostics.map((d) => d.message).join('; '));
  const remarks: Remark[] = [];
  const ctx = createPassContext({ target: 'webgpu', remark: (x) => remarks.push(x) });
  const g = runPipeline(
    r.graph,
    pipelines.webgpu.filter((p) => keep(p.name)),
    ctx,
  );
  return { g, remarks, hits: ctx.stats.ruleHits };
}

describe('fuse-cache-write', () => {
  it('gpt2-kv: each present is the attention result, K/V read past and the new rows (a view of the qkv output)', () => {
    const { g, hits } = compile('examples/variants/gpt2-kv.tfx');
    expect(hits.get('fuse-cache-write/kwrite')).toBe(2);
    expect(hits.get('fuse-cache-write/vwrite')).toBe(2);
    for (const o of g.outputs.filter((x) => x.name.startsWith('present.'))) {
      const r = g.nodes[o.value];
      expect(r?.op).toBe(o.name.endsWith('key') ? 'fused_attention_k' : 'fused_attention_v');
      expect(printType(r?.type ?? { dtype: 'f32', shape: [] })).toBe('f32[B,2,P+T,16]');
      const a = g.nodes[r?.operands[0] ?? -1];
      expect(a?.op).toBe('fused_attention');
      const ops = (a?.operands ?? []).map((id) => g.nodes[id]?.op);
      // q, past K, past V (inputs), the new K and V rows: views of the projection, no copy kernel.
      expect(ops).toEqual(['view', 'input', 'input', 'view', 'view']);
      expect(a?.attrs['kload']?.kind).toBe('lambda');
      expect(a?.attrs['vload']?.kind).toBe('lambda');
    }
    expect(g.nodes.filter((n) => n.op === 'fused_map' && printType(n.type) === 'f32[B,2,P+T,16]')).toEqual([]);
  });

  it('without the pass the cache is a fused_map the attention reads (the graph before it)', () => {
    const { g } = compile('examples/variants/gpt2-kv.tfx', (name) => name !== 'fuse-cache-write');
    expect(g.nodes.filter((n) => n.op === 'fused_attention_k' || n.op === 'fused_attention_v')).toEqual([]);
    for (const o of g.outputs.filter((x) => x.name.startsWith('present.'))) expect(g.nodes[o.value]?.op).toBe('fused_map');
  });

  it('int8 cache: not applied, and a remark says why', () => {
    const { g, remarks } = compile('examples/variants/gpt2-kv-int8.tfx');
    expect(g.nodes.filter((n) => n.op === 'fused_attention_k' || n.op === 'fused_attention_v')).toEqual([]);
    const mine = remarks.filter((r) => r.pass === 'fuse-cache-write').map((r) => r.message);
    expect(mine).toHaveLength(2 * 2); // K and V of each layer
    for (const m of mine) expect(m).toMatch(/its [kv]load already computes K\/V from it \(a quantized cache\)/);
  });

  it('Llama: K folded (RoPE in its load), V left a kernel with a remark: the split kernel would bind 10 storage buffers', () => {
    const { g, remarks } = compile('examples/llama.tfx', () => true, { vocab: 64, d: 32, heads: 4, kv_heads: 2, layers: 1, ffn: 48 });
    const present = (name: string) => g.nodes[g.outputs.find((o) => o.name === name)?.value ?? -1]?.op;
    expect(present('present.0.key')).toBe('fused_attention_k');
    expect(present('present.0.value')).toBe('fused_map');
    // q, past K, past V (the map of V), cos, sin, the new K row + partials + present K = 8.
    const a = g.nodes.find((n) => n.op === 'fused_attention');
    expect((a?.operands.length ?? 0) + 2).toBe(8);
    expect(remarks.filter((r) => r.pass === 'fuse-cache-write').map((r) => r.message)).toEqual(['attention does not write its v, a graph output, itself: its kernel would bind 10 storage buffers (WebGPU guarantees 8)']);
  });
});
