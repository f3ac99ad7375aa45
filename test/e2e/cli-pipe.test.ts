// `tfc ... | head -1`: a reader that closes our stdout early ends the run quietly (exit 0, nothing
// on stderr) instead of an uncaught EPIPE with a stack trace. Spawns the real binary (dist/).
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';

const repo = new URL('../../', import.meta.url).pathname;

describe('a closed stdout', () => {
  it('ends tfc compile --emit kernels quietly with exit 0', async () => {
    // GPT-2's kernel listing is ~300 KB, far more than a pipe buffer: writes continue after the close.
    const child = spawn(process.execPath, ['bin/tfc.js', 'compile', 'examples/gpt2.tfx', '--emit', 'kernels'], { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const first = await new Promise<string>((resolve) => child.stdout.once('data', (d: Buffer) => resolve(d.toString())));
    child.stdout.destroy();
    const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    expect(first).toMatch(/^kernels gpt2\(B, T\): \d+ kernels/);
    expect(stderr).toBe('');
    expect(code).toBe(0);
  });
});
