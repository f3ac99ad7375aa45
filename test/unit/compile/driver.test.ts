// The compile driver (src/compile/): every stage computed once, on first use; `ir` is the graph
// the first fusion pass receives; errors are reported once and end the stage.
import { describe, expect, it } from 'vitest';
import { lowerModel } from '../../../src/compile/kernels.js';
import { compileModel } from '../../../src/compile/model.js';
import { DiagnosticSink, UserErrorsReported } from '../../../src/diag/diagnostic.js';
import { printGraph } from '../../../src/graph/print.js';
import { lavapipeLimits } from '../../../src/kernel/schedule/schedule.js';
import { pipelines, unfusedPipeline } from '../../../src/passes/pipeline.js';

const attention = `config {
  d = 16
}
dims T
input q: f32[T, d]
input k: f32[T, d]
input v: f32[T, d]
output o: f32[T, d]
model m {
  o = softmax(q @ transpose(k) / 4.0, axis=-1) @ v
}
`;

describe('compile driver', () => {
  it('runs each pass once however often the stages are read', () => {
    const lines: string[] = [];
    const c = compileModel({ file: 'm.tfx', text: attention }, { target: 'webgpu', passes: { debug: 2, log: (t) => lines.push(t) } });
    const g = c.graph;
    expect(c.graph).toBe(g);
    expect(c.ir).toBe(c.ir);
    void c.checked;
    // Debug level 2 prints one `pass NAME  ms` line per pass run: the pipeline once, not twice.
    const runs = lines.filter((l) => l.startsWith('pass ')).map((l) => l.split(/ +/)[1]);
    expect(runs).toEqual(pipelines.webgpu.map((p) => p.name));
  });

  it('lowers once: the plan is built from the program --emit kernels prints', () => {
    const c = compileModel({ file: 'm.tfx', text: attention });
    const k = lowerModel(c, { limits: lavapipeLimits });
    const program = k.program;
    expect(k.plan).toBe(k.plan);
    expect(k.program).toBe(program);
    // One plan step per lowered kernel, named after it (dedup maps a step to its first twin).
    expect(k.plan.steps.map((s) => s.kernel)).toEqual(program.kernels.map((x) => x.name));
  });

  it('ir is the graph before fusion, the same with --no-fuse; graph is after it', () => {
    const fused = compileModel({ file: 'm.tfx', text: attention }, { target: 'webgpu', passes: { locs: false } });
    const unfused = compileModel({ file: 'm.tfx', text: attention }, { target: 'webgpu', noFuse: true, passes: { locs: false } });
    expect(fused.irText).toContain(' = softmax ');
    expect(fused.irText).not.toContain('fused_attention');
    expect(fused.graphText).toContain(' = fused_attention ');
    expect(unfused.irText).toBe(fused.irText);
    expect(unfused.graphText).not.toContain('fused_attention');
    // The --no-fuse pipeline is the fused one less its fusion passes.
    expect(unfusedPipeline('webgpu').length).toBeLessThan(pipelines.webgpu.length);
  });

  it('parses without checking for the AST; checking reports once and every later read throws', () => {
    const bad = attention.replace('@ v', '@ transpose(v)');
    const sink = new DiagnosticSink();
    const c = compileModel({ file: 'bad.tfx', text: bad }, { diagnostics: sink });
    expect(c.ast?.items.length).toBe(7); // config, dims, q, k, v, o, model
    expect(sink.items).toHaveLength(0);
    expect(() => c.checked).toThrow(UserErrorsReported);
    const reported = sink.items.length;
    expect(sink.items.some((d) => d.severity === 'error' && d.code.startsWith('TFC2'))).toBe(true);
    expect(() => c.graph).toThrow(UserErrorsReported);
    expect(() => c.checked).toThrow(UserErrorsReported);
    expect(sink.items).toHaveLength(reported);
  });

  it('reads a dumped .ir file back as the checked graph; --set names only its dims', () => {
    const text = printGraph(compileModel({ file: 'm.tfx', text: attention }).checked);
    const c = compileModel({ file: 'm.ir', text }, { overrides: new Map([['T', 5]]) });
    expect(c.ast).toBeUndefined();
    expect(printGraph(c.checked)).toBe(text);
    const sink = new DiagnosticSink();
    const wrong = compileModel({ file: 'm.ir', text }, { overrides: new Map([['d', 5]]), diagnostics: sink });
    expect(() => wrong.checked).toThrow(UserErrorsReported);
    expect(sink.items.map((d) => d.code)).toEqual(['TFC305']);
  });

  it('a variant shares the checked graph and runs its own pipeline', () => {
    const c = compileModel({ file: 'm.tfx', text: attention }, { target: 'interp' });
    const w = c.variant({ target: 'webgpu' });
    expect(w.checked).toBe(c.checked);
    expect(printGraph(c.graph)).not.toContain('fused_attention');
    expect(printGraph(w.graph)).toContain('fused_attention');
    expect(w.unfused().checked).toBe(c.checked);
  });

  it('the -o folder holds model.ir (the fused graph), the manifest, every kernel and model.ts', async () => {
    const c = compileModel({ file: 'm.tfx', text: attention }, { passes: { locs: false } });
    const k = lowerModel(c, { limits: lavapipeLimits });
    const files = await k.files();
    expect(files.get('model.ir')).toBe(c.graphText);
    expect(JSON.parse(files.get('manifest.json') ?? '{}')).toMatchObject({ format: 'tfc-plan' });
    for (const kernel of k.plan.kernels) expect(files.get(`wgsl/${kernel.name}.wgsl`)).toBe(kernel.source.wgsl);
    expect(files.get('model.ts')).toBe(await k.hostModule());
    expect([...files.keys()].some((f) => f.startsWith('cuda/'))).toBe(false);
  });
});
