// Global-memory traffic formulas of the plain kernels, as SizeExpr of the dims.
// The rule: count the loads and stores the kernel issues to global memory, element by element,
// with no credit for caches (a broadcast bias is counted once per output element that reads it;
// the tiled matmul re-reads A once per column tile and B once per row tile). Workgroup-memory
// traffic is not counted. Flops come from the op catalog.
import type { Node } from '../../graph/ir.js';
import type { DType } from '../../graph/types.js';
import type { Kernel, Traffic } from '../ir/ir.js';
import type { SizeExpr } from '../plan/plan.js';
import { evalSize } from '../plan/plan.js';
import { sAdd, sConst, sMul, shapeElements } from '../plan/to-size.js';
import { storageBytes } from '../ir/storage.js';

export function bytesOf(elements: SizeExpr, dtype: DType): SizeExpr {
  return sMul(elements, sConst(storageBytes(dtype)));
}

/** Traffic of a one-thread-per-element kernel: the listed reads, one store per output element. */
export function mapTraffic(n: Node, reads: readonly { readonly elements: SizeExpr; readonly dtype: DType }[], flops: SizeExpr): Traffic {
  return {
    bytesRead: reads.length === 0 ? sConst(0) : sAdd(...reads.map((r) => bytesOf(r.elements, r.dtype))),
    bytesWritten: bytesOf(shapeElements(n.type.shape), n.type.dtype),
    flops,
  };
}

/** Sums of a program's traffic under concrete dims (for the traffic report and tests). */
export function totalTraffic(kernels: readonly Kernel[], dims: ReadonlyMap<string, number>): { bytesRead: number; bytesWritten: number; flops: number } {
  let bytesRead = 0;
  let bytesWritten = 0;
  let flops = 0;
  for (const k of kernels) {
    bytesRead += evalSize(k.traffic.bytesRead, dims);
    bytesWritten += evalSize(k.traffic.bytesWritten, dims);
    flops += evalSize(k.traffic.flops, dims);
  }
  return { bytesRead, bytesWritten, flops };
}
