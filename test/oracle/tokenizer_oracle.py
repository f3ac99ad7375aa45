#!/usr/bin/env python3
# Reference token ids for the tokenizer tests (issue 15), written from the published algorithms
# and sharing no code with tfc or @huggingface/tokenizers: GPT-2's byte-level BPE (OpenAI's
# encoder.py: bytes_to_unicode, the pre-tokenizer regex, merges by rank) and Hugging Face
# tokenizers' tokenizer.json pieces that the test files use (added tokens split out first, a
# Split(Regex, Isolated) + ByteLevel pre-tokenizer sequence, BPE with ignore_merges,
# TemplateProcessing). Needs python3-regex for \p{L}. Anything else in a tokenizer.json is refused.
#
# tokenizer_oracle.py --tokenizer-json FILE            < ["text", ...]
# tokenizer_oracle.py --vocab VOCAB.json --merges MERGES.txt  < ["text", ...]
# prints [{"ids": [...], "decoded": "..."}, ...] (decoded: the ids back to text, special tokens kept)
import json
import sys

import regex

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def bytes_to_unicode():
    """GPT-2's reversible map from the 256 byte values to printable unicode characters."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


BYTE_ENCODER = bytes_to_unicode()
BYTE_DECODER = {v: k for k, v in BYTE_ENCODER.items()}


class Bpe:
    def __init__(self, vocab, merges, ignore_merges):
        self.vocab = vocab
        self.ranks = {tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m): i for i, m in enumerate(merges)}
        self.ignore_merges = ignore_merges

    def word(self, text):
        """Ids of one pre-tokenized piece (already mapped through BYTE_ENCODER)."""
        if self.ignore_merges and text in self.vocab:
            return [self.vocab[text]]
        parts = list(text)
        while len(parts) > 1:
            best = None
            for i in range(len(parts) - 1):
                r = self.ranks.get((parts[i], parts[i + 1]))
                if r is not None and (best is None or r < best[0]):
                    best = (r, i)
            if best is None:
                break
            pair = (parts[best[1]], parts[best[1] + 1])
            # Merge every occurrence of the best pair, left to right (encoder.py's loop).
            out = []
            i = 0
            while i < len(parts):
                if i < len(parts) - 1 and (parts[i], parts[i + 1]) == pair:
                    out.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    out.append(parts[i])
                    i += 1
            parts = out
        return [self.vocab[p] for p in parts]


class Oracle:
    def __init__(self, bpe, pattern, added, template):
        self.bpe = bpe
        self.pattern = regex.compile(pattern)
        self.added = added  # content -> id, matched literally in the text, longest first
        self.template = template  # ids before and after the sequence (TemplateProcessing "single")
        self.id_to_token = {i: t for t, i in bpe.vocab.items()}
        self.id_to_added = {i: t for t, i in added.items()}

    def encode(self, text):
        ids = []
        for piece, is_added in self.split_added(text):
            if is_added:
                ids.append(self.added[piece])
                continue
            for m in self.pattern.finditer(piece):
                mapped = "".join(BYTE_ENCODER[b] for b in m.group(0).encode("utf-8"))
                ids.extend(self.bpe.word(mapped))
        return self.template[0] + ids + self.template[1]

    def split_added(self, text):
        if not self.added:
            return [(text, False)]
        alternatives = "|".join(regex.escape(t) for t in sorted(self.added, key=len, reverse=True))
        out = []
        at = 0
        for m in regex.finditer(alternatives, text):
            if m.start() > at:
                out.append((text[at:m.start()], False))
            out.append((m.group(0), True))
            at = m.end()
        if at < len(text):
            out.append((text[at:], False))
        return out

    def decode(self, ids, skip_special=False):
        """Byte-level decode; added tokens as their text (skip_special: left out, as every added token
        in the test files is special)."""
        out = b""
        for i in ids:
            if i in self.id_to_added and skip_special:
                continue
            if i in self.id_to_added:
                out += self.id_to_added[i].encode("utf-8")
            else:
                out += bytes(BYTE_DECODER[c] for c in self.id_to_token[i])
        return out.decode("utf-8", errors="replace")


def from_tokenizer_json(path):
    t = json.load(open(path, encoding="utf-8"))
    if t.get("normalizer") is not None:
        sys.exit("oracle: normalizers are not implemented")
    m = t["model"]
    if m["type"] != "BPE" or m.get("byte_fallback"):
        sys.exit("oracle: only byte-level BPE models are implemented")
    pre = t["pre_tokenizer"]
    steps = pre["pretokenizers"] if pre["type"] == "Sequence" else [pre]
    pattern = None
    for s in steps:
        if s["type"] == "Split" and s["behavior"] == "Isolated" and not s["invert"]:
            pattern = s["pattern"]["Regex"]
        elif s["type"] == "ByteLevel":
            if s.get("add_prefix_space"):
                sys.exit("oracle: add_prefix_space is not implemented")
            if s.get("use_regex", True):
                pattern = GPT2_PATTERN
        else:
            sys.exit(f"oracle: pre-tokenizer {s['type']} is not implemented")
    added = {a["content"]: a["id"] for a in t.get("added_tokens", [])}
    template = ([], [])
    post = t.get("post_processor")
    if post is not None and post["type"] == "TemplateProcessing":
        seq = post["single"]
        first = next(i for i, p in enumerate(seq) if "Sequence" in p)
        name = lambda p: post["special_tokens"][p["SpecialToken"]["id"]]["ids"]
        template = ([x for p in seq[:first] for x in name(p)], [x for p in seq[first + 1:] for x in name(p)])
    elif post is not None and post["type"] != "ByteLevel":
        sys.exit(f"oracle: post-processor {post['type']} is not implemented")
    return Oracle(Bpe(m["vocab"], m["merges"], m.get("ignore_merges", False)), pattern, added, template)


def from_vocab_merges(vocab_path, merges_path):
    vocab = json.load(open(vocab_path, encoding="utf-8"))
    lines = open(merges_path, encoding="utf-8").read().split("\n")
    merges = [l for l in lines[1:] if l.strip() != ""] if lines and lines[0].startswith("#version") else [l for l in lines if l.strip() != ""]
    # GPT-2's <|endoftext|> is its one special token (Hugging Face adds it as an added token).
    added = {t: i for t, i in vocab.items() if t == "<|endoftext|>"}
    return Oracle(Bpe(vocab, merges, False), GPT2_PATTERN, added, ([], []))


def main():
    args = sys.argv[1:]
    if args[:1] == ["--tokenizer-json"]:
        o = from_tokenizer_json(args[1])
    elif args[:1] == ["--vocab"] and args[2:3] == ["--merges"]:
        o = from_vocab_merges(args[1], args[3])
    else:
        sys.exit(__doc__ or "usage: see the header")
    texts = json.load(sys.stdin)
    out = []
    for text in texts:
        ids = o.encode(text)
        out.append({"ids": ids, "decoded": o.decode(ids)})
    json.dump(out, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
