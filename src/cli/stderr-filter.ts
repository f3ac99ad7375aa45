// Drops Dawn's two limit warnings from a stream of stderr text. dawn.node's C++ prints them straight
// to file descriptor 2 whenever it enumerates a Vulkan adapter that reports huge dynamic-buffer
// limits (Mesa lavapipe does); no flag silences them and JavaScript cannot redirect fd 2, so the
// `tfc` binary runs commands that start WebGPU in a child process and filters its stderr here
// (src/cli/launch.ts). Everything else passes through as soon as it can no longer be a warning,
// so `\r` progress bars stay live.

/** The lines dropped: what Dawn prints for maxDynamic{Uniform,Storage}BuffersPerPipelineLayout. */
export const dawnLimitWarning = /^Warning: maxDynamic(Uniform|Storage)BuffersPerPipelineLayout artificially reduced from \d+ to \d+ to fit dynamic offset allocation limit\.\r?$/;

const linePrefix = 'Warning: maxDynamic';

export interface StderrFilter {
  /** Filters one chunk; may hold back the start of a line that could still become a warning. */
  write(text: string): void;
  /** Writes what is held back (the stream ended). */
  end(): void;
}

export function createStderrFilter(out: (text: string) => void): StderrFilter {
  // `held` is the current line while it may still be a warning; `passing` is true once the current
  // line is known not to be one (its rest goes straight out).
  let held = '';
  let passing = false;
  return {
    write(text: string): void {
      let at = 0;
      while (at < text.length) {
        const nl = text.indexOf('\n', at);
        const end = nl < 0 ? text.length : nl + 1;
        if (passing) {
          out(text.slice(at, end));
          passing = nl < 0;
          at = end;
          continue;
        }
        const part = held + text.slice(at, nl < 0 ? text.length : nl);
        at = end;
        if (nl >= 0) {
          held = '';
          if (!dawnLimitWarning.test(part)) out(`${part}\n`);
        } else if (part.length <= linePrefix.length ? linePrefix.startsWith(part) : part.startsWith(linePrefix)) {
          held = part;
        } else {
          held = '';
          out(part);
          passing = true;
        }
      }
    },
    end(): void {
      if (held !== '') out(held);
      held = '';
    },
  };
}

/** Set in the child when the parent's stderr is a terminal (the child's is a pipe). */
export const stderrTtyEnv = 'TFC_STDERR_TTY';

/**
 * Whether stderr is a terminal, also in the filtered child. Here, not in launch.ts, so commands
 * (bench-command.ts) do not import the launcher, which imports main.js (an import cycle).
 */
export function isStderrTty(env: Readonly<Record<string, string | undefined>> = process.env): boolean {
  return process.stderr.isTTY === true || env[stderrTtyEnv] === '1';
}
