// Every example model: build its graph, then print -> parse -> print gives identical text, the
// parsed graph deep-equals the built one (locs included), and both graphs verify. Also the
// shared graph passes keep each example valid (the driver verifies after every pass).
import { readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { checkSource } from '../../../src/check/check-source.js';
import { DiagnosticSink } from '../../../src/diag/diagnostic.js';
import { parseGraph } from '../../../src/graph/parse.js';
import { printGraph } from '../../../src/graph/print.js';
import { verifyGraph } from '../../../src/graph/verify.js';
import { runPipeline } from '../../../src/passes/driver.js';
import { createPassContext } from '../../../src/passes/pass.js';
import { graphPasses } from '../../../src/passes/pipeline.js';
import { exampleFiles } from '../../helpers/examples.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '../../..');

const examples = exampleFiles.map((f) => join(root, f));

describe('IR round trip over every example', () => {
  it('finds the examples', () => {
    expect(examples.length).toBeGreaterThan(0);
  });
  for (const path of examples) {
    const file = relative(root, path);
    it(`${file}: print -> parse -> print is identical and the graph verifies`, () => {
      const r = checkSource(readFileSync(path, 'utf8'), file);
      expect(r.diagnostics.map((d) => `${d.loc.line}:${d.loc.col} ${d.code} ${d.message}`)).toEqual([]);
      const g = r.graph;
      if (g === undefined) throw new Error(`${file}: no graph`);
      expect(verifyGraph(g)).toEqual([]);
      const text = printGraph(g);
      const sink = new DiagnosticSink();
      const back = parseGraph(text, `${file}.ir`, sink);
      expect(sink.items.map((d) => `${d.loc.line}:${d.loc.col} ${d.message}`)).toEqual([]);
      if (back === undefined) throw new Error('no graph parsed');
      expect(printGraph(back)).toBe(text);
      // Node.scope (kernel names) is not part of the IR text: compare without it.
      expect(back).toEqual({ ...g, nodes: g.nodes.map(({ scope: _scope, ...n }) => n) });
      expect(verifyGraph(back)).toEqual([]);
      // Without locs the text still round-trips.
      const bare = printGraph(g, { locs: false });
      const back2 = parseGraph(bare, `${file}.ir`, new DiagnosticSink());
      expect(back2 === undefined ? '' : printGraph(back2, { locs: false })).toBe(bare);
    });
    it(`${file}: the shared graph passes keep it valid`, () => {
      const g = checkSource(readFileSync(path, 'utf8'), file).graph;
      if (g === undefined) throw new Error(`${file}: no graph`);
      const out = runPipeline(g, graphPasses, createPassContext({ verify: true }));
      expect(out.outputs.map((o) => o.name)).toEqual(g.outputs.map((o) => o.name));
      expect(out.nodes.length).toBeLessThanOrEqual(g.nodes.length);
    });
  }
});
