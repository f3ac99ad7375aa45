// TFC_DEBUG / --debug levels of `tfc compile` (README "TFC_DEBUG", src/cli/args.ts debugLevels):
// each level prints what the one below does plus its own part, on stderr only. And `tfc compile
// --help` lists every pass of every target's pipeline, fusion passes included.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { byteText } from '../../../src/cli/debug-kernels.js';
import { passTable } from '../../../src/cli/stages.js';
import { fusionPassNames, pipelines } from '../../../src/passes/pipeline.js';
import { tfc } from '../../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'tfc-debug-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
// One elementwise kernel: at B = 1 it reads 256 f32 (1 KiB) and writes as many.
const model = join(dir, 'exp.tfx');
writeFileSync(model, 'dims B\ninput x: f32[B, 256]\noutput y: f32[B, 256]\nmodel m {\n  y = exp(x) * 2\n}\n');

async function stderrAt(level: number, ...extra: string[]): Promise<string> {
  const r = await tfc('--debug', String(level), 'compile', model, '--emit', 'ir', ...extra);
  expect(r.code, r.stderr).toBe(0);
  return r.stderr;
}

describe('TFC_DEBUG levels of tfc compile', () => {
  it('0 prints nothing on stderr', async () => {
    expect(await stderrAt(0)).toBe('');
  });

  it('1: the kernel list with launches, bytes read and written at the report dims, and the source line', async () => {
    const e = await stderrAt(1);
    expect(e).toMatch(/1 launches of 1 kernels \(limits: webgpu-default\); bytes at B=1 /);
    expect(e).toMatch(/ 1x +read +1\.0 KiB +written +1\.0 KiB +.*exp\.tfx:5:/);
    expect(e).not.toContain('schedule:');
    expect(e).not.toMatch(/^pass /m);
    // --set moves the dims the bytes are evaluated at.
    expect(await stderrAt(1, '--set', 'B=4')).toMatch(/read +4\.0 KiB +written +4\.0 KiB/);
  });

  it('2 adds each kernel\'s schedule and the time of each pass', async () => {
    const e = await stderrAt(2);
    expect(e).toMatch(/read +1\.0 KiB/);
    expect(e).toMatch(/^ {6}schedule: map, /m);
    expect(e).toMatch(/^pass fuse-elementwise +\d+\.\d+ ms$/m);
    expect(e).not.toContain('@compute');
  });

  it('3 adds the IR after each pass', async () => {
    const e = await stderrAt(3);
    expect(e).toMatch(/IR Dump After fold-constants /);
    expect(e).toMatch(/exp %0/);
    expect(e).not.toContain('@compute');
  });

  it('4 adds every kernel\'s source: WGSL, or CUDA with --target cuda', async () => {
    const w = await stderrAt(4);
    expect(w).toMatch(/^--- \w+\.wgsl$/m);
    expect(w).toContain('@compute @workgroup_size(');
    expect(w).toContain('exp(');
    const c = await stderrAt(4, '--target', 'cuda');
    expect(c).toMatch(/^--- \w+\.cu$/m);
    expect(c).toContain('__global__');
  });

  it('byte counts read as binary units', () => {
    expect([byteText(0), byteText(1023), byteText(1024), byteText(1536), byteText(3 * 1024 * 1024), byteText(5 * 2 ** 30)]).toEqual(['0 B', '1023 B', '1.0 KiB', '1.5 KiB', '3.0 MiB', '5.0 GiB']);
  });
});

describe('tfc compile --help', () => {
  it('lists every pass of every target, fusion passes marked, in pipeline order', async () => {
    const r = await tfc('compile', '--help');
    expect(r.code).toBe(0);
    const names = new Set(Object.values(pipelines).flatMap((ps) => ps.map((p) => p.name)));
    expect(names.size).toBeGreaterThan(10);
    for (const name of names) {
      const line = r.stdout.split('\n').find((l) => l.trimStart().startsWith(`${name} `));
      expect(line, name).toBeDefined();
      expect(line?.includes('--no-fuse leaves it out'), name).toBe(fusionPassNames.has(name));
    }
    expect(r.stdout).toContain('fuse-attention');
    expect(r.stdout).toContain('fold-views');
    // Only the interpreter stops after the cleanups: the kernel targets' passes say so.
    expect(r.stdout.split('\n').find((l) => l.trimStart().startsWith('split-large-weights '))).toContain('[webgpu, cuda');
  });

  it('one order: every target\'s pipeline is a subsequence of the table', () => {
    const order = passTable().map((p) => p.name);
    for (const ps of Object.values(pipelines)) {
      const idx = ps.map((p) => order.indexOf(p.name));
      expect(idx.every((i) => i >= 0)).toBe(true);
      expect([...idx].sort((a, b) => a - b)).toEqual(idx);
    }
  });
});
