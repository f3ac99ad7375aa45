// `tfc compile FILE --report [--json] [--no-fuse]`: the CLI side of the memory-traffic report
// (src/kernel/analysis/report.ts, computed by the compile driver). Dims come from --set (only names that
// are graph dims); remarks of the fusion passes go to stderr at --debug 1. With --target cuda: registers, shared memory and
// spills per kernel from ptxas (sm_80) when nvcc is installed.
import type { KernelStages } from '../compile/kernels.js';
import type { Target } from '../passes/pass.js';
import { type KernelResources, printTrafficReport, trafficReportJson } from '../kernel/analysis/report.js';
import type { Kernel } from '../kernel/ir/ir.js';
import { printCudaModule } from '../../codegen/cuda/print.js';
import { findNvcc, ptxasStats } from '../../codegen/cuda/ptxas.js';

/**
 * Registers, shared memory and spills per kernel from one `nvcc -Xptxas -v` call for sm_80 (the
 * kernels renamed by position, so two kernels of one name cannot clash); none without nvcc.
 */
function ptxasResources(ks: readonly Kernel[], log: (text: string) => void): (KernelResources | undefined)[] {
  const nvcc = findNvcc();
  if (nvcc === undefined) {
    log('tfc: warning: nvcc not found: --report --target cuda leaves out registers and shared memory (set TFC_NVCC)\n');
    return ks.map(() => undefined);
  }
  const stats = ptxasStats(printCudaModule(ks.map((k, i) => ({ ...k, name: `tfc_report_k${i}` }))), 'sm_80', nvcc);
  return ks.map((_, i) => {
    const s = stats.get(`tfc_report_k${i}`);
    return s === undefined ? undefined : { registers: s.registers, sharedBytes: s.sharedBytes, spillBytes: s.spillStoreBytes + s.spillLoadBytes };
  });
}

export interface ReportCliOptions {
  readonly json: boolean;
  readonly noFuse: boolean;
  readonly target: Target;
  readonly log: (text: string) => void;
}

/**
 * The runs a report covers. With T given (--set T=...), that one run. Without it: a prompt of 128
 * tokens (T = 128, P = 0) and, for a model with a cache dim P, one decode step after it (T = 1,
 * P = 128): the two launch different kernels (prefill vs split-K decode attention), and adding
 * them made fused look worse than unfused. Other unset dims: B = 1, others 128 (reportDims).
 */
export function reportPhases(graphDims: readonly string[], given: ReadonlyMap<string, number>): { readonly label: string; readonly dims: ReadonlyMap<string, number>; readonly assumed: readonly string[] }[] {
  const assumed = (dims: ReadonlyMap<string, number>): string[] => graphDims.filter((d) => !given.has(d)).map((d) => `${d}=${dims.get(d) ?? (d === 'B' ? 1 : 128)}`);
  if (!graphDims.includes('T') || given.has('T')) return [{ label: '', dims: given, assumed: assumed(given) }];
  const hasPast = graphDims.includes('P') && !given.has('P');
  const prefill = new Map([...given, ['T', 128], ...(hasPast ? [['P', 0] as const] : [])]);
  const phases = [{ label: 'prefill', dims: prefill, assumed: assumed(prefill) }];
  if (hasPast) {
    const decode = new Map([...given, ['T', 1], ['P', 128]]);
    phases.push({ label: 'decode step', dims: decode, assumed: assumed(decode) });
  }
  return phases;
}

/** The report of `k`'s kernels (lowered for `--limits`, or cudaLimits with ptxas resources for sm_80). */
export function reportText(k: KernelStages, overrides: ReadonlyMap<string, number>, o: ReportCliOptions): string {
  const phases = reportPhases(k.model.checked.dims, overrides);
  const reports = phases.map((p) => ({ p, r: k.report({ dims: p.dims, ...(o.target === 'cuda' ? { resources: (ks: readonly Kernel[]) => ptxasResources(ks, o.log) } : {}) }) }));
  if (o.json) {
    const [only] = reports;
    if (reports.length === 1 && only !== undefined) return trafficReportJson(only.r);
    return `{\n${reports.map(({ p, r }) => `${JSON.stringify(p.label)}: ${trafficReportJson(r).trimEnd()}`).join(',\n')}\n}\n`;
  }
  return reports
    .map(({ p, r }) => {
      const head = p.assumed.length === 0 ? '' : `${p.label === '' ? 'one run' : p.label}: assumed ${p.assumed.join(', ')} (set them with --set, e.g. --set T=1024)\n`;
      return head + printTrafficReport(r, { noFuse: o.noFuse, given: overrides });
    })
    .join('\n');
}
