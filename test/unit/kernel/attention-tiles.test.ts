// Block sparsity of the fused attention kernel: countAttentionTiles runs the kernel's own bound
// and tile-class statements on the host; here they are checked against the truth, found by
// evaluating the mask per element of every (query tile, key tile) in float64.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { lowerGraph } from '../../../src/compile/kernels.js';
import { compileModel } from '../../../src/compile/model.js';
import { printKernel } from '../../../src/kernel/ir/print.js';
import { DiagnosticSink } from '../../../src/diag/diagnostic.js';
import type { Graph, Node, ScalarExpr } from '../../../src/graph/ir.js';
import { parseGraph } from '../../../src/graph/parse.js';
import { countAttentionTiles } from '../../../src/kernel/attention/count.js';
import type { AttentionSchedule } from '../../../src/kernel/attention/schedule.js';
import { lavapipeLimits } from '../../../src/kernel/schedule/schedule.js';

function graphOf(mask: string, extra = '', extraOperand = '', hq = 2, hkv = 2): { g: Graph; n: Node } {
  const text = `graph attn(B, T) {
  %0 = input {name="q"} : f32[B,${hq},T,16]
  %1 = input {name="k"} : f32[B,${hkv},T,16]
  %2 = input {name="v"} : f32[B,${hkv},T,16]
  ${extra}
  %4 = fused_attention %0, %1, %2${extraOperand} {mask=${mask}, scale=0.25} : f32[B,${hq},T,16]
  output "o" = %4
}`;
  const sink = new DiagnosticSink();
  const g = parseGraph(text, 'tiles.ir', sink);
  expect(sink.items.map((d) => d.message)).toEqual([]);
  if (g === undefined) throw new Error('no graph');
  const n = g.nodes.find((x) => x.op === 'fused_attention');
  if (n === undefined) throw new Error('no fused_attention');
  return { g, n };
}

/** The mask at one element, in float64 (a reference independent of the kernel's intervals). */
function evalMask(e: ScalarExpr, idx: readonly number[], dims: ReadonlyMap<string, number>, reads: (operand: number, at: readonly number[]) => number): number {
  const r = (x: ScalarExpr): number => evalMask(x, idx, dims, reads);
  switch (e.kind) {
    case 'index':
      return idx[e.axis] ?? NaN;
    case 'dim':
      return e.dim.terms.reduce((s, t) => s + t.coef * t.vars.reduce((p, x) => p * (dims.get(x) ?? NaN), 1), 0);
    case 'const':
      return e.value;
    case 'read':
      return reads(e.operand, e.indices.map(r));
    case 'apply': {
      const [a = NaN, b = NaN] = e.args.map(r);
      const ops: Record<string, number> = {
        le: +(a <= b), lt: +(a < b), ge: +(a >= b), gt: +(a > b), eq: +(a === b), ne: +(a !== b),
        and: +(a !== 0 && b !== 0), or: +(a !== 0 || b !== 0), not: +(a === 0),
        add: a + b, sub: a - b, mul: a * b, neg: -a, min: Math.min(a, b), max: Math.max(a, b),
      };
      const v = ops[e.op];
      if (v === undefined) throw new Error(`reference has no ${e.op}`);
      return v;
    }
  }
}

/** Tiles with at least one visible element (q < T, k < S), per batch and head. */
function neededTiles(n: Node, dims: ReadonlyMap<string, number>, s: AttentionSchedule, reads: (operand: number, at: readonly number[]) => number): number {
  const a = n.attrs['mask'];
  if (a === undefined || a.kind !== 'lambda') throw new Error('no mask');
  const B = dims.get('B') ?? 0;
  const T = dims.get('T') ?? 0;
  let needed = 0;
  for (let b = 0; b < B; b++)
    for (let h = 0; h < 2; h++)
      for (let q0 = 0; q0 < T; q0 += s.tileRows)
        for (let k0 = 0; k0 < T; k0 += s.tileCols) {
          let any = false;
          for (let q = q0; q < Math.min(q0 + s.tileRows, T) && !any; q++)
            for (let k = k0; k < Math.min(k0 + s.tileCols, T) && !any; k++) any = evalMask(a.body, [b, h, q, k], dims, reads) !== 0;
          if (any) needed++;
        }
  return needed;
}

const lavapipeTiles: AttentionSchedule = { tileRows: 32, tileCols: 32, lanes: 8, useSubgroups: true, splits: 32, decodeMaxT: 1 };
const smallTiles: AttentionSchedule = { tileRows: 8, tileCols: 16, lanes: 8, useSubgroups: false, splits: 4, decodeMaxT: 1 };
const noReads = (): number => {
  throw new Error('this mask reads no tensor');
};

describe('countAttentionTiles', () => {
  for (const s of [lavapipeTiles, smallTiles]) {
    for (const T of [1, 17, 1000]) {
      const dims = new Map([['B', 1], ['T', T]]);
      const tag = `T=${T}, ${s.tileRows}x${s.tileCols}`;

      it(`visits exactly the causal tiles that hold a visible element (${tag})`, () => {
        const { g, n } = graphOf('(b, h, q, k) => le(k, q)');
        const c = countAttentionTiles(g, n, dims, s);
        expect(c.visited).toBe(neededTiles(n, dims, s, noReads));
        // The loop bounds from `k <= q` alone already stop at the diagonal tile.
        expect(c.iterated).toBe(c.visited);
        const qTiles = Math.ceil(T / s.tileRows);
        expect(c.tiles).toBe(2 * qTiles * Math.ceil(T / s.tileCols));
        if (T === 1000) expect(c.visited / c.tiles).toBeLessThan(0.55); // about half the tile work
      });

      it(`visits O(T*W) tiles for a sliding window of 40 (${tag})`, () => {
        const { g, n } = graphOf('(b, h, q, k) => and(le(k, q), lt(sub(q, k), 40))');
        const c = countAttentionTiles(g, n, dims, s);
        expect(c.visited).toBe(neededTiles(n, dims, s, noReads));
        expect(c.iterated).toBe(c.visited);
        // Per query tile at most ceil((Br + 40 - 1) / Bc) + 1 key tiles, per head.
        const perTile = Math.ceil((s.tileRows + 39) / s.tileCols) + 1;
        expect(c.visited).toBeLessThanOrEqual(2 * Math.ceil(T / s.tileRows) * perTile);
      });

      it(`skips the masked tiles of a prefix-LM (prefix 20) (${tag})`, () => {
        const { g, n } = graphOf('(b, h, q, k) => or(le(k, q), lt(k, 20))');
        const c = countAttentionTiles(g, n, dims, s);
        expect(c.visited).toBe(neededTiles(n, dims, s, noReads));
        expect(c.iterated).toBe(c.tiles); // an `or` gives no loop bound; tiles are skipped one by one
      });

      it(`never skips a document mask, which reads a tensor (${tag})`, () => {
        const { g, n } = graphOf('(b, h, q, k) => eq(read(3, b, q), read(3, b, k))', '%3 = input {name="doc"} : i32[B,T]', ', %3');
        const c = countAttentionTiles(g, n, dims, s);
        expect(c.visited).toBe(c.tiles);
        expect(c.partial).toBe(c.tiles);
        // Documents of 100 tokens: the truth has far fewer tiles, which only data could reveal.
        const needed = neededTiles(n, dims, s, (_o, at) => Math.floor((at[1] ?? 0) / 100));
        expect(needed).toBeLessThanOrEqual(c.visited);
      });
    }
  }

  // Padding (varlen): the mask reads a per-batch length, one value per workgroup, so the
  // analysis evaluates it exactly: key tiles past len[b] are skipped, fully visible ones are not
  // evaluated per element. Lengths include 0 (a batch row of padding only) and T.
  describe('per-batch lengths (varlen)', () => {
    /** Tiles with a visible true element, and those also holding a visible false one. */
    function truth(n: Node, dims: ReadonlyMap<string, number>, s: AttentionSchedule, lens: readonly number[]): { visited: number; partial: number } {
      const a = n.attrs['mask'];
      if (a === undefined || a.kind !== 'lambda') throw new Error('no mask');
      const T = dims.get('T') ?? 0;
      const reads = (_o: number, at: readonly number[]): number => lens[at[0] ?? -1] ?? NaN;
      let visited = 0;
      let partial = 0;
      for (let b = 0; b < lens.length; b++)
        for (let h = 0; h < 2; h++)
          for (let q0 = 0; q0 < T; q0 += s.tileRows)
            for (let k0 = 0; k0 < T; k0 += s.tileCols) {
              let t = 0;
              let f = 0;
              for (let q = q0; q < Math.min(q0 + s.tileRows, T); q++)
                for (let k = k0; k < Math.min(k0 + s.tileCols, T); k++) {
                  if (evalMask(a.body, [b, h, q, k], dims, reads) !== 0) t++;
                  else f++;
                }
              if (t > 0) visited++;
              if (t > 0 && f > 0) partial++;
            }
      return { visited, partial };
    }
    const lenInput = '%3 = input {name="len"} : i32[B]';
    const masks = [
      ['padding', '(b, h, q, k) => lt(k, read(3, b))', true],
      ['causal + padding', '(b, h, q, k) => and(le(k, q), lt(k, read(3, b)))', true],
      ['prefix-LM with a per-batch prefix', '(b, h, q, k) => or(le(k, q), lt(k, read(3, b)))', false],
    ] as const;
    for (const s of [lavapipeTiles, smallTiles]) {
      for (const T of [1, 17, 200]) {
        const lens = [0, 5, T, Math.floor(T / 2), 1, T + 3];
        const dims = new Map([['B', lens.length], ['T', T]]);
        for (const [name, mask, bounded] of masks) {
          it(`${name}: visits exactly the tiles with a visible element (T=${T}, ${s.tileRows}x${s.tileCols})`, () => {
            const { g, n } = graphOf(mask, lenInput, ', %3');
            const c = countAttentionTiles(g, n, dims, s, new Map([[3, lens]]));
            const want = truth(n, dims, s, lens);
            expect(c.visited).toBe(want.visited);
            expect(c.partial).toBe(want.partial);
            // `k < len[b]` bounds the key loop: tiles past the length are not even iterated.
            if (bounded) expect(c.iterated).toBe(c.visited);
          });
        }
      }
    }

    it('skips every tile of a batch row of length 0 and evaluates no mask in full tiles', () => {
      const { g, n } = graphOf('(b, h, q, k) => lt(k, read(3, b))', lenInput, ', %3');
      const dims = new Map([['B', 2], ['T', 64]]);
      // Row 0 has no keys; row 1 has 32: 8 query tiles x key tiles 0, 1 (of 16), both full.
      const c = countAttentionTiles(g, n, dims, smallTiles, new Map([[3, [0, 32]]]));
      expect(c.visited).toBe(2 * 8 * 2);
      expect(c.partial).toBe(0);
      expect(c.tiles).toBe(2 * 2 * 8 * 4);
    });

    it('asks for the values of a tensor the analysis must read', () => {
      const { g, n } = graphOf('(b, h, q, k) => lt(k, read(3, b))', lenInput, ', %3');
      expect(() => countAttentionTiles(g, n, new Map([['B', 1], ['T', 8]]), smallTiles)).toThrow(/operand 3/);
    });
  });

  it('drops mask evaluation on tiles fully below the diagonal', () => {
    const { g, n } = graphOf('(b, h, q, k) => le(k, q)');
    const dims = new Map([['B', 1], ['T', 64]]);
    const c = countAttentionTiles(g, n, dims, smallTiles);
    // 8 query tiles of 8 rows, key tiles of 16: query tile i sees key tiles 0..floor((8i+7)/16);
    // a key tile is partial when it holds the diagonal (k > q for some element): hand count.
    let visited = 0;
    let partial = 0;
    for (let i = 0; i < 8; i++) {
      const last = Math.floor((8 * i + 7) / 16);
      visited += last + 1;
      for (let j = 0; j <= last; j++) if (16 * j + 15 > 8 * i) partial++;
    }
    expect(c.visited).toBe(2 * visited);
    expect(c.partial).toBe(2 * partial);
  });

  // GQA/MQA: a workgroup's tile is Br query rows x the G = Hq / Hkv query heads of one KV head
  // (Br * G rows of (query row, head) pairs, row-major), so K/V are read once per group. Both
  // schedules fit 4 heads per tile in lavapipe's limits at d = 16. The truth walks the same
  // tiles element by element.
  describe('query heads grouped by KV head (GQA, MQA)', () => {
    function groupedTruth(n: Node, dims: ReadonlyMap<string, number>, s: AttentionSchedule, hq: number, hkv: number, reads: (operand: number, at: readonly number[]) => number): { tiles: number; visited: number; partial: number } {
      const a = n.attrs['mask'];
      if (a === undefined || a.kind !== 'lambda') throw new Error('no mask');
      const B = dims.get('B') ?? 0;
      const T = dims.get('T') ?? 0;
      const G = hq / hkv;
      let tiles = 0;
      let visited = 0;
      let partial = 0;
      for (let b = 0; b < B; b++)
        for (let hk = 0; hk < hkv; hk++)
          for (let r0 = 0; r0 < T * G; r0 += s.tileRows * G)
            for (let k0 = 0; k0 < T; k0 += s.tileCols) {
              tiles++;
              let t = 0;
              let f = 0;
              for (let r = r0; r < Math.min(r0 + s.tileRows * G, T * G); r++)
                for (let k = k0; k < Math.min(k0 + s.tileCols, T); k++) {
                  if (evalMask(a.body, [b, hk * G + (r % G), Math.floor(r / G), k], dims, reads) !== 0) t++;
                  else f++;
                }
              if (t > 0) visited++;
              if (t > 0 && f > 0) partial++;
            }
      return { tiles, visited, partial };
    }
    const masks = [
      ['causal', '(b, h, q, k) => le(k, q)'],
      ['sliding window of 40', '(b, h, q, k) => and(le(k, q), lt(sub(q, k), 40))'],
      ['a head-dependent window', '(b, h, q, k) => and(le(k, q), lt(sub(q, k), add(mul(h, 7), 5)))'],
    ] as const;
    for (const [hq, hkv] of [[4, 2], [4, 1]] as const) {
      for (const s of [lavapipeTiles, smallTiles]) {
        for (const T of [1, 17, 200]) {
          const dims = new Map([['B', 2], ['T', T]]);
          for (const [name, mask] of masks) {
            it(`${name}, ${hq} query heads on ${hkv} KV heads: visits exactly the tiles with a visible element (T=${T}, ${s.tileRows}x${s.tileCols})`, () => {
              const { g, n } = graphOf(mask, '', '', hq, hkv);
              const c = countAttentionTiles(g, n, dims, s);
              const want = groupedTruth(n, dims, s, hq, hkv, noReads);
              expect(c.tiles).toBe(want.tiles);
              expect(c.tiles).toBe(2 * hkv * Math.ceil(T / s.tileRows) * Math.ceil(T / s.tileCols)); // per KV head, not per query head
              expect(c.visited).toBe(want.visited);
              expect(c.partial).toBe(want.partial);
            });
          }
        }
      }
    }

    it('puts fewer heads of a group in a tile when the target cannot hold them all', () => {
      const { g, n } = graphOf('(b, h, q, k) => le(k, q)', '', '', 4, 1);
      const dims = new Map([['B', 1], ['T', 64]]);
      // 8x16 tiles, 1 row per thread, 8 lanes: 64 threads per head; 128 invocations hold 2 heads.
      const target = { ...lavapipeLimits, maxInvocationsPerWorkgroup: 128 };
      const c = countAttentionTiles(g, n, dims, smallTiles, undefined, target);
      expect(c.tiles).toBe((4 / 2) * (64 / 8) * (64 / 16));
      expect(countAttentionTiles(g, n, dims, smallTiles).tiles).toBe(1 * (64 / 8) * (64 / 16)); // all 4 heads at 1024
    });

    it('treats a read indexed by the head as unknown inside a group (never skips a needed tile)', () => {
      // A per-head length: one value per workgroup without groups, but a group spans heads.
      const { g, n } = graphOf('(b, h, q, k) => lt(k, read(3, h))', '%3 = input {name="len"} : i32[4]', ', %3', 4, 2);
      const lens = [0, 5, 40, 17];
      const dims = new Map([['B', 1], ['T', 64]]);
      const c = countAttentionTiles(g, n, dims, smallTiles, new Map([[3, lens]]));
      const want = groupedTruth(n, dims, smallTiles, 4, 2, (_o, at) => lens[at[0] ?? -1] ?? NaN);
      expect(want.visited).toBeLessThan(want.tiles); // the truth does skip tiles...
      expect(c.visited).toBe(c.tiles); // ...but the analysis may not: every tile is visited
      expect(c.tiles).toBe(want.tiles);
    });
  });
});

describe('mixed local/global layers (examples/variants/local-global.tfx)', () => {
  it('each layer fuses with its own mask, kernel and block sparsity: the local layer visits far fewer tiles', () => {
    const file = 'examples/variants/local-global.tfx';
    const sink = new DiagnosticSink();
    const g = compileModel({ file, text: readFileSync(file, 'utf8') }, { overrides: new Map([['ctx', 256]]), target: 'webgpu', diagnostics: sink }).graph;
    expect(sink.items.map((d) => d.message)).toEqual([]);
    const attn = g.nodes.filter((x) => x.op === 'fused_attention');
    expect(attn).toHaveLength(2);
    // The layer's own predicate, the other layer's choice folded away (fold-constants' where rule).
    const masks = attn.map((n) => JSON.stringify(n.attrs['mask']));
    for (const m of masks) expect(m).not.toContain('"where"');
    expect(masks[0]).not.toEqual(masks[1]);
    const dims = new Map([['B', 1], ['T', 256]]);
    const [local, global] = attn.map((n) => countAttentionTiles(g, n, dims, smallTiles));
    if (local === undefined || global === undefined) throw new Error('two attentions');
    // 4 heads, 32 query tiles of 8 rows, 16 key tiles of 16 keys each.
    expect(global.tiles).toBe(4 * 32 * 16);
    // Window 8: a query tile's keys span its own key tile and at most the one before it.
    expect(local.visited).toBeGreaterThanOrEqual(4 * 32);
    expect(local.visited).toBeLessThanOrEqual(4 * 32 * 2);
    // Global (causal): every key tile up to the diagonal.
    let causal = 0;
    for (let qt = 0; qt < 32; qt++) causal += Math.floor((qt * 8 + 7) / 16) + 1;
    expect(global.visited).toBe(4 * causal);
    expect(local.visited * 4).toBeLessThan(global.visited);
    const { program } = lowerGraph(g, { limits: lavapipeLimits });
    const kernelOf = (n: Node): string[] => program.kernels.filter((_, i) => program.origin?.[i] === n.id).map((k) => printKernel(k).split('\n').filter((l) => !l.startsWith('//')).join('\n'));
    expect(kernelOf(attn[0] as Node)).not.toEqual(kernelOf(attn[1] as Node));
  });
});
