// The page pools of a paged-cache model (examples/variants/gpt2-paged.tfx's interface) on the GPU,
// with their allocator: one call of the model on some sequences builds the page-table inputs,
// runs, and keeps the pools on the device. gpt2-paged writes them in place (scatter), so each
// call hands back the same buffers; a model that copied them would hand back new ones (the old
// are destroyed then). generatePaged (paged.ts) and `tfc bench decode` (src/cli/bench-decode.ts)
// drive it.
import type { Plan, SizeExpr } from '../kernel/plan/plan.js';
import { RuntimeError } from './errors.js';
import type { PageAllocator } from './pages.js';
import type { DeviceTensor, HostTensor, RunResult, Session } from './session.js';

/** What the plan says about the cache: read from the shapes of `past.0.key` and `logits`. */
export interface PagedGeometry {
  readonly layers: number;
  readonly kvHeads: number;
  readonly pageSize: number;
  readonly headDim: number;
  readonly vocab: number;
}

function constant(e: SizeExpr | undefined): number | undefined {
  return e?.kind === 'const' ? e.value : undefined;
}

/** Reads the cache geometry from a plan; a RuntimeError when the plan lacks the paged interface. */
export function pagedGeometry(plan: Plan): PagedGeometry {
  const input = (name: string): readonly SizeExpr[] => {
    const b = plan.buffers.find((x) => x.kind === 'input' && x.name === name);
    if (b === undefined) throw new RuntimeError('plan', `model ${plan.model} is not a paged-cache model: it has no input '${name}' (examples/variants/gpt2-paged.tfx shows the interface)`);
    return b.shape;
  };
  for (const name of ['tokens', 'lengths', 'table', 'first_page']) input(name);
  const [, h, page, dh] = input('past.0.key');
  const [kvHeads, pageSize, headDim] = [constant(h), constant(page), constant(dh)];
  const logits = plan.outputs.find((o) => o.name === 'logits');
  const vocab = constant(plan.buffers.find((b) => b.id === logits?.buffer)?.shape[2]);
  if (kvHeads === undefined || pageSize === undefined || headDim === undefined || vocab === undefined) {
    throw new RuntimeError('plan', `model ${plan.model}: past.0.key must be [NP, kv_heads, page, dh] and logits [B, T, vocab] with constant kv_heads, page, dh and vocab`);
  }
  let layers = 0;
  while (plan.buffers.some((b) => b.kind === 'input' && b.name === `past.${layers}.key`)) layers++;
  return { layers, kvHeads, pageSize, headDim, vocab };
}

/** A batch row of a call: the sequence (the allocator's id) and how many tokens it has cached. */
export interface PagedRow {
  readonly seq: number;
  readonly length: number;
}

export class PagedPools {
  readonly geometry: PagedGeometry;
  private readonly pools = new Map<string, HostTensor | DeviceTensor>();
  private readonly keep: string[];

  /** Zero pools of `allocator.pages` pages (uploaded by the first call, then kept on the GPU). */
  constructor(
    readonly session: Session,
    readonly allocator: PageAllocator,
  ) {
    this.geometry = pagedGeometry(session.plan);
    const g = this.geometry;
    if (allocator.pageSize !== g.pageSize) throw new RuntimeError('input', `the allocator's pages hold ${allocator.pageSize} tokens; model ${session.plan.model}'s hold ${g.pageSize}`);
    const shape = [allocator.pages, g.kvHeads, g.pageSize, g.headDim];
    const zeros = new Float32Array(allocator.pages * g.kvHeads * g.pageSize * g.headDim);
    for (let l = 0; l < g.layers; l++) for (const kv of ['key', 'value']) this.pools.set(`past.${l}.${kv}`, { shape, data: zeros });
    this.keep = [...this.pools.keys()].map((n) => n.replace('past.', 'present.'));
  }

  /**
   * Runs `tokens` ([rows, T] row-major) for `rows`, whose pages the allocator must hold (slots for
   * length + T tokens); the pools become the call's present.* outputs.
   */
  async run(rows: readonly PagedRow[], tokens: readonly number[], T: number, opts: { readonly timing?: boolean } = {}): Promise<RunResult> {
    const t = this.allocator.tables(rows.map((r) => r.seq));
    const inputs = new Map<string, HostTensor | DeviceTensor>([
      ['tokens', { dtype: 'i32', shape: [rows.length, T], data: tokens }],
      ['lengths', { dtype: 'i32', shape: [rows.length], data: rows.map((r) => r.length) }],
      ['table', { dtype: 'i32', shape: [rows.length, t.width], data: t.table }],
      ['first_page', { dtype: 'i32', shape: [rows.length], data: t.first }],
      ...this.pools,
    ]);
    const r = await this.session.run(inputs, { keepOnDevice: this.keep, ...(opts.timing === true ? { timing: true } : {}) });
    // The call has completed (its logits were read back): the old pools are no longer read. A pool
    // written in place comes back as the same buffer: kept, not destroyed.
    const reused = new Set([...r.deviceOutputs.values()].map((x) => x.buffer));
    for (const x of this.pools.values()) if ('buffer' in x && !reused.has(x.buffer)) x.buffer.destroy();
    for (const name of [...this.pools.keys()]) {
      const present = r.deviceOutputs.get(name.replace('past.', 'present.'));
      if (present === undefined) throw new RuntimeError('plan', `model ${this.session.plan.model} has no output ${name.replace('past.', 'present.')}`);
      this.pools.set(name, present);
    }
    return r;
  }

  /** Frees the pools' GPU buffers. */
  dispose(): void {
    for (const x of this.pools.values()) if ('buffer' in x) x.buffer.destroy();
    this.pools.clear();
  }
}
