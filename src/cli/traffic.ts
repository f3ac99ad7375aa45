// `tfc compile FILE --report [--json] [--no-fuse]`: the CLI side of the memory-traffic report
// (src/kernel/report.ts, computed by the compile driver). Dims come from --set (only names that
// are graph dims); remarks of the fusion passes go to stderr at --debug 1. With --target cuda: registers, shared memory and
// spills per kernel from ptxas (sm_80) when nvcc is installed.
import type { KernelStages } from '../compile/kernels.js';
import type { Target } from '../passes/pass.js';
import { type KernelResources, printTrafficReport, trafficReportJson } from '../kernel/report.js';
import type { Kernel } from '../kernel/ir.js';
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

/** The report of `k`'s kernels (lowered for `--limits`, or cudaLimits with ptxas resources for sm_80). */
export function reportText(k: KernelStages, overrides: ReadonlyMap<string, number>, o: ReportCliOptions): string {
  const r = k.report({ dims: overrides, ...(o.target === 'cuda' ? { resources: (ks: readonly Kernel[]) => ptxasResources(ks, o.log) } : {}) });
  return o.json ? trafficReportJson(r) : printTrafficReport(r, { noFuse: o.noFuse, given: overrides });
}
