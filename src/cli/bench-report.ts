// `tfc bench` output: statistics over repeats, the error check against the float64 reference,
// the terminal table with tfc-vs-peer ratios, the JSON document and the SVG/PNG plot of time vs T.

export type Status = 'ok' | 'wrong' | 'failed' | 'skipped';

export interface SystemResult {
  readonly system: string;
  readonly status: Status;
  /** 'timestamp-query' | 'ort-profiling' | 'tfjs-kernelMs' when `gpuMs` holds GPU times, else 'wall'. */
  readonly timeSource: string;
  /** Wall time of each measured run (ms): upload, dispatch, readback. */
  readonly wallMs: readonly number[];
  /** GPU time of each measured run (ms), when the system reports it. */
  readonly gpuMs?: readonly number[];
  readonly maxAbsErr?: number;
  /** maxAbsErr / max |reference|. */
  readonly relErr?: number;
  readonly kernels?: number;
  /** Why it failed, was skipped or is wrong; notes (e.g. "f16 unsupported"). */
  readonly note?: string;
  /** tfc only: GPU ms per kernel name (median run), for profiling. */
  readonly profile?: readonly { readonly kernel: string; readonly ms: number; readonly count: number }[];
  /** tfc only: each plan step's minimum GPU ms over the measured runs (skipped steps: 0). */
  readonly stepMinMs?: readonly number[];
}

import type { FusionRow } from '../kernel/analysis/fusion-profile.js';

export interface CaseResult {
  readonly suite: string;
  readonly name: string;
  readonly params: Readonly<Record<string, number | string | boolean>>;
  readonly results: readonly SystemResult[];
  /**
   * The work one run must do, whoever does it: FLOPs (the model's, from the op catalog; attention
   * counts only the visible query-key pairs) or, for memory-bound cases (decode), the bytes of
   * the lower bound (every input and weight read once, every output written once). The table's
   * `% peak` divides it by a run's time and by this process's peak (bench-peak.ts).
   */
  readonly work?: { readonly flops?: number; readonly bytes?: number };
  /** model: each fused kernel against the unfused kernels it replaced (bench-fusion.ts). */
  readonly fusion?: readonly FusionRow[];
}

export interface BenchDocument {
  readonly tool: 'tfc bench';
  readonly version: 1;
  readonly adapter: string;
  readonly machine: string;
  /** The adapter's FMA and copy ceilings measured in the same process (bench-peak.ts). */
  readonly peak?: { readonly fmaGflops: number; readonly copyGBs: number };
  readonly startedAt: string;
  readonly warmup: number;
  readonly repeats: number;
  readonly cases: readonly CaseResult[];
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? (s[m] ?? NaN) : ((s[m - 1] ?? NaN) + (s[m] ?? NaN)) / 2;
}

/** Relative spread: (max - min) / median. */
export function spread(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  return (Math.max(...xs) - Math.min(...xs)) / median(xs);
}

export interface ErrorStats {
  readonly maxAbsErr: number;
  readonly relErr: number;
  readonly nonFinite: number;
}

/** Compares `got` with the float64 reference at the given flat indices (all when omitted). */
export function compare(got: ArrayLike<number>, want: ArrayLike<number>, at?: readonly number[]): ErrorStats {
  let maxAbsErr = 0;
  let maxRef = 0;
  let nonFinite = 0;
  const n = at?.length ?? want.length;
  for (let j = 0; j < n; j++) {
    const i = at?.[j] ?? j;
    const g = got[i] ?? NaN;
    const w = at === undefined ? (want[i] ?? NaN) : (want[j] ?? NaN);
    if (!Number.isFinite(g)) nonFinite++;
    else maxAbsErr = Math.max(maxAbsErr, Math.abs(g - w));
    maxRef = Math.max(maxRef, Math.abs(w));
  }
  if (nonFinite > 0) maxAbsErr = Infinity;
  return { maxAbsErr, relErr: maxAbsErr / Math.max(maxRef, 1e-30), nonFinite };
}

/** The time ratios use: GPU time when the system has it, else wall time. */
export function timeOf(r: SystemResult): { readonly ms: number; readonly kind: 'gpu' | 'wall' } {
  if (r.gpuMs !== undefined && r.gpuMs.length > 0) return { ms: median(r.gpuMs), kind: 'gpu' };
  return { ms: median(r.wallMs), kind: 'wall' };
}

function fmtMs(ms: number): string {
  if (!Number.isFinite(ms)) return '-';
  return ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2);
}

function fmtErr(e: number | undefined): string {
  return e === undefined ? '-' : Number.isFinite(e) ? e.toExponential(1) : 'inf';
}

/**
 * The terminal table: one row per (case, system) with median GPU and wall time, spread, error,
 * kernel count and the ratio `peer time / tfc fused time` (> 1: tfc is faster).
 */
/** Percent of the ceiling a run reached: work / time against the FMA (FLOPs) or copy (bytes) peak. */
export function percentOfPeak(c: CaseResult, ms: number, peak: { readonly fmaGflops: number; readonly copyGBs: number } | undefined): number | undefined {
  if (peak === undefined || !Number.isFinite(ms) || ms <= 0) return undefined;
  if (c.work?.flops !== undefined) return (100 * c.work.flops) / (ms * 1e6) / peak.fmaGflops;
  if (c.work?.bytes !== undefined) return (100 * c.work.bytes) / (ms * 1e6) / peak.copyGBs;
  return undefined;
}

export function formatTable(cases: readonly CaseResult[], baseline = 'tfc', peak?: { readonly fmaGflops: number; readonly copyGBs: number }): string {
  const header = ['case', 'system', 'status', 'gpu ms', 'wall ms', '±%', 'max err', 'rel err', 'kernels', `vs ${baseline}`, ...(peak !== undefined ? ['% peak'] : [])];
  const rows: string[][] = [header];
  for (const c of cases) {
    const base = c.results.find((r) => r.system === baseline && r.status === 'ok');
    for (const r of c.results) {
      const g = r.gpuMs !== undefined && r.gpuMs.length > 0 ? median(r.gpuMs) : NaN;
      const w = median(r.wallMs);
      const sp = r.gpuMs !== undefined && r.gpuMs.length > 0 ? spread(r.gpuMs) : spread(r.wallMs);
      let ratio = '';
      if (base !== undefined && r !== base && r.status === 'ok') {
        const bothGpu = base.gpuMs !== undefined && base.gpuMs.length > 0 && r.gpuMs !== undefined && r.gpuMs.length > 0;
        const num = bothGpu ? median(r.gpuMs ?? []) : median(r.wallMs);
        const den = bothGpu ? median(base.gpuMs ?? []) : median(base.wallMs);
        ratio = `${(num / den).toFixed(2)}x ${bothGpu ? 'gpu' : 'wall'}`;
      } else if (r.status !== 'ok' && r.status !== 'skipped') ratio = r.status.toUpperCase();
      rows.push([
        c.name,
        r.system,
        `${r.status}${r.note !== undefined ? ': ' + r.note.slice(0, 60) : ''}`,
        fmtMs(g),
        fmtMs(w),
        Number.isFinite(sp) ? (sp * 100).toFixed(0) : '-',
        fmtErr(r.maxAbsErr),
        fmtErr(r.relErr),
        r.kernels === undefined ? '-' : String(r.kernels),
        ratio,
        ...(peak !== undefined ? [((): string => {
          const pct = r.status === 'ok' ? percentOfPeak(c, Number.isFinite(g) ? g : w, peak) : undefined;
          return pct === undefined ? '-' : `${pct.toFixed(0)}%${c.work?.flops !== undefined ? ' fma' : ' copy'}`;
        })()] : []),
      ]);
    }
  }
  const widths = header.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  const numeric = new Set([3, 4, 5, 6, 7, 8, 10]);
  const line = (r: string[]): string => r.map((cell, i) => (numeric.has(i) ? cell.padStart(widths[i] ?? 0) : cell.padEnd(widths[i] ?? 0))).join('  ').trimEnd();
  const out = [line(header), widths.map((w) => '-'.repeat(w)).join('  ')];
  let prev = '';
  for (const r of rows.slice(1)) {
    const name = r[0] ?? '';
    out.push(line(name === prev ? ['', ...r.slice(1)] : r));
    prev = name;
  }
  return `${out.join('\n')}\n`;
}

/** A progress bar on stderr: `[#####.....] 5/10 attention T=1024 ort-mha`. */
export class Progress {
  private done = 0;
  constructor(
    private readonly total: number,
    private readonly write: (s: string) => void,
    private readonly isTty: boolean,
  ) {}
  step(label: string): void {
    this.done++;
    const width = 24;
    const filled = Math.round((this.done / Math.max(this.total, 1)) * width);
    const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${this.done}/${this.total} ${label}`;
    this.write(this.isTty ? `\r\x1b[2K${bar}` : `${bar}\n`);
  }
  end(): void {
    if (this.isTty) this.write('\n');
  }
}

// ---------------------------------------------------------------------------------------------
// Plot: time (log) vs T (log2) per system, one panel per series key.

const palette = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#17becf'];

export interface PlotPoint {
  readonly panel: string;
  readonly system: string;
  readonly x: number;
  readonly ms: number;
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

export function plotSvg(title: string, points: readonly PlotPoint[], xLabel = 'T', subtitle = ''): string {
  const panels = [...new Set(points.map((p) => p.panel))];
  const systems = [...new Set(points.map((p) => p.system))];
  const cols = Math.min(2, Math.max(panels.length, 1));
  const rowsN = Math.max(1, Math.ceil(panels.length / cols));
  const pw = 420;
  const ph = 280;
  const W = Math.max(cols * pw + 40, 880);
  const H = rowsN * ph + 110 + 18 * Math.ceil(systems.length / 3);
  const o: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${esc(title)}</text>`,
    `<text x="${W / 2}" y="34" text-anchor="middle" font-size="10" fill="#555">${esc(subtitle.slice(0, 110))}</text>`,
  ];
  panels.forEach((panel, pi) => {
    const ox = 20 + (pi % cols) * pw + 50;
    const oy = 60 + Math.floor(pi / cols) * ph;
    const w = pw - 80;
    const h = ph - 70;
    const pts = points.filter((p) => p.panel === panel && Number.isFinite(p.ms) && p.ms > 0);
    const xs = [...new Set(pts.map((p) => p.x))].sort((a, b) => a - b);
    const lx = (x: number): number => Math.log2(x);
    const x0 = lx(xs[0] ?? 1);
    const x1 = lx(xs[xs.length - 1] ?? 2);
    const ys = pts.map((p) => Math.log10(p.ms));
    const y0 = ys.length > 0 ? Math.floor(Math.min(...ys)) : 0;
    const y1 = Math.ceil(Math.max(...ys, y0 + 1));
    const sx = (x: number): number => ox + (x1 === x0 ? w / 2 : ((lx(x) - x0) / (x1 - x0)) * w);
    const sy = (ms: number): number => oy + h - ((Math.log10(ms) - y0) / (y1 - y0)) * h;
    o.push(`<text x="${ox + w / 2}" y="${oy - 6}" text-anchor="middle" font-size="12">${esc(panel)}</text>`);
    o.push(`<rect x="${ox}" y="${oy}" width="${w}" height="${h}" fill="none" stroke="#888"/>`);
    for (let e = y0; e <= y1; e++) {
      const y = oy + h - ((e - y0) / (y1 - y0)) * h;
      o.push(`<line x1="${ox}" y1="${y.toFixed(1)}" x2="${ox + w}" y2="${y.toFixed(1)}" stroke="#eee"/>`);
      o.push(`<text x="${ox - 4}" y="${(y + 4).toFixed(1)}" text-anchor="end">${esc(e >= 0 ? String(10 ** e) : (10 ** e).toString())} ms</text>`);
    }
    for (const x of xs) o.push(`<text x="${sx(x).toFixed(1)}" y="${oy + h + 14}" text-anchor="middle">${x}</text>`);
    o.push(`<text x="${ox + w / 2}" y="${oy + h + 30}" text-anchor="middle">${esc(xLabel)}</text>`);
    systems.forEach((sys, si) => {
      const line = pts.filter((p) => p.system === sys).sort((a, b) => a.x - b.x);
      if (line.length === 0) return;
      const color = palette[si % palette.length] ?? '#000';
      o.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${line.map((p) => `${sx(p.x).toFixed(1)},${sy(p.ms).toFixed(1)}`).join(' ')}"/>`);
      for (const p of line) o.push(`<circle cx="${sx(p.x).toFixed(1)}" cy="${sy(p.ms).toFixed(1)}" r="3" fill="${color}"/>`);
    });
  });
  const ly = 60 + rowsN * ph + 10;
  systems.forEach((sys, si) => {
    const x = 30 + (si % 3) * 280;
    const y = ly + Math.floor(si / 3) * 18;
    const color = palette[si % palette.length] ?? '#000';
    o.push(`<rect x="${x}" y="${y - 9}" width="14" height="4" fill="${color}"/><text x="${x + 20}" y="${y}">${esc(sys)}</text>`);
  });
  o.push('</svg>');
  return `${o.join('\n')}\n`;
}

/** Renders the SVG to PNG with resvg (a devDependency; undefined when it is not installed). */
export async function svgToPng(svg: string): Promise<Uint8Array | undefined> {
  try {
    const specifier = '@resvg/resvg-js';
    const mod = (await import(specifier)) as { Resvg: new (svg: string, o: object) => { render(): { asPng(): Uint8Array } } };
    return mod.Resvg === undefined ? undefined : new mod.Resvg(svg, { font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' } }).render().asPng();
  } catch {
    return undefined;
  }
}
