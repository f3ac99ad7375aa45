// The smallest language model the CLI and runtime robustness tests drive: d = 4, vocab = 8,
// logits = (wte[tokens] + wpe[arange(T)]) @ transpose(wte). No KV cache, so each decode step of
// `generate` runs the whole sequence again; token ids index 8 rows of wte, positions `ctx` rows of wpe.

/** The .tfx source of the tiny model with a context of `ctx` positions. */
export function tinyLm(ctx: number): string {
  return `config {
  d = 4
  vocab = 8
  ctx = ${ctx}
}
dims B, T
input tokens: i32[B, T]
output logits: f32[B, T, vocab]
weight wte: f32[vocab, d] = "wte.weight"
weight wpe: f32[ctx, d] = "wpe.weight"
model tiny {
  logits = (wte[tokens] + wpe[arange(T)]) @ transpose(wte)
}
`;
}
