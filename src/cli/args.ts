// Command-line values parsed once: `--set k=v,...` overrides, the TFC_DEBUG / --debug dial, and
// the usage errors (exit 2) they raise. Nothing here reads the environment except parseDebug.

/** A mistake in how tfc was invoked (bad flag, missing file, bad --set syntax): exit 2, one line. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** A stage the CLI names but that is not built yet (a later issue): exit 2, one line. */
export function notAvailableYet(what: string): UsageError {
  return new UsageError(`${what} is not available yet (a later stage of tfc; see README.md)`);
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
// Integers, decimals and exponents, with an optional sign: `64`, `1e-5`, `-0.5`.
const NUMBER = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

/**
 * `--set layers=2,d=64 --set T=1024` -> {layers: 2, d: 64, T: 1024}, in order of appearance.
 * Syntax mistakes are usage errors; whether a name exists is the checker's business (TFC305).
 */
export function parseSetOptions(values: readonly string[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const value of values) {
    for (const part of value.split(',')) {
      const item = part.trim();
      if (item === '') throw new UsageError(`bad --set '${value}': empty item (expected name=value,name=value)`);
      const eq = item.indexOf('=');
      if (eq < 0) throw new UsageError(`bad --set '${item}': expected name=value`);
      const name = item.slice(0, eq).trim();
      const text = item.slice(eq + 1).trim();
      if (!NAME.test(name)) throw new UsageError(`bad --set '${item}': '${name}' is not a name`);
      if (!NUMBER.test(text)) throw new UsageError(`bad --set '${item}': '${text}' is not a number`);
      const v = Number(text);
      if (!Number.isFinite(v)) throw new UsageError(`bad --set '${item}': '${text}' is not a finite number`);
      const prev = out.get(name);
      if (prev !== undefined && prev !== v) throw new UsageError(`bad --set: '${name}' is set twice (${prev} and ${v})`);
      out.set(name, v);
    }
  }
  return out;
}

/** Commander collector for repeatable options. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/**
 * The one debug dial (STYLE.md; the table in README "TFC_DEBUG"): 0 quiet; 1 optimization remarks
 * and `tfc compile`'s kernel list with launches and bytes moved; 2 plus each kernel's schedule,
 * the time of each pass and rewrite-rule hits; 3 plus the IR after each pass; 4 plus every
 * kernel's generated source. `--debug N` wins over TFC_DEBUG.
 */
export function parseDebug(flag: string | undefined, env: string | undefined): number {
  const pick = flag ?? env;
  if (pick === undefined || pick === '') return 0;
  if (!/^[0-4]$/.test(pick.trim())) {
    throw new UsageError(`bad ${flag !== undefined ? '--debug' : 'TFC_DEBUG'} value '${pick}': expected an integer 0..4`);
  }
  return Number(pick.trim());
}

export const debugLevels: readonly (readonly [number, string])[] = [
  [0, 'quiet (default)'],
  [1, 'optimization remarks; tfc compile: kernel list with launches and bytes moved'],
  [2, 'plus the time of each pass and rewrite-rule hits; tfc compile: each kernel\'s schedule'],
  [3, 'plus the IR after each pass'],
  [4, 'plus, for tfc compile, every kernel\'s generated source (WGSL, or CUDA with --target cuda)'],
];

/** `--flag N` as an integer >= 0 (a seed); a usage error naming the flag otherwise. */
export function nonNegativeInt(flag: string, v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(n)) throw new UsageError(`bad ${flag} '${v}': expected a non-negative integer`);
  return n;
}
