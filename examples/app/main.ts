// A Node app that imports the generated module (examples/app/generated/model.ts, from
// `tfc compile examples/charlm/charlm.tfx -o examples/app/generated`) and generates text.
// Run: npm run app -- "Prompt text" (see README.md in this folder).
import { readFileSync } from 'node:fs';
import { acquireDevice } from 'tfc/runtime';
import { context, createModel } from './generated/model.js';

// Compiled to dist/app/examples/app/main.js (tsc keeps the repo layout, as the runtime's types come
// from src/): the weights are in the repository's examples/charlm/.
const dir = new URL('../../../../examples/charlm/', import.meta.url).pathname;
const vocab = JSON.parse(readFileSync(`${dir}vocab.json`, 'utf8')) as { chars: string[]; unknown: number };

const prompt = process.argv[2] ?? 'This License';
const dev = await acquireDevice();
const model = await createModel(dev, `${dir}charlm.safetensors`, {
  onProgress: (p) => process.stderr.write(`\r${p.phase} ${p.done}/${p.total}   ${p.phase === 'ready' ? '\n' : ''}`),
});
const ids = [...prompt].map((ch) => (vocab.chars.includes(ch) ? vocab.chars.indexOf(ch) : vocab.unknown));
process.stdout.write(prompt);
const r = await model.generate(ids, {
  maxNewTokens: Math.min(120, context - ids.length),
  temperature: 0.8,
  topK: 20,
  seed: 1,
  onToken: (t) => void process.stdout.write(vocab.chars[t] ?? '?'),
});
process.stdout.write('\n');
const decodeMs = r.decodeMs.reduce((a, b) => a + b, 0);
process.stderr.write(`prefill ${r.prefillMs.toFixed(0)} ms, decode ${((1000 * r.decodeMs.length) / decodeMs).toFixed(1)} tokens/s\n`);
model.dispose();
