// The compile driver, graph half: one model (a .tfx source or a dumped .ir file) through the front
// end and the target's pass pipeline, each stage computed once, on first use (`--emit ast` never
// runs a pass). kernels.ts `lowerModel` takes the graph on to kernels and code. It reads no files and
// prints nothing: the caller gives the text, and diagnostics go to the caller's sink.
import type { Module } from '../../grammar/ast.js';
import { parseTfx } from '../../grammar/parse.js';
import { buildGraph } from '../check/build.js';
import { evaluateConfig, fileStart } from '../check/config.js';
import { type DimLimit, modelLimits } from '../check/limits.js';
import { type Diagnostic, DiagnosticSink, UserErrorsReported, diag } from '../diag/diagnostic.js';
import type { Graph } from '../graph/ir.js';
import { parseGraph } from '../graph/parse.js';
import { printGraph } from '../graph/print.js';
import { type NarrowFloat, retypeFloats } from '../graph/retype-floats.js';
import { runPipeline } from '../passes/driver.js';
import { type GradResult, gradGraph } from '../autodiff/grad.js';
import { withTrainingLoss } from '../autodiff/fused-loss.js';
import { printGrad } from '../autodiff/print.js';
import { type GraphPass, type PassContext, type Target, createPassContext } from '../passes/pass.js';
import { fusionPassNames, graphPasses, pipelines, unfusedPipeline } from '../passes/pipeline.js';
import { fuseForwardAttention } from '../train/fuse-forward.js';

export interface ModelSource {
  readonly file: string; // a name ending in .ir is read as graph IR, anything else as .tfx
  readonly text: string;
}

/** Where diagnostics go (the CLI's Reporter, or a DiagnosticSink in tests). */
export interface DiagnosticOut {
  report(d: Diagnostic): void;
}

export interface PassRunOptions {
  /** A pass name or 'all': its output IR goes to `log`. */
  readonly dumpAfter?: string;
  /** TFC_DEBUG: 1 remarks; 2 + time per pass and rule hits; 3 + the IR after every pass (4: the CLI prints sources). */
  readonly debug?: number;
  /** Print loc(...) in dumps and in `irText`/`graphText` (default true). */
  readonly locs?: boolean;
  /** stderr: dumps, remarks, timings. */
  readonly log?: (text: string) => void;
}

export interface CompileOptions {
  /** `--set`: config constants and dims (an .ir file has no config: dims only). */
  readonly overrides?: ReadonlyMap<string, number>;
  /** Whose pass pipeline (src/passes/pipeline.ts); default webgpu. */
  readonly target?: Target;
  /** Leave the fusion passes out (`--no-fuse`). */
  readonly noFuse?: boolean;
  /** Run this pass list instead of the target's (`tfc bench`'s baselines, tests). */
  readonly pipeline?: readonly GraphPass[];
  readonly passes?: PassRunOptions;
  /** Default: a sink nobody reads (a stage with errors still throws UserErrorsReported). */
  readonly diagnostics?: DiagnosticOut;
  /** verifyGraph after every pass; default: TFC_VERIFY=1 (createPassContext). */
  readonly verify?: boolean;
  /** `--dtype f16|bf16`: the checked graph's f32 becomes this type (src/graph/retype-floats.ts). */
  readonly dtype?: NarrowFloat;
  /**
   * `--grad`: the checked graph becomes the backward graph of the cross-entropy of the `logits`
   * output against a new `targets` input (src/autodiff/): outputs `loss` and `grad.<weight>`.
   */
  readonly grad?: boolean;
}

/** The front end's result: the module (a .tfx source) and the checked graph (with --grad, the backward). */
interface Built {
  readonly module?: Module;
  readonly graph: Graph;
  readonly backward?: GradResult;
  /** With --grad: the checked graph before differentiation, and whether its attention was fused first. */
  readonly front?: Built;
  readonly attentionFused?: boolean;
}

/** Names of the passes a target runs before its first fusion pass: the `ir` stage is their output. */
function beforeFusion(target: Target): ReadonlySet<string> {
  const list = pipelines[target];
  const first = list.findIndex((p) => fusionPassNames.has(p.name));
  return new Set(list.slice(0, first < 0 ? list.length : first).map((p) => p.name));
}

/** Memoizes a stage: computed on the first read, the same value (or the same throw) afterwards. */
function once<T>(f: () => T): () => T {
  let state: { ok: true; value: T } | { ok: false; error: unknown } | undefined;
  return () => {
    if (state === undefined) {
      try {
        state = { ok: true, value: f() };
      } catch (e) {
        state = { ok: false, error: e };
      }
    }
    if (!state.ok) throw state.error;
    return state.value;
  };
}

/**
 * One model's stages. Getters compute on first read and throw UserErrorsReported after reporting
 * a stage's errors (then every later read throws the same).
 */
export class Compilation {
  readonly file: string;
  readonly isIr: boolean;
  readonly target: Target;
  readonly overrides: ReadonlyMap<string, number>;
  private readonly out: DiagnosticOut;
  private readonly passList: readonly GraphPass[];
  private readonly cut: number;
  private readonly ctx: () => PassContext;

  constructor(
    readonly source: ModelSource,
    readonly options: CompileOptions = {},
    /** A checked graph already built (the unfused sibling of `--report` shares it). */
    private readonly given?: Built,
  ) {
    this.file = source.file;
    this.isIr = source.file.endsWith('.ir');
    this.target = options.target ?? 'webgpu';
    this.overrides = options.overrides ?? new Map();
    this.out = options.diagnostics ?? new DiagnosticSink();
    this.passList = options.pipeline ?? (options.noFuse === true ? unfusedPipeline(this.target) : pipelines[this.target]);
    // The `ir` stage = the graph as the first fusion pass receives it; with --no-fuse the same
    // passes run first, so `--emit ir` does not depend on --no-fuse.
    const prefix = beforeFusion(this.target);
    const cut = this.passList.findIndex((p) => !prefix.has(p.name));
    this.cut = cut < 0 ? this.passList.length : cut;
    this.ctx = once(() => this.passContext());
  }

  /** The AST (parse only: `--emit ast`, `fmt`); undefined for an .ir file. */
  get ast(): Module | undefined {
    return this.parsed();
  }

  /** The checked graph IR (src/check/build.ts), before any pass; for an .ir file, the file's graph. */
  get checked(): Graph {
    return this.built().graph;
  }

  /** With `--grad`: the backward graph with its gradients and saved activations (the checked graph is its graph). */
  get backward(): GradResult | undefined {
    return this.built().backward;
  }

  /** `--emit grad`: the backward graph as built, with its saved activations marked. */
  get gradText(): string {
    const r = this.backward;
    if (r === undefined) throw new Error('internal: gradText without --grad');
    return withNewline(printGrad(r, { locs: this.options.passes?.locs ?? true }));
  }

  /** The graph after the cleanup passes, before fusion (`--emit ir`). */
  get ir(): Graph {
    return this.beforeFusionGraph();
  }

  /** The graph after the whole pipeline (`--emit fused`): what the kernels are lowered from. */
  get graph(): Graph {
    return this.pipelineGraph();
  }

  get irText(): string {
    return withNewline(printGraph(this.ir, { locs: this.options.passes?.locs ?? true }));
  }

  get graphText(): string {
    return withNewline(printGraph(this.graph, { locs: this.options.passes?.locs ?? true }));
  }

  /**
   * The model's context length (host module, `generate`): the bound of its first `limit`, else
   * (older models) its `ctx` or `context` config constant after --set.
   */
  get contextLength(): number | undefined {
    const first = this.limits[0];
    if (first !== undefined) return first.max;
    const module = this.built().module;
    if (module === undefined) return undefined;
    const c = evaluateConfig(module, this.overrides, new DiagnosticSink()).constants;
    const v = c.get('ctx') ?? c.get('context');
    return v !== undefined && v.isInt ? v.value : undefined;
  }

  /** Config constants that name checkpoint keys (`from "key"`), with their values after overrides. */
  get keyedConfig(): Record<string, { value: number; keys: string[] }> {
    const module = this.built().module;
    if (module === undefined) return {};
    const c = evaluateConfig(module, this.overrides, new DiagnosticSink()).constants;
    const out: Record<string, { value: number; keys: string[] }> = {};
    for (const item of module.items) {
      if (item.kind !== 'config') continue;
      for (const e of item.entries) {
        const v = c.get(e.name.name);
        if (e.keys !== undefined && v !== undefined) out[e.name.name] = { value: v.value, keys: e.keys.map((k) => k.value) };
      }
    }
    return out;
  }

  /** The `limit` declarations with the config's values (none for an .ir file). */
  get limits(): readonly DimLimit[] {
    const module = this.built().module;
    if (module === undefined) return [];
    return modelLimits(module, evaluateConfig(module, this.overrides, new DiagnosticSink()), new DiagnosticSink());
  }

  /**
   * The same model through another pipeline (target, fusion), sharing this checked graph: `tfc run`
   * checks the model before it knows where it runs.
   */
  variant(change: { readonly target?: Target; readonly noFuse?: boolean }): Compilation {
    const rest: { -readonly [K in keyof CompileOptions]: CompileOptions[K] } = { ...this.options, ...change };
    delete rest.pipeline;
    return new Compilation(this.source, rest, this.built());
  }

  /** The target's pipeline without fusion (the `--no-fuse` baseline of `--report`). */
  unfused(): Compilation {
    return this.options.noFuse === true && this.options.pipeline === undefined ? this : this.variant({ noFuse: true });
  }

  private readonly parsed = once((): Module | undefined => {
    if (this.isIr) return undefined;
    if (this.given !== undefined) return this.given.module;
    const sink = new DiagnosticSink();
    const module = parseTfx(this.source.text, this.file, sink);
    this.report(sink.items);
    return module;
  });

  private readonly built = once((): Built => {
    const given = this.given;
    // A variant with the other fusion choice (`--report`'s unfused sibling) differentiates the shared checked graph again.
    if (given !== undefined) return given.front !== undefined && given.attentionFused !== this.fusesAttention() ? this.differentiated(given.front) : given;
    const b = this.front();
    return this.options.grad === true ? this.differentiated(b) : b;
  });

  /** Whether this pipeline fuses attention: then --grad fuses it before differentiating (one fused backward per attention). */
  private fusesAttention(): boolean {
    return this.passList.some((p) => p.name === 'fuse-attention');
  }

  /**
   * The model's graph with a cross-entropy loss, differentiated w.r.t. every weight. With attention
   * fusion, the cleanups and fuse-attention run first (src/train/fuse-forward.ts, as `tfc train`):
   * each attention's backward is then one fused_attention_grad instead of T x S matmul/softmax ops.
   */
  private differentiated(b: Built): Built {
    const sink = new DiagnosticSink();
    const fuse = this.fusesAttention();
    const ctx = createPassContext({ target: this.target, ...(this.options.verify !== undefined ? { verify: this.options.verify } : {}) });
    const forward = fuse ? fuseForwardAttention(runPipeline(b.graph, graphPasses, ctx), ctx) : b.graph;
    // With fusion and constant rows (--set B=..,T=..) the LM head's loss is one fused_cross_entropy, as in `tfc train`.
    const withLoss = withTrainingLoss(forward, fuse, (d) => sink.report(d));
    const r = withLoss === undefined ? undefined : gradGraph(withLoss, { output: 'loss' }, (d) => sink.report(d));
    this.report(sink.items);
    if (r === undefined) throw new UserErrorsReported();
    return { ...b, graph: r.graph, backward: r, front: b, attentionFused: fuse };
  }

  private readonly front = once((): Built => {
    const sink = new DiagnosticSink();
    if (this.isIr) {
      const graph = parseGraph(this.source.text, this.file, sink);
      if (graph !== undefined && !sink.hasErrors) {
        for (const name of this.overrides.keys()) {
          if (!graph.dims.includes(name)) {
            sink.report(diag('TFC305', fileStart(this.file), `--set ${name}: an IR file has no config; its dims are ${graph.dims.length > 0 ? graph.dims.join(', ') : 'none'}`));
          }
        }
      }
      this.report(sink.items);
      if (graph === undefined) throw new UserErrorsReported();
      return { graph: this.retyped(graph) };
    }
    const module = this.parsed();
    if (module === undefined) throw new Error('internal: a .tfx source without an AST');
    const graph = buildGraph(module, { overrides: this.overrides }, sink);
    this.report(sink.items);
    if (graph === undefined) throw new UserErrorsReported();
    return { module, graph: this.retyped(graph) };
  });

  /** The checked graph in the `--dtype` float type (unchanged without one). */
  private retyped(g: Graph): Graph {
    if (this.options.dtype === undefined) return g;
    const r = retypeFloats(g, this.options.dtype);
    this.report(r.diagnostics);
    if (r.graph === undefined) throw new UserErrorsReported();
    return r.graph;
  }

  private readonly beforeFusionGraph = once((): Graph => this.runPasses(this.checked, this.passList.slice(0, this.cut)));

  private readonly pipelineGraph = once((): Graph => {
    const g = this.runPasses(this.ir, this.passList.slice(this.cut));
    const o = this.options.passes;
    if ((o?.debug ?? 0) >= 2 && o?.log !== undefined) {
      const ctx = this.ctx();
      for (const t of ctx.stats.timings) o.log(`pass ${t.pass.padEnd(24)} ${t.ms.toFixed(2).padStart(9)} ms\n`);
      for (const [rule, hits] of [...ctx.stats.ruleHits].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) o.log(`rule ${rule.padEnd(40)} ${hits} hits\n`);
    }
    return g;
  });

  /** Runs part of the pipeline in the one context (its dumps, remarks and stats span both parts). */
  private runPasses(g: Graph, passes: readonly GraphPass[]): Graph {
    const ctx = this.ctx();
    const before = ctx.diagnostics.items.length;
    const out = runPipeline(g, passes, ctx);
    this.report(ctx.diagnostics.items.slice(before));
    return out;
  }

  private passContext(): PassContext {
    const o = this.options.passes ?? {};
    const debug = o.debug ?? 0;
    const log = o.log ?? ((): void => {});
    const dumpAfter = debug >= 3 || o.dumpAfter === 'all' ? 'all' : o.dumpAfter !== undefined ? [o.dumpAfter] : [];
    return createPassContext({
      target: this.target,
      ...(this.options.verify !== undefined ? { verify: this.options.verify } : {}),
      dumpAfter,
      dumpLocs: o.locs ?? true,
      dump: (text) => log(withNewline(text)),
      remark: (r) => {
        if (debug >= 1) log(`remark: ${r.loc.file}:${r.loc.line}:${r.loc.col}: [${r.pass}] ${r.message}\n`);
      },
    });
  }

  /** Hands a stage's diagnostics on; its errors end the stage. */
  private report(ds: readonly Diagnostic[]): void {
    for (const d of ds) this.out.report(d);
    if (ds.some((d) => d.severity === 'error')) throw new UserErrorsReported();
  }
}

function withNewline(t: string): string {
  return t.endsWith('\n') ? t : t + '\n';
}

/** Starts a compilation; nothing runs until a stage is read. */
export function compileModel(source: ModelSource, options: CompileOptions = {}): Compilation {
  return new Compilation(source, options);
}
