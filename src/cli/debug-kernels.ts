// What `tfc compile` prints on stderr about its kernels at each TFC_DEBUG level (README "TFC_DEBUG",
// args.ts debugLevels): 1 the kernel list (launches, bytes moved at the report dims, source
// location), 2 each kernel's schedule under it, 4 every kernel's generated source after the list.
// Level 2's per-pass times and rule hits and level 3's IR dumps come from the pass driver
// (src/compile/model.ts); remarks (level 1) too.
import { describeSchedule } from '../../codegen/common/c-style.js';
import type { KernelProgram } from '../kernel/ir/ir.js';
import { type Plan, evalSize } from '../kernel/plan/plan.js';
import { printSize } from '../kernel/plan/to-size.js';

/** 1536 -> '1.5 KiB' (binary units, one decimal; bytes below 1 KiB as they are). */
export function byteText(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${units[u]}`;
}

export interface KernelDebugInput {
  readonly plan: Plan;
  /** The kernel IR the plan was built from (its schedules). */
  readonly program: KernelProgram;
  /** Values of the graph dims the byte counts are evaluated at (reportDims: --set, else B=1, others 128). */
  readonly dims: ReadonlyMap<string, number>;
  readonly limits: string;
  /** Which source level 4 prints. */
  readonly language: 'wgsl' | 'cuda';
}

/** The stderr text for `level` (empty below 1). */
export function kernelDebugText(level: number, o: KernelDebugInput): string {
  if (level < 1) return '';
  const { plan, dims } = o;
  const at = [...dims].map(([d, v]) => `${d}=${v}`).join(', ');
  const lines = [`tfc compile: ${plan.steps.length} launches of ${plan.kernels.length} kernels (limits: ${o.limits}); bytes at ${at === '' ? 'no dims' : at} (--set to change)`];
  const schedules = new Map(o.program.kernels.map((k) => [k.name, k.schedule]));
  for (const k of plan.kernels) {
    const launches = plan.steps.filter((s) => s.kernel === k.name).length;
    const bytes = (e: typeof k.bytesRead): string => {
      try {
        return byteText(evalSize(e, dims));
      } catch {
        return printSize(e); // a dim with no value (cannot happen with reportDims): the formula
      }
    };
    lines.push(`  ${k.name.padEnd(32)} ${`${launches}x`.padStart(4)}  read ${bytes(k.bytesRead).padStart(10)}  written ${bytes(k.bytesWritten).padStart(10)}  ${k.locs[0] ?? ''}`);
    const s = schedules.get(k.name);
    if (level >= 2 && s !== undefined) lines.push(`      schedule: ${describeSchedule(s)}`);
  }
  if (level >= 4) {
    for (const k of plan.kernels) {
      const text = o.language === 'cuda' ? k.source.cuda : k.source.wgsl;
      if (text !== undefined) lines.push(`--- ${k.name}.${o.language === 'cuda' ? 'cu' : 'wgsl'}`, text.trimEnd());
    }
  }
  return `${lines.join('\n')}\n`;
}
