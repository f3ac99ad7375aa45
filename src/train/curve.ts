// The loss curve of a training run as an SVG (linear axes: step, loss), train loss per step as a
// line and validation losses as points. Deterministic text: the same run gives the same file.

export interface CurvePoint {
  readonly step: number;
  readonly loss: number;
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Round numbers for axis ticks: about `count` of them spanning [lo, hi]. */
function ticks(lo: number, hi: number, count: number): number[] {
  const raw = (hi - lo) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw || 1));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

export function lossCurveSvg(title: string, train: readonly CurvePoint[], val: readonly CurvePoint[]): string {
  const W = 720;
  const H = 420;
  const ox = 70;
  const oy = 50;
  const w = W - ox - 30;
  const h = H - oy - 70;
  const all = [...train, ...val].filter((p) => Number.isFinite(p.loss));
  const maxStep = Math.max(1, ...all.map((p) => p.step));
  const lo = Math.min(...all.map((p) => p.loss), Infinity);
  const hi = Math.max(...all.map((p) => p.loss), -Infinity);
  const y0 = Number.isFinite(lo) ? Math.max(0, lo - (hi - lo) * 0.05) : 0;
  const y1 = Number.isFinite(hi) && hi > y0 ? hi + (hi - y0) * 0.05 : y0 + 1;
  const sx = (s: number): number => ox + (s / maxStep) * w;
  const sy = (l: number): number => oy + h - ((l - y0) / (y1 - y0)) * h;
  const o: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="24" text-anchor="middle" font-size="14">${esc(title)}</text>`,
    `<rect x="${ox}" y="${oy}" width="${w}" height="${h}" fill="none" stroke="#888"/>`,
  ];
  for (const v of ticks(y0, y1, 6)) {
    o.push(`<line x1="${ox}" y1="${sy(v).toFixed(1)}" x2="${ox + w}" y2="${sy(v).toFixed(1)}" stroke="#eee"/>`);
    o.push(`<text x="${ox - 6}" y="${(sy(v) + 4).toFixed(1)}" text-anchor="end">${v}</text>`);
  }
  for (const s of ticks(0, maxStep, 8)) o.push(`<text x="${sx(s).toFixed(1)}" y="${oy + h + 16}" text-anchor="middle">${s}</text>`);
  o.push(`<text x="${ox + w / 2}" y="${oy + h + 36}" text-anchor="middle">step</text>`);
  o.push(`<text x="18" y="${oy + h / 2}" text-anchor="middle" transform="rotate(-90 18 ${oy + h / 2})">loss (cross-entropy, nats)</text>`);
  const line = train.filter((p) => Number.isFinite(p.loss));
  if (line.length > 0) o.push(`<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="${line.map((p) => `${sx(p.step).toFixed(1)},${sy(p.loss).toFixed(1)}`).join(' ')}"/>`);
  for (const p of val.filter((q) => Number.isFinite(q.loss))) o.push(`<circle cx="${sx(p.step).toFixed(1)}" cy="${sy(p.loss).toFixed(1)}" r="4" fill="#d62728"/>`);
  const ly = H - 14;
  o.push(`<rect x="${ox}" y="${ly - 8}" width="14" height="3" fill="#1f77b4"/><text x="${ox + 20}" y="${ly}">train loss (per step)</text>`);
  o.push(`<circle cx="${ox + 197}" cy="${ly - 4}" r="4" fill="#d62728"/><text x="${ox + 207}" y="${ly}">validation loss</text>`);
  o.push('</svg>');
  return `${o.join('\n')}\n`;
}
