// Host backends for the Trainer (src/runtime/train.ts): the float64 interpreter (the reference a
// training run is checked against) and the CUDA emulator. Their state lives in host arrays.
import type { Tensor64 } from '../base/tensor.js';
import type { Graph } from '../graph/ir.js';
import { strAttr } from '../graph/ir.js';
import { interpret } from '../interp/interpret.js';
import type { HostTensor } from '../runtime/session.js';
import type { TrainBackend } from '../runtime/train.js';

/** Inputs of a training-step graph that are also its outputs (weights and moments). */
export function graphStateNames(g: Graph): string[] {
  const outputs = new Set(g.outputs.map((o) => o.name));
  return g.nodes.filter((n) => n.op === 'input' && outputs.has(strAttr(n, 'name'))).map((n) => strAttr(n, 'name'));
}

function toTensor64(t: HostTensor): Tensor64 {
  return { dtype: t.dtype ?? 'f32', shape: [...t.shape], data: Float64Array.from(t.data) };
}

/**
 * The float64 interpreter runs the training-step graph itself (no passes, no kernels).
 * `fixed`: the values of weights that are not trained (they stay weights of the graph).
 */
export function interpTrainBackend(g: Graph, fixed: ReadonlyMap<string, HostTensor> = new Map()): TrainBackend<HostTensor> {
  const weights = new Set(g.nodes.filter((n) => n.op === 'weight').map((n) => strAttr(n, 'name')));
  const fixedFeeds = [...fixed].map(([n, t]) => [n, toTensor64(t)] as const);
  return {
    stateNames: graphStateNames(g),
    async run(inputs, state) {
      const feeds = { inputs: new Map<string, Tensor64>(), weights: new Map<string, Tensor64>(fixedFeeds) };
      for (const [n, t] of inputs) (weights.has(n) ? feeds.weights : feeds.inputs).set(n, toTensor64(t));
      const out = interpret(g, feeds).outputs;
      const keep = new Set(state);
      const st = new Map<string, HostTensor>();
      const host = new Map<string, ArrayLike<number>>();
      for (const [n, t] of out) {
        if (keep.has(n)) st.set(n, { dtype: t.dtype, shape: t.shape, data: t.data });
        else host.set(n, t.data);
      }
      return Promise.resolve({ state: st, host });
    },
    read: (s) => Promise.resolve(s.data),
    release: () => undefined,
  };
}
