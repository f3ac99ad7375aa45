// The paged KV cache's host allocator (src/runtime/pages.ts), without a GPU: pages on demand,
// reuse after release, a clear out-of-pages error that changes nothing, and the page table
// checked against what gpt2-paged.tfx reads from it.
import { describe, expect, it } from 'vitest';
import { PageAllocator } from '../../../src/runtime/pages.js';
import { RuntimeError } from '../../../src/runtime/errors.js';

describe('PageAllocator', () => {
  it('takes pages as a sequence grows, one per pageSize tokens, and none while the last page has room', () => {
    const a = new PageAllocator(6, 4);
    expect(a.reserve(0, 1)).toEqual([0]);
    expect(a.reserve(0, 4)).toEqual([]); // slots 0..3 fit in one page
    expect(a.reserve(0, 5)).toEqual([1]);
    expect(a.reserve(1, 9)).toEqual([2, 3, 4]);
    expect(a.pagesOf(0)).toEqual([0, 1]);
    expect(a.pagesOf(1)).toEqual([2, 3, 4]);
    expect(a.freeCount).toBe(1);
    expect(a.sequences).toEqual([0, 1]);
  });

  it('reuses a finished sequence\'s pages for the next one', () => {
    const a = new PageAllocator(4, 2);
    a.reserve(0, 4); // pages 0, 1
    a.reserve(1, 3); // pages 2, 3
    expect(a.freeCount).toBe(0);
    expect(a.release(0)).toBe(2);
    expect(a.freeCount).toBe(2);
    expect(a.pagesOf(0)).toEqual([]);
    expect(a.reserve(2, 3)).toEqual([0, 1]); // the freed pages, first one first
    expect(a.release(7)).toBe(0); // a sequence holding nothing
    a.release(1);
    a.release(2);
    expect(a.freeCount).toBe(4);
    expect(a.sequences).toEqual([]);
  });

  it('out of pages: a RuntimeError naming the need and the holders, and the pool unchanged', () => {
    const a = new PageAllocator(3, 4);
    a.reserve(0, 8);
    a.reserve(1, 1);
    let err: unknown;
    try {
      a.reserve(1, 9); // needs 2 more, 0 free
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RuntimeError);
    expect((err as RuntimeError).kind).toBe('limit');
    expect((err as Error).message).toBe(
      'out of KV-cache pages: sequence 1 needs 2 more page(s) of 4 tokens to hold 9 tokens, and 0 of the pool\'s 3 are free (held: sequence 0: 2, sequence 1: 1); give a larger pool or run fewer sequences at once',
    );
    expect(a.pagesOf(1)).toEqual([2]);
    expect(a.freeCount).toBe(0);
    // A partial fit is refused too (nothing taken).
    a.release(0);
    expect(() => a.reserve(2, 12)).toThrow(/needs 3 more page\(s\).*2 of the pool's 3 are free/);
    expect(a.freeCount).toBe(2);
  });

  it('builds the page table: rows in batch order, short rows padded with their last page', () => {
    const a = new PageAllocator(7, 2);
    a.reserve(5, 5); // 0, 1, 2
    a.reserve(8, 1); // 3
    a.reserve(9, 4); // 4, 5
    const t = a.tables([9, 5]);
    expect(t.width).toBe(3);
    // Row 0 = sequence 9 (pages 4, 5; padded with its last page), row 1 = sequence 5.
    expect(Array.from(t.table)).toEqual([4, 5, 5, 0, 1, 2]);
    // Sequence 8's page 3 and the free page 6 are in no row.
    expect(t.table).not.toContain(3);
    expect(t.table).not.toContain(6);
    // Every slot s < 2 * width of a row maps to a page it holds, as the model's through_table reads it.
    for (const [b, seq] of [9, 5].entries()) {
      const mine = a.pagesOf(seq);
      for (let s = 0; s < mine.length * 2; s++) expect(t.table[b * t.width + Math.floor(s / 2)]).toBe(mine[Math.floor(s / 2)]);
    }
    expect(() => a.tables([5, 5])).toThrow(/appears twice/);
    expect(() => a.tables([4])).toThrow(/holds no pages/);
  });

  it('trim frees the pages wholly before a position (a sliding window) and the table starts at the first kept page', () => {
    const a = new PageAllocator(5, 4);
    a.reserve(0, 10); // logical pages 0, 1, 2 -> 0, 1, 2
    a.reserve(1, 3); // 3
    expect(a.trim(0, 3)).toEqual([]); // position 3 is in logical page 0: nothing goes
    expect(a.trim(0, 8)).toEqual([0, 1]); // positions 8.. are in logical page 2
    expect(a.firstPage(0)).toBe(2);
    expect(a.pagesOf(0)).toEqual([2]);
    expect(a.freeCount).toBe(3);
    // Growing counts logical pages: 14 tokens are logical pages 0..3, of which 2 is held.
    expect(a.reserve(0, 14)).toEqual([0]); // the first page trimmed is the first reused
    expect(a.pagesOf(0)).toEqual([2, 0]);
    const t = a.tables([1, 0]);
    expect(Array.from(t.first)).toEqual([0, 2]);
    expect(Array.from(t.table)).toEqual([3, 3, 2, 0]);
    // Trimming past every page leaves none (the caller reserves before its next call).
    expect(a.trim(1, 100)).toEqual([3]);
    expect(a.pagesOf(1)).toEqual([]);
    expect(a.firstPage(1)).toBe(1);
    expect(a.release(0)).toBe(2);
    expect(a.freeCount).toBe(5);
  });

  it('refuses an empty pool and empty pages', () => {
    expect(() => new PageAllocator(0, 16)).toThrow(/at least one page/);
    expect(() => new PageAllocator(4, 0)).toThrow(/at least one token/);
  });
});
