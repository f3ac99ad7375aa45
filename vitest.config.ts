// The test suite as projects by what a file needs (`npx vitest run --project NAME`):
//   unit, unit-mocked, fuzz: the compiler alone (no GPU, browser, nvcc or Python): `npm run test:fast`
//   cli:     the CLI end to end in-process and spawned (its `tfc run` picks WebGPU when an adapter exists)
//   webgpu:  Dawn + lavapipe runs          cuda:    nvcc and the CUDA emulator (g++)
//   browser: headless Chromium             oracle:  PyTorch / Python oracles
//   package: npm pack + install + a full build in a clean copy
// `npm test` runs them all. unit runs its files in shared worker processes (isolate: false): most
// unit files take well under a second, and importing the compiler again in a fresh process per
// file cost more than the tests themselves. A file that mocks a module (vi.mock) must not share
// its process, so it goes in unit-mocked.
import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';
import { LongestFirst } from './test/sequencer.js';

/** Files of `unit` that need a device, Python or module mocks (they live in test/unit for their subject). */
const notUnit = ['test/unit/bench/bench-run.test.ts', 'test/unit/runtime/tokenizer.test.ts', 'test/unit/cli/tune.test.ts'];
/** test/e2e files that need no device (in unit) or one that cli does not have (webgpu, oracle, package). */
const e2eElsewhere = [
  'test/e2e/examples-check.test.ts',
  'test/e2e/compile-output.test.ts',
  'test/e2e/cli-webgpu.test.ts',
  'test/e2e/cli-dtype.test.ts',
  'test/e2e/train-charlm.test.ts',
  'test/e2e/oracle.test.ts',
  'test/e2e/grad-oracle.test.ts',
  'test/e2e/checkpoint.test.ts',
  'test/e2e/package.test.ts',
];

export default defineConfig({
  test: {
    setupFiles: ['test/setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // One fork per core. vitest's default for `run` is cores - 1, i.e. ONE worker on a 2-core
    // machine: the files then run one after another while the other core idles on every wait for
    // nvcc, Python or Chromium. Measured on the quiet 2-core VM: `npm run test:fast` 101 s with
    // the default, 60 s with two workers (docs/testing.md).
    maxWorkers: availableParallelism(),
    // Longest files first over all projects (test/sequencer.ts): vitest's default runs the projects
    // in name order, leaving the webgpu project's long files for the end.
    sequence: { sequencer: LongestFirst },
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts', 'test/golden/**/*.test.ts', 'test/e2e/examples-check.test.ts', 'test/e2e/compile-output.test.ts'],
          exclude: notUnit,
          isolate: false,
        },
      },
      { extends: true, test: { name: 'unit-mocked', include: ['test/unit/cli/tune.test.ts'] } },
      // Property tests: seconds of CPU each, so minutes of wall time on a loaded machine.
      { extends: true, test: { name: 'fuzz', include: ['test/fuzz/**/*.test.ts'], testTimeout: 600_000 } },
      // Every other end-to-end file (a new one lands here unless another project names it).
      { extends: true, test: { name: 'cli', include: ['test/e2e/*.test.ts'], exclude: [...e2eElsewhere] } },
      { extends: true, test: { name: 'webgpu', include: ['test/webgpu/**/*.test.ts', 'test/e2e/cli-webgpu.test.ts', 'test/e2e/cli-dtype.test.ts', 'test/e2e/train-charlm.test.ts', 'test/unit/bench/bench-run.test.ts'] } },
      { extends: true, test: { name: 'cuda', include: ['test/cuda/**/*.test.ts'] } },
      { extends: true, test: { name: 'browser', include: ['test/e2e/browser/**/*.test.ts'] } },
      { extends: true, test: { name: 'oracle', include: ['test/e2e/oracle.test.ts', 'test/e2e/grad-oracle.test.ts', 'test/e2e/checkpoint.test.ts', 'test/unit/runtime/tokenizer.test.ts'] } },
      { extends: true, test: { name: 'package', include: ['test/e2e/package.test.ts'] } },
    ],
  },
});
