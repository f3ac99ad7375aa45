// `tfc compile FILE --report [--json] [--no-fuse]`: the CLI side of the memory-traffic report
// (src/kernel/report.ts). Dims come from --set (only names that are graph dims); remarks of
// the fusion passes go to stderr at --debug 1.
import type { Graph } from '../graph/ir.js';
import { createPassContext, type Target } from '../passes/pass.js';
import { printTrafficReport, trafficReport, trafficReportJson } from '../kernel/report.js';

export interface ReportCliOptions {
  readonly json: boolean;
  readonly noFuse: boolean;
  readonly target: Target;
  readonly debug: number;
  readonly log: (text: string) => void;
}

export function reportText(g: Graph, overrides: ReadonlyMap<string, number>, o: ReportCliOptions): string {
  const dims = new Map([...overrides].filter(([k]) => g.dims.includes(k)));
  const r = trafficReport(g, {
    target: o.target === 'cuda' ? 'cuda' : 'webgpu',
    dims,
    noFuse: o.noFuse,
    context: () =>
      createPassContext({
        target: o.target === 'cuda' ? 'cuda' : 'webgpu',
        remark: (x) => {
          if (o.debug >= 1) o.log(`remark: ${x.loc.file}:${x.loc.line}:${x.loc.col}: [${x.pass}] ${x.message}\n`);
        },
      }),
  });
  return o.json ? trafficReportJson(r) : printTrafficReport(r, { noFuse: o.noFuse });
}
