// File access for the CLI: reading inputs (a missing file is a usage error, exit 2) and writing
// outputs atomically (write beside the target, then rename), so a failed run leaves no half file.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { UsageError } from './args.js';
import type { Reporter } from './report.js';

function readOrUsage<T>(path: string, what: string, read: (p: string) => T): T {
  if (!existsSync(path)) throw new UsageError(`${what} '${path}' does not exist`);
  if (statSync(path).isDirectory()) throw new UsageError(`${what} '${path}' is a directory, not a file`);
  try {
    return read(path);
  } catch (e) {
    throw new UsageError(`cannot read ${what} '${path}': ${e instanceof Error ? e.message : String(e)}`);
  }
}

export function readText(path: string, what = 'file'): string {
  return readOrUsage(path, what, (p) => readFileSync(p, 'utf8'));
}

export function readBytes(path: string, what = 'file'): Uint8Array {
  return readOrUsage(path, what, (p) => new Uint8Array(readFileSync(p)));
}

/** An output that cannot be written is a usage mistake (a wrong path), like a missing input: exit 2, one line. */
function writeFailed(_rep: Reporter, path: string, e: unknown): never {
  throw new UsageError(`cannot write '${path}': ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`);
}

/** Writes one file atomically: a temp file in the same folder, then rename over the target. */
export function writeFileAtomic(rep: Reporter, path: string, data: Uint8Array | string): void {
  const tmp = join(dirname(resolve(path)), `.${basename(path)}.tmp-${process.pid}`);
  try {
    mkdirSync(dirname(resolve(path)), { recursive: true });
    writeFileSync(tmp, data);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    writeFailed(rep, path, e);
  }
}

/**
 * Creates a new folder `prefix` + a unique suffix with mode 0777 less the umask, as `mkdir` does:
 * mkdtemp's 0700 would stay on the renamed output folder (other users could not read it).
 */
function freshDir(prefix: string): string {
  for (let i = 0; ; i++) {
    const path = `${prefix}${process.pid}-${i}`;
    try {
      mkdirSync(path, { mode: 0o777 });
      return path;
    } catch (e) {
      if ((e as { code?: string }).code !== 'EEXIST' || i > 1000) throw e;
    }
  }
}

/**
 * Writes a folder of files atomically: they go to a temp folder next to `dir`, which then
 * replaces `dir` (an old `dir` is moved aside first and removed after).
 */
export function writeDirAtomic(rep: Reporter, dir: string, files: ReadonlyMap<string, string | Uint8Array>): void {
  const abs = resolve(dir);
  const parent = dirname(abs);
  let tmp: string | undefined;
  let old: string | undefined;
  try {
    mkdirSync(parent, { recursive: true });
    tmp = freshDir(join(parent, `.${basename(abs)}.tmp-`));
    for (const [name, data] of files) {
      // Names may hold folders (`wgsl/k.wgsl`).
      mkdirSync(dirname(join(tmp, name)), { recursive: true });
      writeFileSync(join(tmp, name), data);
    }
    if (existsSync(abs)) {
      if (!statSync(abs).isDirectory()) throw new Error('it exists and is not a folder');
      old = mkdtempSync(join(parent, `.${basename(abs)}.old-`));
      rmSync(old, { recursive: true });
      renameSync(abs, old);
    }
    renameSync(tmp, abs);
    tmp = undefined;
    if (old !== undefined) rmSync(old, { recursive: true, force: true });
  } catch (e) {
    if (tmp !== undefined) rmSync(tmp, { recursive: true, force: true });
    if (old !== undefined && !existsSync(abs)) renameSync(old, abs);
    writeFailed(rep, dir, e);
  }
}
