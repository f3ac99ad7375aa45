// `tfc compile` output details (issue 15 item 6): the -o folder gets the mode `mkdir` gives under
// the user's umask, and `--report` without T covers a prompt and a decode step separately, each
// with only the kernels launched at its dims, naming the dims it assumed.
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tfc } from '../helpers/cli.js';

const repo = new URL('../../', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'tfc-compile-out-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('tfc compile -o', () => {
  it('gives DIR the mode mkdir gives under the umask (not the 0700 of a temp folder)', async () => {
    const model = join(dir, 'tiny.tfx');
    writeFileSync(model, 'dims B, T\ninput x: f32[B, T]\noutput y: f32[B, T]\nmodel m {\n  y = x * 2\n}\n');
    const ref = join(dir, 'mkdir-mode');
    mkdirSync(ref);
    const umasked = statSync(ref).mode & 0o777;
    // A umask of 077 would make both 0700 and prove nothing; CI's is 022.
    expect(umasked).not.toBe(0o700);
    const out = join(dir, 'build');
    expect((await tfc('compile', model, '-o', out)).code).toBe(0);
    expect(statSync(out).mode & 0o777).toBe(umasked);
  });
});

describe('tfc compile --report without T', () => {
  // gpt2-kv has a cache dim P: without --set T the report covers a 128-token prompt and one
  // decode step after it, each with only the kernels that run at those dims, and says so.
  const kv = join(repo, 'examples/variants/gpt2-kv.tfx');
  const cfg = 'layers=2,d=64,heads=4,vocab=256';
  // Bytes read and written of the fused and unfused totals (FLOPs may differ by a little: with the
  // dims bound by --set, index arithmetic of the fused KV-cache concat folds away).
  const totals = (text: string): string[][] =>
    text
      .split('\n')
      .filter((l) => l.startsWith('total (fused)') || l.startsWith('unfused (--no-fuse)'))
      .map((l) => l.split(/\s{2,}/).slice(1, 3));
  it('reports prefill and decode separately, each equal to the report at those dims', async () => {
    const r = await tfc('compile', kv, '--report', '--set', cfg);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('prefill: assumed B=1, T=128, P=0');
    expect(r.stdout).toContain('decode step: assumed B=1, T=1, P=128');
    const [prefill, decode] = r.stdout.split('decode step: assumed');
    const atPrefill = await tfc('compile', kv, '--report', '--set', `${cfg},B=1,T=128,P=0`);
    const atDecode = await tfc('compile', kv, '--report', '--set', `${cfg},B=1,T=1,P=128`);
    expect(totals(prefill ?? '')).toHaveLength(2);
    expect(totals(prefill ?? '')).toEqual(totals(atPrefill.stdout));
    expect(totals(decode ?? '')).toEqual(totals(atDecode.stdout));
  });
});
