// Runs the tfc CLI in-process (src/cli/main.ts main) and captures its exit code, stdout and stderr.
import { main } from '../../src/cli/main.js';

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** `tfc ARGV...` with an empty environment (no TFC_DEBUG leaking in from the test runner). */
export async function tfc(...argv: string[]): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, { out: (t) => (stdout += t), err: (t) => (stderr += t), env: {} });
  return { code, stdout, stderr };
}
