// Text <-> token ids for generation, in Node and in browsers: Hugging Face tokenizer.json (with
// tokenizer_config.json) and GPT-2's vocab.json + merges.txt through @huggingface/tokenizers (pure
// JS, the tokenizers of transformers.js), and tfc's character vocab.json ({ chars, unknown }).
// Special tokens written in the text are recognized as HF does; `stopIds` end generation (EOS);
// `stream()` turns ids into text as they come, holding back a partial UTF-8 character.
import { Tokenizer } from '@huggingface/tokenizers';

export interface TextTokenizer {
  /** Where it came from, for messages: 'tokenizer.json', 'vocab.json + merges.txt' or 'vocab.json (characters)'. */
  readonly kind: string;
  /** Ids of `text`, with the special tokens the files add (a BOS where the post-processor says so). */
  encode(text: string): number[];
  /** Text of `ids`; special tokens are kept unless `skipSpecialTokens`. */
  decode(ids: readonly number[], opts?: { readonly skipSpecialTokens?: boolean }): string;
  /** Ids that end generation (EOS), from generation_config.json, config.json or tokenizer_config.json. */
  readonly stopIds: readonly number[];
  /** Ids and vocab size: every id `encode` gives is below it. */
  readonly vocabSize: number;
  /** Characters of the last `encode` that the vocabulary lacks (character vocabularies only). */
  readonly unknownChars?: () => readonly string[];
  /** A streaming decoder: `push` gives the new text, '' while a UTF-8 character is incomplete. */
  stream(): TokenStream;
}

export interface TokenStream {
  push(id: number): string;
}

/** Thrown for tokenizer files that cannot be used; the message names the file and the problem. */
export class TokenizerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TokenizerError';
  }
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** EOS ids: generation_config's eos_token_id (a number or a list), else config.json's, else the token named by tokenizer_config. */
function stopIdsOf(idOf: (token: string) => number | undefined, tokenizerConfig: Json, ...configs: (Json | undefined)[]): number[] {
  for (const c of configs) {
    const v = c?.['eos_token_id'];
    if (typeof v === 'number') return [v];
    if (Array.isArray(v) && v.every((x) => typeof x === 'number')) return v as number[];
  }
  const eos = tokenizerConfig['eos_token'];
  const name = typeof eos === 'string' ? eos : isObject(eos) && typeof eos['content'] === 'string' ? eos['content'] : undefined;
  const id = name === undefined ? undefined : idOf(name);
  return id === undefined ? [] : [id];
}

/**
 * Streaming detokenization as Hugging Face's text-generation-inference does it: decode the ids
 * since the last emitted text together with a few before them, and emit the difference once it
 * does not end in U+FFFD (a multi-byte character split across tokens).
 */
function offsetStream(decode: (ids: readonly number[]) => string): TokenStream {
  const ids: number[] = [];
  let prefix = 0;
  let read = 0;
  return {
    push(id: number): string {
      ids.push(id);
      const before = decode(ids.slice(prefix, read));
      const after = decode(ids.slice(prefix));
      if (after.length <= before.length || after.endsWith('\uFFFD')) return '';
      prefix = read;
      read = ids.length;
      return after.slice(before.length);
    },
  };
}

function fromHf(kind: string, tokenizerJson: Json, tokenizerConfig: Json, configs: (Json | undefined)[]): TextTokenizer {
  let tok: Tokenizer;
  try {
    tok = new Tokenizer(tokenizerJson, tokenizerConfig);
  } catch (e) {
    throw new TokenizerError(`${kind}: ${e instanceof Error ? e.message : String(e)}`);
  }
  // transformers cleans up spaces on decode only when tokenizer_config.json says so (its default
  // is false since v4.45; tokenizers.js defaults to true): pass the file's setting through.
  const cleanUp = tokenizerConfig['clean_up_tokenization_spaces'] === true;
  // A loop, not Math.max(...ids): 128k arguments overflow the stack.
  let vocabSize = 0;
  for (const id of tok.get_vocab(true).values()) vocabSize = Math.max(vocabSize, id + 1);
  // tokenizers.js throws on an empty list; the text of no tokens is ''.
  const decodeRaw = (ids: readonly number[], skip: boolean): string => (ids.length === 0 ? '' : tok.decode([...ids], { skip_special_tokens: skip, clean_up_tokenization_spaces: false }));
  return {
    kind,
    encode: (text) => tok.encode(text).ids,
    decode: (ids, opts = {}) => (ids.length === 0 ? '' : tok.decode([...ids], { skip_special_tokens: opts.skipSpecialTokens === true, clean_up_tokenization_spaces: cleanUp })),
    stopIds: stopIdsOf((t) => tok.token_to_id(t), tokenizerConfig, ...configs),
    vocabSize,
    // Streamed text is the lossless decode (no space clean-up: it would rewrite text already shown).
    stream: () => offsetStream((ids) => decodeRaw(ids, true)),
  };
}

/** A tokenizer.json (and tokenizer_config.json, generation_config.json / config.json for EOS). */
export function tokenizerFromJson(tokenizerJson: unknown, tokenizerConfig: unknown = {}, ...configs: unknown[]): TextTokenizer {
  if (!isObject(tokenizerJson) || !isObject(tokenizerJson['model'])) throw new TokenizerError('tokenizer.json: not a Hugging Face tokenizer (no "model" object)');
  return fromHf('tokenizer.json', tokenizerJson, isObject(tokenizerConfig) ? tokenizerConfig : {}, configs.map((c) => (isObject(c) ? c : undefined)));
}

/**
 * GPT-2's files: vocab.json (token -> id) and merges.txt (`#version` line, then `a b` per merge),
 * as the tokenizer.json Hugging Face's GPT2TokenizerFast builds from them (byte-level pre-tokenizer
 * and decoder, `<|endoftext|>` as its special token).
 */
export function tokenizerFromBpeFiles(vocabJson: unknown, mergesTxt: string, tokenizerConfig: unknown = {}, ...configs: unknown[]): TextTokenizer {
  if (!isObject(vocabJson) || !Object.values(vocabJson).every((v) => Number.isInteger(v))) throw new TokenizerError('vocab.json: expected an object of token -> integer id');
  const merges = mergesTxt.split(/\r?\n/).filter((l, i) => !(i === 0 && l.startsWith('#version')) && l.trim() !== '');
  const bad = merges.findIndex((l) => l.split(' ').length !== 2);
  if (bad >= 0) throw new TokenizerError(`merges.txt: line ${bad + 2} is not two tokens separated by one space: ${JSON.stringify(merges[bad])}`);
  const eot = vocabJson['<|endoftext|>'];
  const byteLevel = { add_prefix_space: false, trim_offsets: true, use_regex: true };
  const json: Json = {
    version: '1.0',
    added_tokens: typeof eot === 'number' ? [{ id: eot, content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false, normalized: true, special: true }] : [],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', ...byteLevel },
    post_processor: { type: 'ByteLevel', ...byteLevel, trim_offsets: false },
    decoder: { type: 'ByteLevel', ...byteLevel },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '', fuse_unk: false, byte_fallback: false, vocab: vocabJson, merges },
  };
  const config = isObject(tokenizerConfig) ? tokenizerConfig : {};
  return fromHf('vocab.json + merges.txt', json, { eos_token: '<|endoftext|>', ...config }, configs.map((c) => (isObject(c) ? c : undefined)));
}

/** tfc's character vocabulary (examples/charlm/vocab.json): `{ "chars": [...], "unknown": id }`, id = index. */
export function tokenizerFromChars(vocabJson: unknown): TextTokenizer {
  const chars = isObject(vocabJson) ? vocabJson['chars'] : undefined;
  if (!Array.isArray(chars) || !chars.every((c) => typeof c === 'string')) throw new TokenizerError('vocab.json: expected { "chars": [...strings] } or a token -> id map with merges.txt');
  const list = chars as string[];
  const unknownId = isObject(vocabJson) && typeof vocabJson['unknown'] === 'number' ? vocabJson['unknown'] : 0;
  const index = new Map(list.map((c, i) => [c, i]));
  let missing: string[] = [];
  const decode = (ids: readonly number[]): string => ids.map((i) => list[i] ?? '\uFFFD').join('');
  return {
    kind: 'vocab.json (characters)',
    encode(text) {
      missing = [];
      return [...text].map((ch) => {
        const i = index.get(ch);
        if (i === undefined && !missing.includes(ch)) missing.push(ch);
        return i ?? unknownId;
      });
    },
    decode,
    stopIds: [],
    vocabSize: list.length,
    unknownChars: () => missing,
    stream: () => ({ push: (id) => decode([id]) }),
  };
}

/**
 * The tokenizer of a checkpoint folder (or URL base, or any file reader): tokenizer.json, else
 * vocab.json + merges.txt, else a character vocab.json; undefined when there is none. `read`
 * returns a file's text or undefined when the file does not exist.
 */
export async function loadTokenizer(read: (name: string) => Promise<string | undefined>): Promise<TextTokenizer | undefined> {
  const json = async (name: string): Promise<unknown> => {
    const text = await read(name);
    if (text === undefined) return undefined;
    try {
      return JSON.parse(text) as unknown;
    } catch (e) {
      throw new TokenizerError(`${name}: not JSON (${e instanceof Error ? e.message : String(e)})`);
    }
  };
  const config = await json('tokenizer_config.json');
  const generation = await json('generation_config.json');
  const model = await json('config.json');
  const tj = await json('tokenizer.json');
  if (tj !== undefined) return tokenizerFromJson(tj, config ?? {}, generation, model);
  const vocab = await json('vocab.json');
  if (vocab === undefined) return undefined;
  const merges = await read('merges.txt');
  if (merges !== undefined) return tokenizerFromBpeFiles(vocab, merges, config ?? {}, generation, model);
  return tokenizerFromChars(vocab);
}
