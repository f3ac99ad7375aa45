// Training data and curve helpers (src/train/data.ts, curve.ts).
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { batchOffsets, evalOffsets, learningRate, mulberry32, splitCorpus, windows } from '../../../src/train/data.js';
import { lossCurveSvg } from '../../../src/train/curve.js';

describe('training data', () => {
  it('mulberry32 equals an independent Python implementation (the PyTorch reference draws the same windows)', () => {
    const py = `
M = 0xFFFFFFFF
def imul(a, b): return (a * b) & M
a = 1234
out = []
for _ in range(6):
    a = (a + 0x6D2B79F5) & M
    t = a
    t = imul(t ^ (t >> 15), t | 1)
    t ^= (t + imul(t ^ (t >> 7), t | 61)) & M
    out.append(((t ^ (t >> 14)) & M) / 4294967296)
print(" ".join(repr(x) for x in out))
`;
    const r = spawnSync('/usr/bin/python3', ['-c', py], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const want = r.stdout.trim().split(' ').map(Number);
    const next = mulberry32(1234);
    expect(Array.from({ length: 6 }, () => next())).toEqual(want);
  });

  it('draws windows inside the data, reproducibly, and targets are the next tokens', () => {
    const a = batchOffsets(7, 50, 4, 100, 16);
    expect(batchOffsets(7, 50, 4, 100, 16)).toEqual(a);
    expect(batchOffsets(8, 50, 4, 100, 16)).not.toEqual(a);
    const flat = a.flatMap((o) => Array.from(o));
    expect(Math.min(...flat)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...flat)).toBeLessThanOrEqual(100 - 16 - 2);
    const ids = Int32Array.from({ length: 100 }, (_, i) => 1000 + i);
    const w = windows(ids, Int32Array.from([3, 80]), 4);
    expect(Array.from(w.tokens)).toEqual([1003, 1004, 1005, 1006, 1080, 1081, 1082, 1083]);
    expect(Array.from(w.targets)).toEqual([1004, 1005, 1006, 1007, 1081, 1082, 1083, 1084]);
    expect(() => batchOffsets(1, 1, 1, 10, 9)).toThrow(/too few/);
  });

  it('holds out the tail for validation and covers it with whole windows', () => {
    const c = splitCorpus(Array.from({ length: 1000 }, (_, i) => i), 0.1);
    expect(c.train.length).toBe(900);
    expect(c.val[0]).toBe(900);
    expect(Array.from(evalOffsets(100, 16, 99))).toEqual([0, 16, 32, 48, 64, 80]);
    expect(evalOffsets(100, 16, 2).length).toBe(2);
    expect(() => splitCorpus([1], 1)).toThrow(RangeError);
  });

  it("follows charlm train.py's schedule (warm-up 100 steps, decay to 10%)", () => {
    // lr = 3e-3 * min(1, (s + 1) / 100) * max(0.1, 1 - s / 700), by hand:
    expect(learningRate(0, 700, 3e-3, 100)).toBeCloseTo(3e-5, 15);
    expect(learningRate(99, 700, 3e-3, 100)).toBeCloseTo(3e-3 * (1 - 99 / 700), 15);
    expect(learningRate(699, 700, 3e-3, 100)).toBeCloseTo(3e-4, 15);
  });
});

describe('loss curve', () => {
  it('draws the train line and validation points, deterministically', () => {
    const train = Array.from({ length: 20 }, (_, s) => ({ step: s, loss: 4 - s * 0.1 }));
    const val = [{ step: 10, loss: 3.2 }, { step: 19, loss: 2.4 }];
    const svg = lossCurveSvg('charlm <train>', train, val);
    expect(svg).toBe(lossCurveSvg('charlm <train>', train, val));
    expect(svg).toContain('charlm &lt;train&gt;');
    expect((svg.match(/<polyline [^>]*points="([^"]*)"/)?.[1] ?? '').split(' ').length).toBe(20);
    expect(svg.match(/<circle /g)?.length).toBe(3); // two points + the legend's
  });
});
