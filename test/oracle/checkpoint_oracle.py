"""Hugging Face checkpoint folders for the `tfc run --checkpoint` tests (issue 15), and greedy
generation on them in float64 PyTorch (the forward passes of gpt2_oracle.py and llama_oracle.py,
the tokenizer of tokenizer_oracle.py), reading the folder exactly as a user's would be read.

  checkpoint_oracle.py make DIR --family gpt2|llama --seed N --config '{"n_embd": 32, ...}'
      [--dtype f32|bf16] [--shards K] --tokenizer FILE...   (files copied into DIR as they are)
  checkpoint_oracle.py generate DIR --prompt TEXT --new N
      prints {"prompt": [ids], "new": [ids], "margin": smallest top-1 minus top-2 logit,
              "text": the new ids as text, special tokens left out}
"""
import argparse
import json
import math
import os
import shutil
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench", "oracle"))  # common, st, gpt2_oracle: shipped for tfc bench
import common  # noqa: E402
import gpt2_oracle  # noqa: E402
import llama_oracle  # noqa: E402
import st  # noqa: E402
import tokenizer_oracle  # noqa: E402


def gpt2_args(c):
    return argparse.Namespace(vocab=c["vocab_size"], ctx=c["n_positions"], d=c["n_embd"], heads=c["n_head"], layers=c["n_layer"], eps=c["layer_norm_epsilon"])


def llama_args(c):
    return argparse.Namespace(vocab=c["vocab_size"], d=c["hidden_size"], heads=c["num_attention_heads"], kv_heads=c["num_key_value_heads"],
                              layers=c["num_hidden_layers"], ffn=c["intermediate_size"], eps=c["rms_norm_eps"], theta=c["rope_theta"])


def make(a):
    config = json.loads(a.config)
    config["model_type"] = a.family
    os.makedirs(a.dir, exist_ok=True)
    w = common.Weights(a.seed)
    if a.family == "gpt2":
        gpt2_oracle.make_weights(w, gpt2_args(config))
    else:
        llama_oracle.make_weights(w, llama_args(config))
    dtype = torch.bfloat16 if a.dtype == "bf16" else torch.float32
    config["torch_dtype"] = "bfloat16" if a.dtype == "bf16" else "float32"
    tensors = {k: v.to(dtype) for k, v in w.stored.items()}
    with open(os.path.join(a.dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    if a.shards <= 1:
        st.save(tensors, os.path.join(a.dir, "model.safetensors"))
    else:
        names = sorted(tensors)
        weight_map = {}
        for i in range(a.shards):
            shard = f"model-{i + 1:05d}-of-{a.shards:05d}.safetensors"
            part = {n: tensors[n] for n in names[i::a.shards]}
            st.save(part, os.path.join(a.dir, shard))
            weight_map.update({n: shard for n in part})
        with open(os.path.join(a.dir, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {}, "weight_map": weight_map}, f, indent=2)
    for t in a.tokenizer:
        src, _, name = t.partition("=")
        shutil.copyfile(src, os.path.join(a.dir, name or os.path.basename(src)))


def load_weights(d):
    index = os.path.join(d, "model.safetensors.index.json")
    files = sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index) else ["model.safetensors"]
    out = {}
    for f in files:
        out.update(st.load(os.path.join(d, f)))
    return {k: v.double() for k, v in out.items()}


def folder_tokenizer(d):
    if os.path.exists(os.path.join(d, "tokenizer.json")):
        return tokenizer_oracle.from_tokenizer_json(os.path.join(d, "tokenizer.json"))
    return tokenizer_oracle.from_vocab_merges(os.path.join(d, "vocab.json"), os.path.join(d, "merges.txt"))


def generate(a):
    c = json.load(open(os.path.join(a.dir, "config.json")))
    w = load_weights(a.dir)
    tok = folder_tokenizer(a.dir)
    ids = tok.encode(a.prompt)
    if c["model_type"] == "gpt2":
        args = gpt2_args(c)
        p = {"wte": w["wte.weight"], "wpe": w["wpe.weight"], **{k: v for k, v in w.items()}}
        step = lambda seq: gpt2_oracle.forward(p, args, torch.tensor([seq], dtype=torch.int32))[0]
    else:
        args = llama_args(c)
        dh = args.d // args.heads
        p = {"embed": w["model.embed_tokens.weight"], "norm": w["model.norm.weight"], "lm_head": w["lm_head.weight"]}
        short = {"input_layernorm": "in", "self_attn.q_proj": "q", "self_attn.k_proj": "k", "self_attn.v_proj": "v", "self_attn.o_proj": "o",
                 "post_attention_layernorm": "post", "mlp.gate_proj": "gate", "mlp.up_proj": "up", "mlp.down_proj": "down"}
        for l in range(args.layers):
            for long, s in short.items():
                p[f"model.layers.{l}.{s}"] = w[f"model.layers.{l}.{long}.weight"]
        empty = [(torch.zeros(1, args.kv_heads, 0, dh, dtype=torch.float64),) * 2 for _ in range(args.layers)]
        step = lambda seq: llama_oracle.forward(p, args, torch.tensor([seq], dtype=torch.int32), empty)[0]
    eos = c.get("eos_token_id")
    eos = set(eos if isinstance(eos, list) else [] if eos is None else [eos])
    seq = list(ids)
    new = []
    margin = math.inf
    with torch.no_grad():
        for _ in range(a.new):
            logits = step(seq)[0, -1]
            top = torch.topk(logits, 2)
            margin = min(margin, float(top.values[0] - top.values[1]))
            t = int(top.indices[0])
            new.append(t)
            seq.append(t)
            if t in eos:
                break
    json.dump({"prompt": ids, "new": new, "margin": margin, "text": tok.decode(new, skip_special=True)}, sys.stdout, ensure_ascii=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("dir")
    m.add_argument("--family", choices=["gpt2", "llama"], required=True)
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--config", required=True)
    m.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
    m.add_argument("--shards", type=int, default=1)
    m.add_argument("--tokenizer", nargs="*", default=[], help="SRC or SRC=NAME, copied into DIR")
    g = sub.add_parser("generate")
    g.add_argument("dir")
    g.add_argument("--prompt", required=True)
    g.add_argument("--new", type=int, default=8)
    a = ap.parse_args()
    make(a) if a.cmd == "make" else generate(a)


if __name__ == "__main__":
    main()
