// Host backends for the Trainer (src/runtime/train.ts): the float64 interpreter (the reference a
// training run is checked against) and the CUDA emulator. Their state lives in host arrays.
import type { Tensor64 } from '../base/tensor.js';
import type { Graph } from '../graph/ir.js';
import { strAttr } from '../graph/ir.js';
import { interpret } from '../interp/interpret.js';
import type { HostTensor } from '../runtime/session.js';
import { planHyperInputs, planStateNames, type TrainBackend } from '../runtime/train.js';
import { adamNames } from '../train/adamw.js';
import type { Plan } from '../kernel/plan/plan.js';
import { runPlanEmulated } from '../runtime-cuda/emulate.js';

/** Inputs of a training-step graph that are also its outputs (weights and moments). */
export function graphStateNames(g: Graph): string[] {
  const outputs = new Set(g.outputs.map((o) => o.name));
  return g.nodes.filter((n) => n.op === 'input' && outputs.has(strAttr(n, 'name'))).map((n) => strAttr(n, 'name'));
}

/**
 * A host step's outputs split as the Trainer wants them: the state (an input of the same name,
 * whose shape it keeps) and the rest as plain numbers (the loss, the gradient norm).
 */
function splitOutputs(out: Iterable<readonly [string, ArrayLike<number>]>, inputs: ReadonlyMap<string, HostTensor>, state: readonly string[]): { state: Map<string, HostTensor>; host: Map<string, ArrayLike<number>> } {
  const keep = new Set(state);
  const st = new Map<string, HostTensor>();
  const host = new Map<string, ArrayLike<number>>();
  for (const [n, data] of out) {
    if (!keep.has(n)) {
      host.set(n, data);
      continue;
    }
    const given = inputs.get(n);
    if (given === undefined) throw new Error(`internal: training state '${n}' was not an input of the step`);
    st.set(n, { dtype: 'f32', shape: given.shape, data });
  }
  return { state: st, host };
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
    hyperInputs: g.nodes.some((n) => n.op === 'input' && strAttr(n, 'name') === adamNames.hyper.beta1),
    async run(inputs, state) {
      const feeds = { inputs: new Map<string, Tensor64>(), weights: new Map<string, Tensor64>(fixedFeeds) };
      for (const [n, t] of inputs) (weights.has(n) ? feeds.weights : feeds.inputs).set(n, toTensor64(t));
      const out = interpret(g, feeds).outputs;
      return Promise.resolve(splitOutputs([...out].map(([n, t]) => [n, t.data] as const), inputs, state));
    },
    read: (s) => Promise.resolve(s.data),
    release: () => undefined,
  };
}

/**
 * The CUDA emulator (src/runtime-cuda/emulate.ts): the training-step plan's CUDA kernels built
 * with g++ against cuda_emu.h, one launcher run per step; the state lives in host arrays.
 * `fixed`: the values of weights that are not trained.
 */
export function emulatorTrainBackend(plan: Plan, fixed: ReadonlyMap<string, HostTensor> = new Map()): TrainBackend<HostTensor> {
  return {
    stateNames: planStateNames(plan),
    hyperInputs: planHyperInputs(plan),
    async run(inputs, state) {
      const feeds = new Map<string, ArrayLike<number>>([...fixed].map(([n, t]) => [n, t.data]));
      for (const [n, t] of inputs) feeds.set(n, t.data);
      return Promise.resolve(splitOutputs(runPlanEmulated(plan, new Map(), feeds).outputs, inputs, state));
    },
    read: (s) => Promise.resolve(s.data),
    release: () => undefined,
  };
}
