// Every example model checks clean, at its default config and at a small override, and the
// GPT-2 example keeps the interface outside checks rely on (tokens: i32[B,T] -> logits).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { checkSource } from '../../src/check/check-source.js';
import { type Graph, strAttr } from '../../src/graph/ir.js';
import { printType } from '../../src/graph/types.js';
import { exampleFiles } from '../helpers/examples.js';

const examples = exampleFiles;

/** A small size for each example, in the config names that example declares. */
function smallOverrides(file: string): Record<string, number> {
  if (file.endsWith('llama-nocache.tfx')) return { vocab: 128, d: 32, heads: 4, kv_heads: 2, layers: 2, ffn: 48 };
  if (file.endsWith('llama.tfx')) return { vocab: 128, d: 32, heads: 4, kv_heads: 2, layers: 2, ffn: 48 };
  if (file.endsWith('transformer.tfx')) return { vocab: 128, d: 32, heads: 4, layers: 1, ffn: 64 };
  if (file.endsWith('attention-lse.tfx')) return { heads: 2 }; // attention alone: no model sizes
  return { vocab: 128, ctx: 32, d: 32, heads: 2, layers: 1 };
}

function check(file: string, overrides: Record<string, number>): { graph: Graph | undefined; messages: string[] } {
  const { graph, diagnostics } = checkSource(readFileSync(file, 'utf8'), file, new Map(Object.entries(overrides)));
  return { graph, messages: diagnostics.map((d) => `${d.loc.line}:${d.loc.col}: ${d.code}: ${d.message}`) };
}

/** name -> type text of the graph's inputs (safetensors names) and outputs. */
function signature(g: Graph): { inputs: Record<string, string>; outputs: Record<string, string> } {
  const inputs: Record<string, string> = {};
  for (const n of g.nodes) if (n.op === 'input') inputs[strAttr(n, 'name')] = printType(n.type);
  const outputs: Record<string, string> = {};
  for (const o of g.outputs) {
    const n = g.nodes[o.value];
    if (n !== undefined) outputs[o.name] = printType(n.type);
  }
  return { inputs, outputs };
}

describe('examples check clean', () => {
  it('finds the examples', () => {
    expect(examples.length).toBeGreaterThanOrEqual(12);
  });

  it.each(examples)('%s at its default config', (file) => {
    const { graph, messages } = check(file, {});
    expect(messages).toEqual([]);
    expect(graph).toBeDefined();
  });

  it.each(examples)('%s at a small config', (file) => {
    const { graph, messages } = check(file, smallOverrides(file));
    expect(messages).toEqual([]);
    expect(graph).toBeDefined();
  });
});

describe('the interfaces outside checks rely on', () => {
  it('gpt2.tfx at layers=2,d=64,heads=4,vocab=256,ctx=64 maps tokens: i32[B,T] to logits: f32[B,T,256]', () => {
    const { graph, messages } = check('examples/gpt2.tfx', { layers: 2, d: 64, heads: 4, vocab: 256, ctx: 64 });
    expect(messages).toEqual([]);
    if (graph === undefined) throw new Error('no graph');
    expect(signature(graph)).toEqual({ inputs: { tokens: 'i32[B,T]' }, outputs: { logits: 'f32[B,T,256]' } });
    // Hugging Face names, Conv1D layout [in, out].
    const weights = new Map(graph.nodes.filter((n) => n.op === 'weight').map((n) => [strAttr(n, 'name'), printType(n.type)]));
    expect(weights.get('wte.weight')).toBe('f32[256,64]');
    expect(weights.get('wpe.weight')).toBe('f32[64,64]');
    expect(weights.get('h.1.attn.c_attn.weight')).toBe('f32[64,192]');
    expect(weights.get('h.1.mlp.c_proj.weight')).toBe('f32[256,64]');
    expect(weights.get('ln_f.bias')).toBe('f32[64]');
    expect(weights.size).toBe(2 + 12 * 2 + 2);
  });

  it('gpt2.tfx at its default config is GPT-2 small', () => {
    const { graph } = check('examples/gpt2.tfx', {});
    if (graph === undefined) throw new Error('no graph');
    expect(signature(graph).outputs).toEqual({ logits: 'f32[B,T,50257]' });
    const weights = graph.nodes.filter((n) => n.op === 'weight').map((n) => strAttr(n, 'name'));
    expect(weights).toContain('h.11.mlp.c_fc.weight');
    expect(weights).not.toContain('h.12.mlp.c_fc.weight');
  });

  it('llama.tfx carries its KV cache as past.{l}.* inputs and present.{l}.* outputs', () => {
    const { graph, messages } = check('examples/llama.tfx', { layers: 2, d: 64, heads: 8, kv_heads: 2, ffn: 96, vocab: 256 });
    expect(messages).toEqual([]);
    if (graph === undefined) throw new Error('no graph');
    const sig = signature(graph);
    expect(sig.inputs).toEqual({
      tokens: 'i32[B,T]',
      'past.0.key': 'f32[B,2,P,8]',
      'past.0.value': 'f32[B,2,P,8]',
      'past.1.key': 'f32[B,2,P,8]',
      'past.1.value': 'f32[B,2,P,8]',
    });
    expect(sig.outputs['logits']).toBe('f32[B,T,256]');
    expect(sig.outputs['present.1.value']).toMatch(/^f32\[B,2,(P\+T|T\+P),8\]$/);
  });
});
