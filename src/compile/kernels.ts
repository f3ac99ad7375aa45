// The compile driver, kernel half: the pipeline's graph lowered for one target's limits (and a
// schedule), then everything printed from it, each computed once on first use: the kernel
// program, the plan with its WGSL/CUDA sources, the `-o` folder's files, the host module and the
// traffic report.
import { basename } from 'node:path';
import { cudaEmitText, cudaFiles } from '../../codegen/cuda/launch.js';
import { compilePlan, printableTarget } from './plan.js';
import { trainStepPlan } from './train.js';
import type { Kernel, KernelProgram } from '../kernel/ir/ir.js';
import { lowerToKernels } from '../kernel/lower/lower.js';
import { planFiles } from '../kernel/plan/manifest.js';
import { type Plan, evalCondition } from '../kernel/plan/plan.js';
import { type KernelResources, type TileCount, type TrafficReport, reportDims, trafficReport } from '../kernel/analysis/report.js';
import { countBackwardKvTiles, countTiles } from '../kernel/attention/count.js';
import { costModelFor } from '../kernel/analysis/cost.js';
import { type Schedule, type TargetLimits, chooseSchedule } from '../kernel/schedule/schedule.js';
import type { Compilation } from './model.js';
import type { Graph } from '../graph/ir.js';
import { hasRead } from '../graph/lambda.js';

export interface LowerOptions {
  /** Tiles, subgroups, workgroup memory: `--limits`, cudaLimits, or the adapter's (targetLimitsOf). */
  readonly limits: TargetLimits;
  /** A forced or tuned schedule; default chooseSchedule(limits). */
  readonly schedule?: Schedule;
  /** CUDA sources in the plan (and cuda/ in `files`); default: limits named cuda-*. */
  readonly cuda?: boolean;
  /** `--train`: the training step's plan too (src/compile/train.ts): train/ in `files`, `createTrainer` in model.ts. */
  readonly train?: boolean;
}

export interface ReportRequest {
  /** Dim values (names that are not graph dims are ignored); unset dims: reportDims' defaults. */
  readonly dims?: ReadonlyMap<string, number>;
  /** Registers, shared memory and spills of the reported kernels, in order (ptxas, CLI side). */
  readonly resources?: (ks: readonly Kernel[]) => readonly (KernelResources | undefined)[];
}

export class KernelStages {
  readonly limits: TargetLimits;
  readonly schedule: Schedule;
  readonly withCuda: boolean;
  private programMemo: KernelProgram | undefined;
  private planMemo: Plan | undefined;
  private hostMemo: Promise<string> | undefined;
  private trainMemo: Plan | undefined;
  readonly withTrain: boolean;

  constructor(
    readonly model: Compilation,
    opts: LowerOptions,
  ) {
    this.limits = opts.limits;
    this.schedule = opts.schedule ?? chooseSchedule(opts.limits);
    this.withCuda = opts.cuda ?? opts.limits.name.startsWith('cuda');
    this.withTrain = opts.train === true;
  }

  /** With `train`: the training-step plan (same limits, default schedule), built once. */
  get trainPlan(): Plan | undefined {
    if (!this.withTrain) return undefined;
    this.trainMemo ??= trainStepPlan(this.model, this.limits);
    return this.trainMemo;
  }

  /** Kernel IR (`--emit kernels`), lowered once; the plan is built from this same program. */
  get program(): KernelProgram {
    this.programMemo ??= lowerToKernels(this.model.graph, printableTarget(this.limits), this.schedule);
    return this.programMemo;
  }

  /** Kernels deduplicated, buffers and steps (manifest.json), with each kernel's WGSL (and CUDA). */
  get plan(): Plan {
    this.planMemo ??= compilePlan(this.model.graph, { target: this.limits, schedule: this.schedule, program: this.program, cuda: this.withCuda });
    return this.planMemo;
  }

  /** `--emit wgsl`: every kernel's WGSL, in plan order. */
  get wgsl(): string {
    return this.plan.kernels.map((k) => k.source.wgsl).join('\n');
  }

  /** `--emit cuda`: the prelude once, then every kernel. */
  get cuda(): string {
    return cudaEmitText(this.plan);
  }

  /** The typed TypeScript module (`--emit host`, `model.ts`); ts-morph and prettier load only here. */
  hostModule(): Promise<string> {
    this.hostMemo ??= (async () => {
      const { emitHostModule } = await import('../../codegen/host/emit.js');
      const context = this.model.contextLength;
      const config = this.model.keyedConfig;
      const train = this.trainPlan;
      return emitHostModule(this.plan, this.model.graph, {
        sourceName: basename(this.model.file),
        ...(context !== undefined ? { context } : {}),
        ...(Object.keys(config).length > 0 ? { config } : {}),
        ...(train !== undefined ? { trainPlan: train } : {}),
      });
    })();
    return this.hostMemo;
  }

  /** The `-o DIR` folder by relative path: model.ir, manifest.json, wgsl/, cuda/ (with CUDA), train/ (with `train`), model.ts. */
  async files(): Promise<Map<string, string>> {
    const files = new Map<string, string>([['model.ir', this.model.graphText], ...planFiles(this.plan, this.limits.name), ...(this.withCuda ? cudaFiles(this.plan) : [])]);
    const train = this.trainPlan;
    if (train !== undefined) for (const [path, text] of planFiles(train, this.limits.name)) files.set(`train/${path}`, text);
    files.set('model.ts', await this.hostModule());
    return files;
  }

  /**
   * `--report`: these kernels' traffic and FLOPs next to the unfused pipeline's kernels (same
   * limits, default schedule) and the lower bound of the unfused graph.
   */
  report(req: ReportRequest = {}): TrafficReport {
    const unfused = this.model.unfused();
    const dims = reportDims(this.model.checked, req.dims ?? new Map());
    // Only the kernels a run at these dims launches: a symbolic T holds both the prefill and the
    // split-K decode path of an attention, each guarded by `when` (T > 1, T <= 1).
    const launched = (ks: readonly Kernel[]): Kernel[] => ks.filter((k) => k.when === undefined || evalCondition(k.when, dims));
    const unfusedProgram = unfused === this.model ? this.program : lowerModel(unfused, { limits: this.limits }).program;
    const unfusedKernels = launched(unfusedProgram.kernels);
    return trafficReport({
      model: this.model.graph.name,
      limits: this.limits.name,
      dims,
      kernels: launched(this.program.kernels),
      unfusedKernels,
      unfusedGraph: unfused.graph,
      cost: costModelFor(this.limits),
      fusedSources: { graph: this.model.graph, program: this.program },
      unfusedSources: { graph: unfused.graph, program: unfusedProgram },
      tileCount: attentionTileCounter(this.model.graph, this.program, dims),
      ...(req.resources !== undefined ? { resources: req.resources } : {}),
    });
  }
}

/**
 * The report's tile counter for `program`'s fused attention kernels: each kernel's own block-sparsity
 * statements run on the host at `dims` (countTiles), once per kernel (the report asks for the
 * kernel rows and again for the fusion rows). A mask that reads input data per workgroup (lengths,
 * document ids) cannot be counted without the data: undefined (every tile counted).
 */
function attentionTileCounter(g: Graph, program: KernelProgram, dims: ReadonlyMap<string, number>): TileCount {
  const nodeOf = new Map(program.kernels.map((k, i) => [k, g.nodes[program.origin?.[i] ?? -1]]));
  const counted = new Map<Kernel, ReturnType<TileCount>>();
  return (k) => {
    if (counted.has(k)) return counted.get(k);
    const n = nodeOf.get(k);
    const tiles = k.traffic.perTile?.tiles;
    const mask = n?.attrs['mask'];
    let c: ReturnType<TileCount>;
    const countable = n !== undefined && tiles !== undefined && !(mask?.kind === 'lambda' && hasRead(mask.body));
    if (countable && n.op === 'fused_attention') {
      const t = countTiles(g, n, dims, tiles);
      c = { visited: t.visited, total: t.tiles };
    } else if (countable && n.op === 'fused_attention_grad') {
      // dQ role: the forward's walk over (query tile, key tile); dK/dV role: its own over (key tile, query head, query tile).
      const q = countTiles(g, n, dims, tiles);
      const kv = countBackwardKvTiles(g, n, dims, { tileRows: tiles.rows, tileCols: tiles.cols, lanes: 1 });
      c = { visited: q.visited, total: q.tiles, kv: { visited: kv.visited, total: kv.tiles } };
    }
    counted.set(k, c);
    return c;
  };
}

/** The kernel stages of a compilation for one target's limits (and schedule); each call lowers anew. */
export function lowerModel(model: Compilation, opts: LowerOptions): KernelStages {
  return new KernelStages(model, opts);
}

/**
 * A graph that is no compiled model's (`tfc tune`'s sub-graphs, src/cli/tune-subgraph.ts): its
 * kernel program and the plan built from that program, lowered as KernelStages lowers a model.
 */
export function lowerGraph(g: Graph, opts: LowerOptions): { readonly program: KernelProgram; readonly plan: Plan } {
  const schedule = opts.schedule ?? chooseSchedule(opts.limits);
  const program = lowerToKernels(g, printableTarget(opts.limits), schedule);
  const plan = compilePlan(g, { target: opts.limits, schedule, program, cuda: opts.cuda ?? opts.limits.name.startsWith('cuda') });
  return { program, plan };
}
