// What the `tfc` binary (bin/tfc.js) runs. Commands that may start WebGPU (run, bench, tune) run
// main.js in a child process whose stderr goes through createStderrFilter, which drops the two
// limit warnings Dawn's native code prints on lavapipe (see stderr-filter.ts); every other command
// runs in this process, so `tfc check` and `tfc compile` pay for no second Node start.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createStderrFilter, stderrTtyEnv } from './stderr-filter.js';

/** Commands that may load dawn.node. */
const gpuCommands = new Set(['run', 'bench', 'tune']);

/** The command word of a tfc argv (after global options such as `--debug N`), if any. */
export function commandOf(argv: readonly string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    if (a === '--debug') {
      i++;
      continue;
    }
    if (!a.startsWith('-')) return a;
  }
  return undefined;
}

/** Runs one tfc invocation as the binary does; resolves to the exit code. */
export async function launch(argv: readonly string[]): Promise<number> {
  const command = commandOf(argv);
  if (command === undefined || !gpuCommands.has(command) || process.env['TFC_NO_STDERR_FILTER'] === '1') {
    const { main } = await import('./main.js');
    return main(argv);
  }
  const mainJs = fileURLToPath(new URL('./main.js', import.meta.url));
  const child = spawn(process.execPath, [...process.execArgv, mainJs, ...argv], {
    stdio: ['inherit', 'inherit', 'pipe'],
    env: { ...process.env, [stderrTtyEnv]: process.stderr.isTTY === true ? '1' : '' },
  });
  const filter = createStderrFilter((t) => void process.stderr.write(t));
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (t: string) => filter.write(t));
  // Ctrl-C reaches the whole process group: let the child finish its own handling and exit. A
  // signal sent to this process alone (timeout, kill) is passed on.
  const forward = (sig: NodeJS.Signals): void => void child.kill(sig);
  process.on('SIGINT', () => undefined);
  process.on('SIGTERM', forward);
  process.on('SIGHUP', forward);
  return new Promise((resolve) => {
    child.on('error', (e) => {
      process.stderr.write(`tfc: error: cannot start ${process.execPath}: ${e.message}\n`);
      resolve(70);
    });
    child.on('close', (code, signal) => {
      filter.end();
      resolve(code ?? 128 + (signal === 'SIGINT' ? 2 : signal === 'SIGKILL' ? 9 : 15));
    });
  });
}
