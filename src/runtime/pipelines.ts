// The session's compute pipelines, cached per device and keyed by entry point, layout and WGSL
// source: a second session on the same device (another model sharing kernels, or the same model
// at other dims) builds only what the cache lacks.
import type { PlanKernel } from '../kernel/plan/plan.js';
import { RuntimeError } from './errors.js';
import { stageCompute } from './gpu-flags.js';

export interface BuiltKernel {
  readonly pipeline: GPUComputePipeline;
  readonly layout: GPUBindGroupLayout;
}

export interface DeviceCache {
  readonly pipelines: Map<string, Promise<BuiltKernel>>;
  /** Pipelines already dispatched once by `warmUp`. */
  readonly warm: WeakSet<GPUComputePipeline>;
  created: number;
}

const deviceCaches = new WeakMap<GPUDevice, DeviceCache>();

function cacheFor(device: GPUDevice): DeviceCache {
  let c = deviceCaches.get(device);
  if (c === undefined) {
    c = { pipelines: new Map(), warm: new WeakSet(), created: 0 };
    deviceCaches.set(device, c);
  }
  return c;
}

/** Pipelines ever created on this device by the runtime (a test asserts it stays put when T changes). */
export function pipelineCreations(device: GPUDevice): number {
  return deviceCaches.get(device)?.created ?? 0;
}

function layoutEntries(k: PlanKernel): GPUBindGroupLayoutEntry[] {
  const entries: GPUBindGroupLayoutEntry[] = k.slots.map((s) => ({
    binding: s.binding,
    visibility: stageCompute,
    buffer: { type: s.access === 'read' ? 'read-only-storage' : 'storage' },
  }));
  if (k.uniforms.length > 0) {
    entries.push({ binding: k.uniformBinding, visibility: stageCompute, buffer: { type: 'uniform' } });
  }
  return entries.sort((a, b) => a.binding - b.binding);
}

/**
 * The device cache's key: entry point, layout and the WGSL without its whole-line comments. The
 * header comments name the kernel and its source location, so the same kernel compiled from two
 * models (GPT-2 and its variants share most kernels) would otherwise be compiled again; lavapipe
 * and SwiftShader spend most of a model's load in these compiles.
 */
export function pipelineKey(k: PlanKernel): string {
  const layout = layoutEntries(k)
    .map((e) => `${e.binding}:${e.buffer?.type ?? ''}`)
    .join(',');
  const code = k.source.wgsl
    .split('\n')
    .filter((l) => !l.trimStart().startsWith('//'))
    .join('\n');
  return `${k.entryPoint}\n${layout}\n${code}`;
}

async function buildKernel(device: GPUDevice, k: PlanKernel): Promise<BuiltKernel> {
  const layout = device.createBindGroupLayout({ label: k.name, entries: layoutEntries(k) });
  const module = device.createShaderModule({ label: k.name, code: k.source.wgsl });
  try {
    const pipeline = await device.createComputePipelineAsync({
      label: k.name,
      layout: device.createPipelineLayout({ label: k.name, bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: k.entryPoint },
    });
    return { pipeline, layout };
  } catch (e) {
    const info = await module.getCompilationInfo();
    const msgs = info.messages
      .filter((m) => m.type === 'error')
      .map((m) => `  ${k.name}.wgsl:${m.lineNum}:${m.linePos}: ${m.message}`);
    throw new RuntimeError(
      'plan',
      `kernel ${k.name} (from ${k.locs.join(', ') || 'unknown location'}) was rejected by the WebGPU shader compiler: ` +
        `${e instanceof Error ? e.message : String(e)}${msgs.length > 0 ? `\n${msgs.join('\n')}` : ''}`,
    );
  }
}

export interface SessionPipelines {
  readonly cache: DeviceCache;
  /** By kernel name (kernels of equal source share one pipeline). */
  readonly built: ReadonlyMap<string, BuiltKernel>;
  /** Pipelines this session had to create, and found already built in the device's cache. */
  readonly created: number;
  readonly reused: number;
}

/** Builds (or finds in the device's cache) one pipeline per kernel; `onPipeline(done, total)` as each is ready. */
export async function buildPipelines(
  device: GPUDevice,
  kernels: ReadonlyMap<string, PlanKernel>,
  unlessLost: <T>(p: Promise<T>) => Promise<T>,
  onPipeline?: (done: number, total: number) => void,
): Promise<SessionPipelines> {
  const cache = cacheFor(device);
  const built = new Map<string, BuiltKernel>();
  let created = 0;
  let reused = 0;
  let ready = 0;
  await Promise.all(
    [...kernels.values()].map(async (k) => {
      const key = pipelineKey(k);
      let p = cache.pipelines.get(key);
      if (p === undefined) {
        p = buildKernel(device, k);
        cache.pipelines.set(key, p);
        cache.created++;
        created++;
        p.catch(() => cache.pipelines.delete(key));
      } else {
        reused++;
      }
      built.set(k.name, await unlessLost(p));
      onPipeline?.(++ready, kernels.size);
    }),
  );
  return { cache, built, created, reused };
}
