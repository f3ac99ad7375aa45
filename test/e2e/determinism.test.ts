// Compiling is deterministic across processes, not only within one (Map orders, caches or
// anything seeded per process would differ only there): `tfc compile -o` of the same model in
// this process and in a fresh `node bin/tfc.js` (dist/) writes byte-identical folders (model.ir,
// manifest.json, every WGSL/CUDA kernel, the launcher, model.ts).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { hostileModel } from '../webgpu/robustness-hostile.js';

const repo = new URL('../../', import.meta.url).pathname;
const tmp = mkdtempSync(join(tmpdir(), 'tfc-determinism-'));
const hostile = join(tmp, 'hostile.tfx');
writeFileSync(hostile, hostileModel());

const filesUnder = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? filesUnder(join(dir, e.name)) : [join(dir, e.name)]));

const cases: readonly (readonly [string, readonly string[]])[] = [
  ['examples/gpt2.tfx', ['--set', 'vocab=64,ctx=32,d=32,heads=2,layers=2']],
  ['examples/llama.tfx', ['--set', 'vocab=64,d=32,heads=4,kv_heads=2,layers=2,ffn=48', '--target', 'cuda']],
  [hostile, []],
];

describe('compiling in two processes', () => {
  it.each(cases)('%s: every file of -o is byte-identical', { timeout: 180_000 }, async (file, args) => {
    const here = join(tmp, `here-${cases.findIndex((c) => c[0] === file)}`);
    const there = join(tmp, `there-${cases.findIndex((c) => c[0] === file)}`);
    const io = { out: () => undefined, err: () => undefined, env: {} };
    expect(await main(['compile', file, '-o', here, ...args], io)).toBe(0);
    const child = spawnSync(process.execPath, ['bin/tfc.js', 'compile', file, '-o', there, ...args], { cwd: repo, encoding: 'utf8' });
    expect(child.status, child.stderr).toBe(0);
    const a = filesUnder(here).map((f) => relative(here, f)).sort();
    const b = filesUnder(there).map((f) => relative(there, f)).sort();
    expect(b).toEqual(a);
    expect(a.length).toBeGreaterThan(3);
    for (const f of a) expect(readFileSync(join(there, f), 'utf8'), f).toBe(readFileSync(join(here, f), 'utf8'));
  });
});
