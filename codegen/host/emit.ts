// Plan + graph -> `model.ts`: the host module an app imports (`tfc compile -o out/` writes it).
// Built with ts-morph and formatted by prettier with the committed options (format.ts), so the
// output is readable and byte-identical from run to run. The module holds the plan (kernels as
// WGSL template literals), types for the model's inputs and outputs, and `createModel`; the work
// is done by our small runtime (src/runtime, imported as `tfc/runtime` by default).
import { Project, VariableDeclarationKind, type SourceFile } from 'ts-morph';
import type { Graph } from '../../src/graph/ir.js';
import type { Plan, PlanKernel, SizeExpr } from '../../src/kernel/plan.js';
import { formatTs } from './format.js';

export interface HostOptions {
  /** Module specifier of the runtime (default `tfc/runtime`, the package export). */
  readonly runtimeImport?: string;
  /** Context length (most cached + new positions), e.g. from the model's `ctx` config constant. */
  readonly context?: number;
  /** The source file name shown in the header comment (no folders: output must not depend on paths). */
  readonly sourceName?: string;
}

/** What codegen/host derives from the plan about a language model (see `describeModel`). */
export interface ModelShape {
  readonly tokens?: string;
  readonly logits?: string;
  readonly vocab?: number;
  readonly cache: readonly { readonly past: string; readonly present: string }[];
  readonly pastDim?: string;
}

function constOf(e: SizeExpr | undefined): number | undefined {
  return e?.kind === 'const' ? e.value : undefined;
}

/**
 * Finds the language-model roles by convention: an i32 input of rank 2 (token ids), an output of
 * rank 3 whose last dim is constant (logits; vocab = that dim), and KV-cache pairs: an input whose
 * name contains `past` and an output named the same with `present` in its place.
 */
export function describeModel(plan: Plan): ModelShape {
  const inputs = plan.buffers.filter((b) => b.kind === 'input');
  const outputs = plan.outputs.map((o) => ({ name: o.name, b: plan.buffers.find((b) => b.id === o.buffer) }));
  const tokens = inputs.find((b) => b.dtype === 'i32' && b.shape.length === 2);
  const logits = outputs.find((o) => o.b !== undefined && o.b.shape.length === 3 && constOf(o.b.shape[2]) !== undefined && !o.name.includes('present'));
  const cache: { past: string; present: string }[] = [];
  let pastDim: string | undefined;
  for (const b of inputs) {
    const name = b.name ?? '';
    if (!name.includes('past')) continue;
    const present = name.replace('past', 'present');
    if (!plan.outputs.some((o) => o.name === present)) continue;
    cache.push({ past: name, present });
    const dim = b.shape.find((e, i) => i > 0 && e.kind === 'dim' && e.name !== (tokens?.shape[1]?.kind === 'dim' ? tokens.shape[1].name : ''));
    if (dim?.kind === 'dim') pastDim = dim.name;
  }
  const vocab = constOf(logits?.b?.shape[2]);
  return {
    ...(tokens?.name !== undefined ? { tokens: tokens.name } : {}),
    ...(logits !== undefined ? { logits: logits.name } : {}),
    ...(vocab !== undefined ? { vocab } : {}),
    cache,
    ...(pastDim !== undefined ? { pastDim } : {}),
  };
}

function printShape(shape: readonly SizeExpr[]): string {
  const p = (e: SizeExpr): string => {
    switch (e.kind) {
      case 'const':
        return String(e.value);
      case 'dim':
        return e.name;
      case 'add':
        return e.args.map(p).join(' + ');
      case 'mul':
        return e.args.map(p).join('*');
      case 'ceildiv':
        return `ceil(${p(e.num)} / ${e.den})`;
      case 'max':
        return `max(${e.args.map(p).join(', ')})`;
    }
  };
  return `[${shape.map(p).join(', ')}]`;
}

/** A TS identifier for a kernel's WGSL constant (kernel names are already sanitized identifiers). */
function wgslConst(k: PlanKernel): string {
  return `wgsl_${k.name.replace(/[^A-Za-z0-9_]/g, '_')}`;
}

/** A template literal holding `text` verbatim. */
function templateLiteral(text: string): string {
  return '`' + text.replace(/\\/g, '\\\\').replace(/`/g, '\\`').replace(/\$\{/g, '\\${') + '`';
}

/** The plan as a TS expression: JSON, with each kernel's WGSL replaced by its constant's name. */
function planExpression(plan: Plan): string {
  const names = new Map(plan.kernels.map((k) => [k.name, wgslConst(k)]));
  const marker = (name: string): string => `@@wgsl:${name}@@`;
  const kernels = plan.kernels.map((k) => ({ ...k, source: { ...k.source, wgsl: marker(k.name) } }));
  const json = JSON.stringify({ ...plan, kernels });
  return json.replace(/"@@wgsl:([^@"]*)@@"/g, (_, name: string) => names.get(name) ?? 'undefined');
}

/**
 * User text (file names, source locations) for a comment: as is when it holds only plainly safe
 * characters, else as a JSON string with the line breaks JS adds (U+2028, U+2029) and `*` + `/`
 * escaped, so a file name cannot end the comment or start a line of code (issue 9).
 */
function commentText(text: string): string {
  if (/^[A-Za-z0-9_.,:/ @+()-]*$/.test(text)) return text;
  return JSON.stringify(text).replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029').replace(/\u0085/g, '\\u0085').replace(/\*\//g, '*\\/');
}

function addDocs(sf: SourceFile, plan: Plan, graph: Graph, opts: HostOptions): void {
  const from = opts.sourceName !== undefined ? ` from ${commentText(opts.sourceName)}` : '';
  sf.insertStatements(0, [
    `// Generated by tfc${from}: model ${graph.name}, ${plan.kernels.length} kernels, ${plan.steps.length} steps. Do not edit;`,
    '// recompile with `tfc compile MODEL.tfx -o DIR`. Usage:',
    '//   const model = await createModel(device, weights, { onProgress });',
    '//   const { logits } = await model.forward({ tokens });',
    '/// <reference types="@webgpu/types" />',
  ]);
}

/** Emits `model.ts` for a compiled plan (async: prettier 3 formats asynchronously). */
export async function emitHostModule(plan: Plan, graph: Graph, opts: HostOptions = {}): Promise<string> {
  const project = new Project({ useInMemoryFileSystem: true });
  const sf = project.createSourceFile('model.ts', '', { overwrite: true });
  const lm = describeModel(plan);
  const runtime = opts.runtimeImport ?? 'tfc/runtime';
  const isDecoder = lm.tokens !== undefined && lm.logits !== undefined;

  sf.addImportDeclaration({ moduleSpecifier: runtime, namedImports: ['createLoadedModel'] });
  sf.addImportDeclaration({
    moduleSpecifier: runtime,
    isTypeOnly: true,
    namedImports: ['AcquiredDevice', 'CreateModelOptions', 'DeviceTensor', 'GenerateOptions', 'GenerateResult', 'HostTensor', 'LoadedModel', 'ModelSpec', 'Plan', 'RunOutput', 'WeightSource'].sort(),
  });
  addDocs(sf, plan, graph, opts);

  // Constants about the model.
  const spec = {
    name: plan.model,
    ...(lm.tokens !== undefined ? { tokens: lm.tokens } : {}),
    ...(lm.vocab !== undefined ? { vocab: lm.vocab } : {}),
    ...(opts.context !== undefined ? { context: opts.context } : {}),
    ...(lm.logits !== undefined ? { logits: lm.logits } : {}),
    cache: lm.cache,
    ...(lm.pastDim !== undefined ? { pastDim: lm.pastDim } : {}),
  };
  sf.addVariableStatement({
    isExported: true,
    declarationKind: VariableDeclarationKind.Const,
    docs: ['What the runtime needs to know about the model: its token input, logits and KV-cache pairs.'],
    declarations: [{ name: 'spec', type: 'ModelSpec', initializer: JSON.stringify(spec) }],
  });
  if (lm.vocab !== undefined) {
    sf.addVariableStatement({ isExported: true, declarationKind: VariableDeclarationKind.Const, docs: ['Token ids are in [0, vocab).'], declarations: [{ name: 'vocab', initializer: String(lm.vocab) }] });
  }
  if (opts.context !== undefined) {
    sf.addVariableStatement({
      isExported: true,
      declarationKind: VariableDeclarationKind.Const,
      docs: ['Most positions (cached + new) one sequence may hold.'],
      declarations: [{ name: 'context', initializer: String(opts.context) }],
    });
  }

  // Typed inputs and outputs.
  const inputs = plan.buffers.filter((b) => b.kind === 'input');
  sf.addInterface({
    name: 'ForwardInputs',
    isExported: true,
    docs: [`Inputs of ${plan.model}. ${isDecoder ? 'Omit the past.* cache for a prompt from scratch (P = 0).' : ''}`.trim()],
    properties: inputs.map((b) => {
      const name = b.name ?? `input${b.id}`;
      const isTokens = name === lm.tokens;
      const isPast = lm.cache.some((c) => c.past === name);
      return {
        name: JSON.stringify(name),
        hasQuestionToken: isPast,
        isReadonly: true,
        type: isTokens ? 'ArrayLike<number> | HostTensor' : 'HostTensor | DeviceTensor',
        docs: [`${b.dtype}${printShape(b.shape)}${isTokens ? ': token ids; a flat list is one sequence ([1, T])' : ''}`],
      };
    }),
  });
  sf.addInterface({
    name: 'ForwardOutputs',
    isExported: true,
    docs: [`Outputs of ${plan.model}, read back to the host (floats as Float32Array).`],
    properties: plan.outputs.map((o) => {
      const b = plan.buffers.find((x) => x.id === o.buffer);
      return { name: JSON.stringify(o.name), isReadonly: true, type: 'RunOutput', docs: [`${b?.dtype ?? 'f32'}${printShape(b?.shape ?? [])}`] };
    }),
  });

  const methods = [
    { name: 'forward', returnType: 'Promise<ForwardOutputs>', params: [{ name: 'inputs', type: 'ForwardInputs', hasQuestionToken: false }], doc: 'One run: validates the inputs, runs every kernel, reads the outputs back.' },
    ...(isDecoder
      ? [
          {
            name: 'generate',
            returnType: 'Promise<GenerateResult>',
            params: [
              { name: 'prompt', type: 'ArrayLike<number>', hasQuestionToken: false },
              { name: 'options', type: 'GenerateOptions', hasQuestionToken: true },
            ],
            doc: 'Prefill with the prompt, then one-token decode steps; the KV cache stays on the GPU.',
          },
        ]
      : []),
    { name: 'dispose', returnType: 'void', params: [], doc: "Frees the model's GPU buffers." },
  ];
  sf.addInterface({
    name: 'Model',
    isExported: true,
    properties: [{ name: 'runtime', isReadonly: true, type: 'LoadedModel', docs: ['The untyped runtime object (session, stats).'] }],
    methods: methods.map((m) => ({
      name: m.name,
      returnType: m.returnType,
      docs: [m.doc],
      parameters: m.params,
    })),
  });

  // The plan, with each kernel's WGSL as a readable template literal.
  for (const k of plan.kernels) {
    sf.addVariableStatement({
      declarationKind: VariableDeclarationKind.Const,
      docs: [`Kernel ${k.name} (${k.locs.map(commentText).join(', ') || 'no source location'}).`],
      declarations: [{ name: wgslConst(k), initializer: templateLiteral(k.source.wgsl) }],
    });
  }
  sf.addVariableStatement({
    isExported: true,
    declarationKind: VariableDeclarationKind.Const,
    docs: ['The compiled plan (src/kernel/plan.ts): buffers, kernels and the launch order.'],
    declarations: [{ name: 'plan', type: 'Plan', initializer: planExpression(plan) }],
  });

  sf.addFunction({
    name: 'createModel',
    isExported: true,
    isAsync: true,
    docs: [
      'Compiles the kernels on `device` and uploads the weights: a safetensors ArrayBuffer, a file path (Node)\nor a fetch Response (streamed; `onProgress` reports bytes, kernels and tensors).',
    ],
    parameters: [
      { name: 'device', type: 'GPUDevice | AcquiredDevice' },
      { name: 'weights', type: 'WeightSource' },
      { name: 'options', type: 'CreateModelOptions', initializer: '{}' },
    ],
    returnType: 'Promise<Model>',
    statements: [
      'const runtime = await createLoadedModel(device, plan, spec, weights, options);',
      `return {
        runtime,
        forward: async (inputs) => Object.fromEntries(await runtime.forward({ ...inputs })) as unknown as ForwardOutputs,
        ${isDecoder ? 'generate: (prompt, opts) => runtime.generate(prompt, opts),' : ''}
        dispose: () => runtime.dispose(),
      };`,
    ],
  });

  return formatTs(sf.getFullText());
}
