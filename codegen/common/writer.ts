// An indent-aware line writer shared by the WGSL and CUDA printers: one statement per line,
// blocks opened and closed through `open`/`close`, so indentation cannot drift.

export class Writer {
  private readonly lines: string[] = [];
  private depth = 0;

  constructor(private readonly indentUnit = '  ') {}

  /** One line at the current indentation (empty text gives an empty line). */
  line(text = ''): this {
    this.lines.push(text === '' ? '' : this.indentUnit.repeat(this.depth) + text);
    return this;
  }

  /** `head {` and indent. */
  open(head: string): this {
    this.line(`${head} {`);
    this.depth++;
    return this;
  }

  /** Dedent and `}` (with an optional tail such as `} else {`, which reopens). */
  close(tail = ''): this {
    if (this.depth === 0) throw new Error('internal: Writer.close without open');
    this.depth--;
    this.line(`}${tail}`);
    return this;
  }

  /** `} else {`: closes the current block and opens the next at the same depth. */
  reopen(head: string): this {
    this.close(` ${head} {`);
    this.depth++;
    return this;
  }

  /** Several lines, each at the current indentation; `//` comment lines for each line of text. */
  comment(text: string): this {
    for (const l of text.split('\n')) this.line(l === '' ? '//' : `// ${l}`);
    return this;
  }

  toString(): string {
    if (this.depth !== 0) throw new Error(`internal: Writer left ${this.depth} block(s) open`);
    return this.lines.join('\n') + '\n';
  }
}
