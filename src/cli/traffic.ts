// `tfc compile FILE --report [--json] [--no-fuse]`: the CLI side of the memory-traffic report
// (src/kernel/report.ts). Dims come from --set (only names that are graph dims); remarks of
// the fusion passes go to stderr at --debug 1. With --target cuda: registers, shared memory and
// spills per kernel from ptxas (sm_80) when nvcc is installed.
import type { Graph } from '../graph/ir.js';
import { createPassContext, type Target } from '../passes/pass.js';
import { type KernelResources, printTrafficReport, trafficReport, trafficReportJson } from '../kernel/report.js';
import type { Kernel } from '../kernel/ir.js';
import { cudaLimits, type TargetLimits } from '../kernel/schedule.js';
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
  /** WebGPU: the limits `compile` would lower for (--limits), so the report shows those kernels. */
  readonly limits: TargetLimits;
  readonly debug: number;
  readonly log: (text: string) => void;
}

export function reportText(g: Graph, overrides: ReadonlyMap<string, number>, o: ReportCliOptions): string {
  const dims = new Map([...overrides].filter(([k]) => g.dims.includes(k)));
  const r = trafficReport(g, {
    target: o.target === 'cuda' ? 'cuda' : 'webgpu',
    dims,
    noFuse: o.noFuse,
    // CUDA: the kernels as compiled for cudaLimits (tiles, warps), with ptxas resources for sm_80.
    ...(o.target === 'cuda' ? { limits: cudaLimits, resources: (ks: readonly Kernel[]) => ptxasResources(ks, o.log) } : { limits: o.limits }),
    context: () =>
      createPassContext({
        target: o.target === 'cuda' ? 'cuda' : 'webgpu',
        remark: (x) => {
          if (o.debug >= 1) o.log(`remark: ${x.loc.file}:${x.loc.line}:${x.loc.col}: [${x.pass}] ${x.message}\n`);
        },
      }),
  });
  return o.json ? trafficReportJson(r) : printTrafficReport(r, { noFuse: o.noFuse, given: overrides });
}
