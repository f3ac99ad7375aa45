// `tfc tune FILE` on the command line (the tuning itself is tune.ts), and how `compile` and `run`
// read the tune cache (--tuned-for, the run's adapter): bad cache files are user errors.
import { accessSync, constants, existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Command } from 'commander';
import type { Graph } from '../graph/ir.js';
import { type Diagnostic, UserErrorsReported, diag } from '../diag/diagnostic.js';
import { neededTensors } from '../io/check-tensors.js';
import { fileSpan } from '../io/safetensors.js';
import { UsageError, collect, nonNegativeInt, parseSetOptions } from './args.js';
import { writeFileAtomic } from './fsio.js';
import { unboundShapes } from './random.js';
import type { Reporter } from './report.js';
import { openModel } from './stages.js';
import { assertNever } from '../kernel/ir/ir.js';
import { type TargetLimits, chooseSchedule, lavapipeLimits } from '../kernel/schedule/schedule.js';
import {
  type CachedSchedule,
  applyTuneCache,
  cachedAdapters,
  readTuneCache,
  resolveAdapter,
  serializeTuneCache,
  tuneCachePath,
  withEntries,
} from '../kernel/schedule/tune-cache.js';
import { type AcquiredDevice, NoWebGpuError, acquireDevice } from '../runtime/device.js';
import { RuntimeError } from '../runtime/errors.js';
import { targetLimitsOf } from '../runtime/target.js';
import { type TuneProgress, scheduleText, tune, tuneTable } from './tune.js';
import { groupLabel, selectGroups, tuneGroups } from './tune-candidates.js';

/** A cache that is not valid is the user's file to fix: TFC311 naming it, exit 1. */
function reportBadCache(rep: Reporter, path: string, reason: string, hint: string): never {
  rep.report(diag('TFC311', fileSpan(path), `the tune cache is ${reason}; ${hint}`));
  throw new UserErrorsReported();
}

/**
 * `tfc run --target webgpu`: the cached winners for the adapter it runs on (`adapter`). A cache
 * that does not read is ignored with a warning (tuning is optional; the run stays correct).
 */
export function cachedScheduleForRun(g: Graph, limits: TargetLimits, cachePath: string, warn: (text: string) => void): CachedSchedule | undefined {
  const read = readTuneCache(cachePath);
  if (!read.ok) {
    warn(`tfc: warning: ignoring the tune cache '${cachePath}': it is ${read.reason}\n`);
    return undefined;
  }
  if (Object.keys(read.cache.entries).length === 0) return undefined;
  const r = applyTuneCache(g, chooseSchedule(limits), read.cache, limits.name, limits);
  return r.used.length === 0 ? undefined : r;
}

/**
 * `tfc compile --tuned-for ADAPTER`: the cached winners of a named adapter, read from the file
 * alone (no device is started, so an offline compile stays offline). Usage errors when the name
 * matches no adapter in the cache or several; a warning when none of its entries fits this model.
 */
export function cachedScheduleForCompile(
  rep: Reporter,
  g: Graph,
  limits: TargetLimits,
  cachePath: string,
  adapterName: string,
  warn: (text: string) => void,
): CachedSchedule & { readonly adapter: string } {
  const read = readTuneCache(cachePath);
  if (!read.ok) reportBadCache(rep, cachePath, read.reason, "fix or delete it, or point TFC_TUNE_CACHE at another file");
  const adapters = cachedAdapters(read.cache);
  if (adapters.length === 0) throw new UsageError(`--tuned-for '${adapterName}': the tune cache '${cachePath}' has no entries (run 'tfc tune' on that machine, or set TFC_TUNE_CACHE)`);
  const found = resolveAdapter(read.cache, adapterName);
  if (!('adapter' in found)) {
    const what = found.matches.length > 1 ? `matches several adapters (${found.matches.join('; ')}): name one exactly` : `has no entries in the tune cache '${cachePath}'`;
    throw new UsageError(`--tuned-for '${adapterName}' ${what}; adapters with entries: ${adapters.join('; ')}`);
  }
  const base = chooseSchedule(limits);
  const r = applyTuneCache(g, base, read.cache, found.adapter, limits);
  for (const u of r.unfit) warn(`tfc compile: warning: tuned schedule for ${found.adapter} not used, it does not fit --limits ${limits.name}: ${u}\n`);
  if (r.used.length === 0 && r.unfit.length === 0) {
    const n = Object.values(read.cache.entries).filter((e) => e.adapter === found.adapter).length;
    warn(`tfc compile: warning: --tuned-for '${adapterName}': none of the ${n} cached shape${n === 1 ? '' : 's'} of ${found.adapter} is a matmul/attention shape of this model (run 'tfc tune' on it with the same --set); default schedules used\n`);
  }
  return { ...r, adapter: found.adapter };
}

export interface TuneIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  readonly env: Readonly<Record<string, string | undefined>>;
}

/** Fails now, before any tuning, when the cache cannot be written (exit 2, like any unwritable output). */
function checkWritable(path: string): void {
  try {
    if (existsSync(path) && statSync(path).isDirectory()) throw new Error('it is a folder');
    const dir = dirname(resolve(path));
    mkdirSync(dir, { recursive: true });
    accessSync(dir, constants.W_OK);
    if (existsSync(path)) accessSync(path, constants.W_OK);
  } catch (e) {
    throw new UsageError(`cannot write the tune cache '${path}': ${e instanceof Error ? e.message.split('\n')[0] : String(e)} (pass --cache FILE)`);
  }
}

/** One progress line per candidate on stderr: written when it starts, finished with its result. */
function progressPrinter(err: (text: string) => void): (e: TuneProgress) => void {
  return (e) => {
    switch (e.kind) {
      case 'reference':
        err(`${groupLabel(e.group)}: float64 reference of its ${e.distinct === 1 ? 'node' : `${e.distinct} distinct nodes`} (interpreter)... `);
        return;
      case 'reference-done':
        err(`${(e.ms / 1000).toFixed(1)} s\n`);
        return;
      case 'candidate': {
        const w = String(e.total).length;
        const c = e.group.candidates[e.index];
        err(`[${String(e.done + 1).padStart(w)}/${e.total}] ${groupLabel(e.group)} candidate ${e.index + 1}/${e.group.candidates.length} ${c === undefined ? '' : scheduleText(c)}: compile, check... `);
        return;
      }
      case 'candidate-done': {
        const r = e.result;
        err(`${r.ok ? `ok (err ${r.error.toExponential(1)})` : 'REJECTED'}${r.note !== undefined ? ` (${r.note})` : ''}\n`);
        return;
      }
      case 'timing':
        err(`${groupLabel(e.group)}: timing ${e.candidates} candidate${e.candidates === 1 ? '' : 's'}, ${e.repeats} interleaved round${e.repeats === 1 ? '' : 's'}... `);
        return;
      case 'timing-done':
        err(`${(e.ms / 1000).toFixed(1)} s\n`);
        return;
      default:
        assertNever(e);
    }
  };
}

export function addTuneCommand(program: Command, io: TuneIo, state: { debug: number; rep: Reporter }): void {
  program
    .command('tune')
    .description('time candidate matmul/attention schedules on this WebGPU adapter (each shape\'s own kernels), check each against the float64 interpreter, cache the winners')
    .argument('<FILE>', '.tfx source (or a dumped .ir file)')
    .option('--set <k=v,...>', 'override config constants and bind dims (repeatable)', collect, [])
    .option('--repeats <N>', 'timed runs per candidate after one checked warm-up, interleaved over the candidates of a shape (median)', '5')
    .option('--cache <FILE>', 'cache file (default: $TFC_TUNE_CACHE, else ~/.cache/tfc/tune.json)')
    .option('--seed <N>', 'seed of the random weights and inputs', '0')
    .option('--only <GROUP>', "tune only these shapes (repeatable): 'matmul', 'attention', or a shape as the table prints it", collect, [])
    .action(async (file: string, o: { set: string[]; repeats: string; cache?: string; seed: string; only: string[] }) => {
      const repeats = Number(o.repeats);
      if (!Number.isInteger(repeats) || repeats < 1 || repeats > 1000) throw new UsageError(`bad --repeats '${o.repeats}': expected an integer 1..1000`);
      const seed = nonNegativeInt('--seed', o.seed);
      // Everything that can fail without a device fails before one is started.
      const path = tuneCachePath(o.cache, io.env);
      checkWritable(path);
      const read = readTuneCache(path);
      if (!read.ok) reportBadCache(state.rep, path, read.reason, 'fix or delete it, or pass --cache FILE (tfc tune adds its winners to the entries already there)');
      const overrides = parseSetOptions(o.set);
      const m = openModel(state.rep, file, { overrides, target: 'webgpu', passes: { debug: state.debug, locs: true, log: io.err } });
      const checked = m.checked;
      state.rep.flush();
      const g = m.graph;
      state.rep.flush();
      const all = tuneGroups(g, lavapipeLimits); // the groups do not depend on the limits (their candidates do)
      if (all.length === 0) throw new UsageError(`nothing to tune: ${file} has no matmul or attention after the webgpu passes`);
      const picked = selectGroups(all, o.only);
      if (picked.unknown.length > 0) {
        throw new UsageError(`--only ${picked.unknown.map((u) => `'${u}'`).join(', ')} matches no shape of ${file}; its shapes: ${all.map(groupLabel).join('; ')} (or 'matmul', 'attention')`);
      }
      // Every tensor of the model needs its size now (the sub-graphs' operands derive from them).
      const ds: Diagnostic[] = [];
      unboundShapes(neededTensors(checked), overrides, ds);
      state.rep.reportAll(ds);
      state.rep.flush();
      if (state.rep.hasErrors) throw new UserErrorsReported();
      const dims = new Map([...overrides].filter(([k]) => g.dims.includes(k)));
      let dev: AcquiredDevice;
      try {
        dev = await acquireDevice();
      } catch (e) {
        if (e instanceof NoWebGpuError) throw new RuntimeError('device', `tfc tune needs a WebGPU adapter: ${e.message}`);
        throw e;
      }
      if (!dev.features.has('timestamp-query')) throw new RuntimeError('feature', `tfc tune: the adapter ${targetLimitsOf(dev).name} has no timestamp-query feature, so candidates cannot be timed`);
      const groups = selectGroups(tuneGroups(g, targetLimitsOf(dev)), o.only).groups;
      const total = groups.reduce((a, gr) => a + gr.candidates.length, 0);
      const nodes = groups.reduce((a, gr) => a + gr.nodeIds.length, 0);
      io.err(`tfc tune: ${file}: ${groups.length} shape${groups.length === 1 ? '' : 's'} (${nodes} nodes), ${total} candidates on ${targetLimitsOf(dev).name}; each shape on a sub-graph of its distinct nodes, each candidate: compile, 1 warm-up run checked vs float64, then ${repeats} timed run${repeats === 1 ? '' : 's'} each, interleaved with the shape's other candidates\n`);
      const started = performance.now();
      const report = await tune(dev, g, dims, { repeats, seed, only: o.only, progress: progressPrinter(io.err) });
      io.out(tuneTable(report));
      // Re-read: another tune may have written the file meanwhile; its entries for other shapes stay.
      const now = readTuneCache(path);
      const cache = withEntries(now.ok ? now.cache : read.cache, report.entries);
      writeFileAtomic(state.rep, path, serializeTuneCache(cache));
      io.err(`tfc tune: ${((performance.now() - started) / 1000).toFixed(0)} s; ${report.entries.length} winner${report.entries.length === 1 ? '' : 's'} for ${report.adapter} -> ${path} (use: tfc run --target webgpu on this adapter, or tfc compile --tuned-for '${report.adapter}')\n`);
    });
}
