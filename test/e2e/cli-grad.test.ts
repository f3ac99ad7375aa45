// `tfc compile --grad`: the backward graph of the cross-entropy loss (src/autodiff/) through the
// CLI; `--emit grad` prints it with its saved activations marked, as IR text that reads back.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tfc } from '../helpers/cli.js';

const repo = new URL('../../', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'tfc-cli-grad-'));
const gpt2 = join(repo, 'examples/gpt2.tfx');
const set = 'layers=1,d=8,heads=2,vocab=16,ctx=8';

describe('tfc compile --grad', () => {
  it('--emit grad prints the backward graph: gradients, saved activations, the backward start; it reads back as IR', async () => {
    const r = await tfc('compile', gpt2, '--set', set, '--no-fuse', '--emit', 'grad', '--no-loc');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toMatch(/^\/\/ backward of 'loss': %0-%\d+ forward, %\d+-%\d+ backward$/);
    expect(lines[1]).toContain('grad.wte.weight, grad.wpe.weight, grad.h.0.ln_1.weight');
    expect(r.stdout).toMatch(/^\/\/ saved activations .*: \d+$/m);
    // Unfused, the attention probabilities are saved (softmax's vjp reads its output), marked on their line.
    expect(r.stdout).toMatch(/^\/\/ {3}%\d+ softmax : f32\[B,2,T,T\]/m);
    expect(r.stdout).toMatch(/^ {2}%\d+ = softmax .*\/\/ saved$/m);
    expect(lines.filter((l) => l === '  // backward')).toHaveLength(1);
    expect(r.stdout).toMatch(/scatter_add %\d+, %0 \{rows=dim\(16\)\} : f32\[16,8\]/);
    expect(r.stdout).toContain('input {name="targets"} : i32[B,T]');
    expect(r.stdout).toContain('output "grad.ln_f.bias"');
    const ir = join(dir, 'gpt2-grad.ir');
    writeFileSync(ir, r.stdout);
    const again = await tfc('compile', ir, '--emit', 'ir', '--no-loc');
    expect(again.stderr).toBe('');
    expect(again.code).toBe(0);
  });

  it('with fusion, attention is fused before grad: each backward is one fused_attention_grad (dK, dV its second results), no softmax; reads back as IR', async () => {
    const r = await tfc('compile', gpt2, '--set', set, '--emit', 'grad', '--no-loc');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.match(/= fused_attention_grad %/g)).toHaveLength(1);
    expect(r.stdout).toMatch(/= fused_attention_grad_k %\d+ : f32\[B,2,T,4\]/);
    expect(r.stdout).not.toMatch(/= softmax /);
    const ir = join(dir, 'gpt2-fused-grad.ir');
    writeFileSync(ir, r.stdout);
    const again = await tfc('compile', ir, '--emit', 'kernels', '--no-loc');
    expect(again.stderr).toBe('');
    expect(again.code).toBe(0);
    expect(again.stdout.match(/kernel \w*fused_attention_grad/g)).toHaveLength(1);
  });

  it('--grad --emit kernels lowers the backward (the embedding gradient is a scatter_add kernel)', async () => {
    const r = await tfc('compile', gpt2, '--set', set, '--grad', '--no-fuse', '--emit', 'kernels');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/kernel \w*scatter_add/);
  });

  it('a model without a logits output is TFC317, exit 1', async () => {
    const src = join(dir, 'nologits.tfx');
    writeFileSync(src, 'dims N\ninput x: f32[N]\nweight w: f32[N] = "w"\noutput y: f32[N]\nmodel m {\n  y = x * w\n}\n');
    const r = await tfc('compile', src, '--grad', '--emit', 'ir');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("error[TFC317]: no output 'logits' to put a cross-entropy loss on (outputs: y)");
  });
});
