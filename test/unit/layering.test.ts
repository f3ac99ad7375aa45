// Imports follow the pipeline (STYLE.md "the folders are the pipeline"): a file imports only from
// its own layer or earlier ones, and no two files import each other, directly or around a loop.
// Layers, earliest first. The order is grammar -> check -> graph/ops -> passes -> kernel
// -> codegen -> runtime -> cli; here the graph IR and its op catalog come before check because
// check builds graphs, and the layers the issue leaves out sit where their imports put them.
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { describe, expect, it } from 'vitest';

const repo = normalize(join(new URL('.', import.meta.url).pathname, '../..'));

const layers: readonly (readonly [string, readonly string[]])[] = [
  // Shared by every stage: diagnostics, symbolic dims, float64 tensors, names, dtypes/tensor types
  // (src/graph/types.ts: in base by role, left in graph/ because ~80 files import it).
  ['base', ['src/base/', 'src/diag/', 'src/graph/types.ts']],
  ['grammar', ['grammar/']],
  ['graph/ops', ['src/graph/', 'src/ops/']],
  // reverse mode over the graph IR; the catalog's vjp rules build its nodes through GradBuilder
  ['autodiff', ['src/autodiff/']],
  ['check', ['src/check/']],
  ['interp', ['src/interp/']],
  ['io', ['src/io/']],
  ['passes', ['src/passes/']],
  // Training: loss, gradients and optimizer appended to a model's graph (graph-to-graph, like passes).
  ['train', ['src/train/']],
  ['kernel', ['src/kernel/']],
  ['codegen', ['codegen/']],
  ['compile', ['src/compile/']],
  ['runtime', ['src/runtime/', 'src/runtime-cuda/']],
  ['cli', ['src/cli/']],
];

/**
 * Type-only import cycles that are known. The test fails when one is gone (delete it here) or a
 * new one appears. Value-import cycles are never allowed. (The op families' cycle with the
 * lowering driver is gone: they take the state as lower/lowering.ts's interface.)
 */
const pendingTypeCycles: readonly (readonly string[])[] = [
  // AttentionShape (attention/node.ts), AttentionSchedule (attention/schedule.ts) and TargetLimits (schedule/schedule.ts) name each other.
  ['src/kernel/attention/node.ts', 'src/kernel/attention/schedule.ts', 'src/kernel/schedule/schedule.ts'],
  // checkpoint.ts takes host.ts's WeightSource type, host.ts calls checkConfig (issue 15, in progress).
  ['src/runtime/checkpoint.ts', 'src/runtime/host.ts'],
];

interface Import {
  readonly from: string;
  readonly to: string;
  readonly typeOnly: boolean;
}

function layerOf(file: string): number {
  let best = -1;
  let bestLength = -1;
  layers.forEach(([, prefixes], i) => {
    for (const p of prefixes) {
      if ((file === p || file.startsWith(p)) && p.length > bestLength) {
        best = i;
        bestLength = p.length;
      }
    }
  });
  return best;
}

/** Static `import`/`export ... from` and `import('...')` of relative paths, resolved to .ts files. */
function importsOf(file: string, text: string): Import[] {
  const out: Import[] = [];
  const resolve = (spec: string): string => normalize(join(dirname(file), spec)).replace(/\.js$/, '.ts');
  for (const m of text.matchAll(/^\s*(?:import|export)\s+(type\s+)?(?:[^;'"]*?\s+from\s+)?'(\.[^']+)'/gm)) {
    const spec = m[2];
    if (spec !== undefined) out.push({ from: file, to: resolve(spec), typeOnly: m[1] !== undefined });
  }
  for (const m of text.matchAll(/\bimport\(\s*'(\.[^']+)'\s*\)/g)) {
    const spec = m[1];
    if (spec !== undefined) out.push({ from: file, to: resolve(spec), typeOnly: false });
  }
  return out;
}

function violations(imports: readonly Import[]): string[] {
  return imports.filter((i) => layerOf(i.to) > layerOf(i.from)).map((i) => `${i.from} -> ${i.to}`);
}

/** Strongly connected components with more than one file (Tarjan). */
function cycles(imports: readonly Import[]): string[][] {
  const next = new Map<string, string[]>();
  for (const i of imports) next.set(i.from, [...(next.get(i.from) ?? []), i.to]);
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, index.size);
    low.set(v, index.get(v) ?? 0);
    stack.push(v);
    onStack.add(v);
    for (const w of next.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v) ?? 0, low.get(w) ?? 0));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v) ?? 0, index.get(w) ?? 0));
    }
    if (low.get(v) === index.get(v)) {
      const scc: string[] = [];
      for (let w = stack.pop(); w !== undefined; w = stack.pop()) {
        onStack.delete(w);
        scc.push(w);
        if (w === v) break;
      }
      if (scc.length > 1) out.push(scc.sort());
    }
  };
  for (const v of next.keys()) if (!index.has(v)) visit(v);
  return out.sort((a, b) => ((a[0] ?? '') < (b[0] ?? '') ? -1 : 1));
}

function sourceFiles(dir: string): string[] {
  return readdirSync(join(repo, dir), { withFileTypes: true }).flatMap((e) => {
    const rel = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(rel);
    return e.name.endsWith('.ts') ? [rel] : [];
  });
}

const files = ['grammar', 'src', 'codegen'].flatMap(sourceFiles);
// `./cst.js` may name a declaration file (grammar/cst.d.ts, generated by Chevrotain).
const declared = (i: Import): Import => (!files.includes(i.to) && files.includes(i.to.replace(/\.ts$/, '.d.ts')) ? { ...i, to: i.to.replace(/\.ts$/, '.d.ts') } : i);
const imports = files.flatMap((f) => importsOf(f, readFileSync(join(repo, f), 'utf8')).map(declared));

describe('imports follow the pipeline', () => {
  it('puts every source file in a layer', () => {
    expect(files.length).toBeGreaterThan(100);
    expect(files.filter((f) => layerOf(f) < 0)).toEqual([]);
    expect(imports.filter((i) => !files.includes(i.to)).map((i) => `${i.from} -> ${i.to}`)).toEqual([]);
  });

  it('imports only from the same or an earlier layer', () => {
    expect(violations(imports).sort()).toEqual([]);
  });

  it('has no import cycle between files; type-only cycles only where listed', () => {
    expect(cycles(imports.filter((i) => !i.typeOnly))).toEqual([]);
    expect(cycles(imports)).toEqual(pendingTypeCycles.map((c) => [...c].sort()));
  });

  it('the rule and the cycle finder catch what they must (synthetic imports)', () => {
    const i = (from: string, to: string, typeOnly = false): Import => ({ from, to, typeOnly });
    expect(violations([i('src/graph/ir.ts', 'src/passes/pass.ts'), i('src/passes/pass.ts', 'src/graph/ir.ts'), i('src/diag/span.ts', 'src/graph/types.ts')])).toEqual(['src/graph/ir.ts -> src/passes/pass.ts']);
    expect(violations([i('src/check/build.ts', 'grammar/ast.ts'), i('src/kernel/lower/lower.ts', 'codegen/wgsl/print.ts')])).toEqual(['src/kernel/lower/lower.ts -> codegen/wgsl/print.ts']);
    expect(cycles([i('a.ts', 'b.ts'), i('b.ts', 'c.ts'), i('c.ts', 'a.ts'), i('c.ts', 'd.ts')])).toEqual([['a.ts', 'b.ts', 'c.ts']]);
    expect(importsOf('src/x/y.ts', "import type { A } from '../z.js';\nexport { b } from './w.js';\nconst m = await import('../../codegen/h.js');\nimport {\n  c,\n} from './v.js';\n")).toEqual([
      i('src/x/y.ts', 'src/z.ts', true),
      i('src/x/y.ts', 'src/x/w.ts'),
      i('src/x/y.ts', 'src/x/v.ts'),
      i('src/x/y.ts', 'codegen/h.ts'),
    ]);
  });

});
