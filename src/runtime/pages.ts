// The host side of a paged KV cache (examples/variants/gpt2-paged.tfx): a pool of `pages` pages
// of `pageSize` tokens shared by every sequence. A sequence holds a list of pages in slot order
// (its page table row: slot s lives in page pages[s / pageSize] at offset s % pageSize); pages are
// taken on demand as it grows and go back to the free list when it finishes, for the next
// sequence to reuse. Nothing here touches a GPU: the allocator hands out page ids and builds the
// model's `table` input for a batch of sequences.
import { RuntimeError } from './errors.js';

/** The page table of one call: rows in the order of the batch. */
export interface PageTables {
  /** [rows, width] page ids in slot order; entries past a row's pages repeat its last page (never read unmasked). */
  readonly table: Int32Array;
  readonly width: number;
}

export class PageAllocator {
  /** Free page ids; the last one is handed out next, so a page freed last is reused first. */
  private readonly free: number[];
  private readonly held = new Map<number, number[]>();

  constructor(
    readonly pages: number,
    readonly pageSize: number,
  ) {
    if (!Number.isInteger(pages) || pages < 1) throw new RuntimeError('input', `a page pool needs at least one page; got ${pages}`);
    if (!Number.isInteger(pageSize) || pageSize < 1) throw new RuntimeError('input', `a page holds at least one token; got ${pageSize}`);
    // Reversed so that the first pages handed out are 0, 1, 2, ...
    this.free = Array.from({ length: pages }, (_, i) => pages - 1 - i);
  }

  get freeCount(): number {
    return this.free.length;
  }

  /** Sequences holding pages, in the order they first got one. */
  get sequences(): readonly number[] {
    return [...this.held.keys()];
  }

  /** Sequence `seq`'s pages in slot order (empty when it holds none). */
  pagesOf(seq: number): readonly number[] {
    return this.held.get(seq) ?? [];
  }

  /** Pages needed to hold `tokens` slots. */
  pagesFor(tokens: number): number {
    return Math.ceil(tokens / this.pageSize);
  }

  /**
   * Makes `seq` hold enough pages for `tokens` slots, taking free pages as needed; returns the
   * pages it took. Out of pages is a RuntimeError naming who holds the pool, and changes nothing.
   */
  reserve(seq: number, tokens: number): number[] {
    const mine = this.held.get(seq) ?? [];
    const need = this.pagesFor(tokens) - mine.length;
    if (need <= 0) return [];
    if (need > this.free.length) {
      const holders = [...this.held].map(([s, p]) => `sequence ${s}: ${p.length}`).join(', ');
      throw new RuntimeError(
        'limit',
        `out of KV-cache pages: sequence ${seq} needs ${need} more page(s) of ${this.pageSize} tokens to hold ${tokens} tokens, ` +
          `and ${this.free.length} of the pool's ${this.pages} are free (held: ${holders === '' ? 'none' : holders}); ` +
          `give a larger pool or run fewer sequences at once`,
      );
    }
    const taken = this.free.splice(this.free.length - need, need).reverse();
    this.held.set(seq, [...mine, ...taken]);
    return taken;
  }

  /** Gives back every page of `seq` (a finished sequence); returns how many. */
  release(seq: number): number {
    const mine = this.held.get(seq);
    if (mine === undefined) return 0;
    this.held.delete(seq);
    // Last page first onto the free list, so that the sequence's first page is reused first.
    for (let i = mine.length - 1; i >= 0; i--) this.free.push(mine[i] ?? 0);
    return mine.length;
  }

  /**
   * The page table for a call on `rows` (sequence ids, one per batch row): `width` is the most
   * pages any row holds (at least 1). Pages of sequences not in `rows` appear nowhere, so the
   * call neither reads nor writes them.
   */
  tables(rows: readonly number[]): PageTables {
    const width = Math.max(1, ...rows.map((s) => this.pagesOf(s).length));
    const table = new Int32Array(rows.length * width);
    if (new Set(rows).size !== rows.length) throw new RuntimeError('input', `a sequence appears twice among the rows [${rows.join(', ')}]`);
    rows.forEach((seq, b) => {
      const mine = this.pagesOf(seq);
      if (mine.length === 0) throw new RuntimeError('input', `sequence ${seq} holds no pages: reserve its slots before a call`);
      for (let i = 0; i < width; i++) table[b * width + i] = mine[Math.min(i, mine.length - 1)] ?? 0;
    });
    return { table, width };
  }
}
