// The stderr filter of the tfc binary (src/cli/stderr-filter.ts): Dawn's two native limit warnings
// are dropped wherever the pipe splits them; everything else comes through unchanged and without
// waiting for a newline once it cannot be a warning (so `\r` progress bars stay live).
import { describe, expect, it } from 'vitest';
import { commandOf } from '../../../src/cli/launch.js';
import { createStderrFilter } from '../../../src/cli/stderr-filter.js';

// As dawn.node prints them on lavapipe (copied from a run, Mesa 25.0.7).
const uniform = 'Warning: maxDynamicUniformBuffersPerPipelineLayout artificially reduced from 1000000 to 16 to fit dynamic offset allocation limit.\n';
const storage = 'Warning: maxDynamicStorageBuffersPerPipelineLayout artificially reduced from 1000000 to 16 to fit dynamic offset allocation limit.\n';

function filtered(chunks: readonly string[]): { out: string; writes: string[] } {
  const writes: string[] = [];
  const f = createStderrFilter((t) => void writes.push(t));
  for (const c of chunks) f.write(c);
  f.end();
  return { out: writes.join(''), writes };
}

describe('the stderr filter', () => {
  const text = `${uniform}${storage}reading weights    [##......]  25%\rreading weights    [########] 100%\nWarning: something else\nWarning: maxDynamic is not this\ntfc run: done`;
  const want = 'reading weights    [##......]  25%\rreading weights    [########] 100%\nWarning: something else\nWarning: maxDynamic is not this\ntfc run: done';

  it('drops the two Dawn warnings and keeps every other byte', () => {
    expect(filtered([text]).out).toBe(want);
  });

  it('gives the same text however the pipe splits it (every split point, and byte by byte)', () => {
    for (let i = 0; i <= text.length; i++) expect(filtered([text.slice(0, i), text.slice(i)]).out).toBe(want);
    expect(filtered([...text]).out).toBe(want);
  });

  it('passes a progress bar on before its line ends', () => {
    const { writes } = filtered(['reading weights [#...]  25%\r', 'reading']);
    expect(writes[0]).toBe('reading weights [#...]  25%\r');
  });

  it('writes a held partial line at the end of the stream', () => {
    expect(filtered(['Warning: maxDyn']).out).toBe('Warning: maxDyn');
  });
});

describe('commandOf', () => {
  it('finds the command after global options', () => {
    expect(commandOf(['run', 'm.tfx'])).toBe('run');
    expect(commandOf(['--debug', '2', 'bench', 'attention'])).toBe('bench');
    expect(commandOf(['--help'])).toBeUndefined();
  });
});
