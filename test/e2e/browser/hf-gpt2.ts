// Seeded GPT-2 weights in Hugging Face's names and layout (transformers' GPT2Model state dict
// without the `transformer.` prefix, Conv1D weights as [in, out]), written here from the config
// rather than from examples/gpt2.tfx, so a wrong name or shape in the .tfx is a failure. The scales
// are larger than GPT-2's 0.02 init on purpose: with 0.02, greedy text on random weights is one
// token repeated (the largest embedding wins whatever the context), which would hide a page that
// feeds the model the wrong context; with these, the context and positions change the text.
import { writeSafetensors } from '../../../src/io/safetensors.js';
import type { Tensor64 } from '../../../src/base/tensor.js';
import { seededRandom } from '../../../src/runtime/generate.js';

export interface Gpt2Config {
  vocab_size: number;
  n_positions: number;
  n_embd: number;
  n_layer: number;
}

export function gpt2Weights(c: Gpt2Config, seed: number): Uint8Array {
  const rng = seededRandom(seed);
  const normal = (): number => Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng());
  const out = new Map<string, Tensor64>();
  const put = (name: string, shape: number[], std: number, mean = 0): void => {
    const data = new Float64Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) data[i] = mean + std * normal();
    out.set(name, { dtype: 'f32', shape, data });
  };
  const d = c.n_embd;
  put('wte.weight', [c.vocab_size, d], 0.5);
  put('wpe.weight', [c.n_positions, d], 0.5);
  for (let l = 0; l < c.n_layer; l++) {
    const h = `h.${l}`;
    put(`${h}.ln_1.weight`, [d], 0.1, 1);
    put(`${h}.ln_1.bias`, [d], 0.1);
    put(`${h}.attn.c_attn.weight`, [d, 3 * d], 0.3);
    put(`${h}.attn.c_attn.bias`, [3 * d], 0.1);
    put(`${h}.attn.c_proj.weight`, [d, d], 0.2);
    put(`${h}.attn.c_proj.bias`, [d], 0.1);
    put(`${h}.ln_2.weight`, [d], 0.1, 1);
    put(`${h}.ln_2.bias`, [d], 0.1);
    put(`${h}.mlp.c_fc.weight`, [d, 4 * d], 0.2);
    put(`${h}.mlp.c_fc.bias`, [4 * d], 0.1);
    put(`${h}.mlp.c_proj.weight`, [4 * d, d], 0.1);
    put(`${h}.mlp.c_proj.bias`, [d], 0.1);
  }
  put('ln_f.weight', [d], 0.1, 1);
  put('ln_f.bias', [d], 0.1);
  return writeSafetensors(out);
}
