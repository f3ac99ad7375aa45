// One float formatter for every backend: the shortest decimal that round-trips the f32 value.

/** Shortest decimal text whose f32 rounding is `Math.fround(x)`; always has a `.` or exponent. */
export function formatF32(x: number): string {
  const f = Math.fround(x);
  if (!Number.isFinite(f)) throw new Error(`internal: formatF32 of non-finite ${x}`);
  if (Object.is(f, -0)) return '-0.0';
  let text = String(f);
  for (let p = 1; p <= 9; p++) {
    const s = String(Number(f.toPrecision(p)));
    if (Math.fround(Number(s)) === f) {
      text = s;
      break;
    }
  }
  return /[.e]/.test(text) ? text : `${text}.0`;
}
