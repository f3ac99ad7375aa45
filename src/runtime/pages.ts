// The host side of a paged KV cache (examples/variants/gpt2-paged.tfx): a pool of `pages` pages
// of `pageSize` tokens shared by every sequence. A sequence holds a list of pages in slot order
// (its page table row: slot s lives in page pages[s / pageSize] at offset s % pageSize); pages are
// taken on demand as it grows and go back to the free list when it finishes, for the next
// sequence to reuse. With a sliding window, the pages before a sequence's window go back too
// (`trim`): its table then starts at a later logical page (`firstPage`, the model's first_page
// input), and a sequence holds about window / pageSize pages however long it grows. Nothing here
// touches a GPU: the allocator hands out page ids and builds the model's `table` and `first_page`
// inputs for a batch of sequences.
import { RuntimeError } from './errors.js';

/** The page table of one call: rows in the order of the batch. */
export interface PageTables {
  /** [rows, width] page ids in slot order; entries past a row's pages repeat its last page (never read unmasked). */
  readonly table: Int32Array;
  readonly width: number;
  /** [rows]: the logical page each row's table starts at (pages before it were trimmed). */
  readonly first: Int32Array;
}

export class PageAllocator {
  /** Free page ids; the last one is handed out next, so a page freed last is reused first. */
  private readonly free: number[];
  /** Per sequence: its pages in slot order, from logical page `first` on. */
  private readonly held = new Map<number, { first: number; pages: number[] }>();

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

  /** Sequence `seq`'s pages in slot order, from its logical page firstPage(seq) on (empty when it holds none). */
  pagesOf(seq: number): readonly number[] {
    return this.held.get(seq)?.pages ?? [];
  }

  /** The logical page `seq`'s first held page is (0 until `trim` drops pages). */
  firstPage(seq: number): number {
    return this.held.get(seq)?.first ?? 0;
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
    const mine = this.held.get(seq) ?? { first: 0, pages: [] };
    const need = this.pagesFor(tokens) - mine.first - mine.pages.length;
    if (need <= 0) return [];
    if (need > this.free.length) {
      const holders = [...this.held].map(([s, p]) => `sequence ${s}: ${p.pages.length}`).join(', ');
      throw new RuntimeError(
        'limit',
        `out of KV-cache pages: sequence ${seq} needs ${need} more page(s) of ${this.pageSize} tokens to hold ${tokens} tokens, ` +
          `and ${this.free.length} of the pool's ${this.pages} are free (held: ${holders === '' ? 'none' : holders}); ` +
          `give a larger pool or run fewer sequences at once`,
      );
    }
    const taken = this.free.splice(this.free.length - need, need).reverse();
    this.held.set(seq, { first: mine.first, pages: [...mine.pages, ...taken] });
    return taken;
  }

  /**
   * Gives back the pages of `seq` that hold only positions before `position` (a sliding window
   * has moved past them); its table then starts at a later logical page. Returns the pages freed.
   */
  trim(seq: number, position: number): number[] {
    const mine = this.held.get(seq);
    if (mine === undefined) return [];
    const drop = Math.min(Math.max(0, Math.floor(position / this.pageSize) - mine.first), mine.pages.length);
    if (drop === 0) return [];
    const dropped = mine.pages.slice(0, drop);
    this.held.set(seq, { first: mine.first + drop, pages: mine.pages.slice(drop) });
    for (let i = dropped.length - 1; i >= 0; i--) this.free.push(dropped[i] ?? 0);
    return dropped;
  }

  /** Gives back every page of `seq` (a finished sequence); returns how many. */
  release(seq: number): number {
    const mine = this.held.get(seq);
    if (mine === undefined) return 0;
    this.held.delete(seq);
    // Last page first onto the free list, so that the sequence's first page is reused first.
    for (let i = mine.pages.length - 1; i >= 0; i--) this.free.push(mine.pages[i] ?? 0);
    return mine.pages.length;
  }

  /**
   * The page table for a call on `rows` (sequence ids, one per batch row): `width` is the most
   * pages any row holds (at least 1). Pages of sequences not in `rows` appear nowhere, so the
   * call neither reads nor writes them.
   */
  tables(rows: readonly number[]): PageTables {
    const width = Math.max(1, ...rows.map((s) => this.pagesOf(s).length));
    const table = new Int32Array(rows.length * width);
    const first = Int32Array.from(rows, (seq) => this.firstPage(seq));
    if (new Set(rows).size !== rows.length) throw new RuntimeError('input', `a sequence appears twice among the rows [${rows.join(', ')}]`);
    rows.forEach((seq, b) => {
      const mine = this.pagesOf(seq);
      if (mine.length === 0) throw new RuntimeError('input', `sequence ${seq} holds no pages: reserve its slots before a call`);
      for (let i = 0; i < width; i++) table[b * width + i] = mine[Math.min(i, mine.length - 1)] ?? 0;
    });
    return { table, width, first };
  }
}
