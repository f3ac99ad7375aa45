/// <reference types="@webgpu/types" preserve="true" />
// WebGPU device acquisition for the runtime: the same code path for a browser (`navigator.gpu`)
// and for Node (the `webgpu` npm package, Dawn; on CI Mesa lavapipe). The Node package is
// imported dynamically through a variable so that browser bundles never pull it in.

/** The features a plan's kernels may need; requested whenever the adapter offers them. */
export const wantedFeatures = ['subgroups', 'shader-f16', 'timestamp-query'] as const;

/**
 * Limits raised to the adapter's own value (the defaults are lower: 16384 B workgroup storage
 * and 256 invocations, while lavapipe offers 32768 and 1024).
 */
const raisedLimits = [
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxStorageBuffersPerShaderStage',
] as const;

export interface AdapterSummary {
  readonly vendor: string;
  readonly architecture: string;
  readonly device: string;
  readonly description: string;
  /** Subgroup sizes the adapter reports (0 when it does not say). */
  readonly subgroupMinSize: number;
  readonly subgroupMaxSize: number;
}

export interface AcquiredDevice {
  readonly device: GPUDevice;
  readonly adapterInfo: AdapterSummary;
  /** Features enabled on the device (a subset of `wantedFeatures` plus what the adapter adds). */
  readonly features: ReadonlySet<string>;
  readonly limits: GPUSupportedLimits;
  readonly gpu: GPU;
  /** Where the GPU object came from. */
  readonly host: 'browser' | 'node';
  /** Resolves when the device is lost (also after `device.destroy()`). */
  readonly lost: Promise<GPUDeviceLostInfo>;
}

export interface AcquireOptions {
  readonly powerPreference?: GPUPowerPreference;
  /** Features that must be present; acquisition fails with a clear message otherwise. */
  readonly requiredFeatures?: readonly string[];
  /** Use this GPU object instead of looking one up (tests, custom Dawn builds). */
  readonly gpu?: GPU;
}

/** Thrown when no WebGPU implementation or adapter is available; the message says what to do. */
export class NoWebGpuError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NoWebGpuError';
  }
}

interface NodeWebGpuModule {
  create(options: string[]): GPU;
  globals: object;
}

// The object `create([])` returns must stay referenced for the life of the process: Dawn for Node
// crashes at exit when it is collected while devices are alive.
let nodeGpu: GPU | undefined;

function isNode(): boolean {
  const p = (globalThis as { process?: { versions?: { node?: string } } }).process;
  return typeof p?.versions?.node === 'string';
}

function browserGpu(): GPU | undefined {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  return nav?.gpu;
}

async function loadNodeGpu(): Promise<GPU> {
  if (nodeGpu !== undefined) return nodeGpu;
  const env = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env;
  // Mesa's Vulkan loader warns and may fail without a runtime dir (headless CI, containers).
  if (env !== undefined && env['XDG_RUNTIME_DIR'] === undefined) env['XDG_RUNTIME_DIR'] = '/tmp';
  const specifier = 'webgpu';
  let mod: NodeWebGpuModule;
  try {
    mod = (await import(/* @vite-ignore */ specifier)) as NodeWebGpuModule;
  } catch (e) {
    throw new NoWebGpuError(
      `WebGPU is not available in Node: the 'webgpu' package could not be loaded (${String(e)}); ` +
        `install it with 'npm install webgpu' or use --target interp`,
    );
  }
  // GPUBufferUsage, GPUMapMode, GPUShaderStage, ... are globals in a browser; Dawn exports them.
  Object.assign(globalThis, mod.globals);
  nodeGpu = mod.create([]);
  return nodeGpu;
}

/** The GPU object for this host, or undefined with the reason. */
async function findGpu(): Promise<{ gpu: GPU; host: 'browser' | 'node' } | { reason: string }> {
  const nav = browserGpu();
  if (nav !== undefined) return { gpu: nav, host: 'browser' };
  if (isNode()) {
    try {
      return { gpu: await loadNodeGpu(), host: 'node' };
    } catch (e) {
      return { reason: e instanceof Error ? e.message : String(e) };
    }
  }
  return {
    reason:
      'this browser has no navigator.gpu (WebGPU is off or unsupported; Chromium needs a secure context ' +
      'such as http://127.0.0.1 and, headless, --enable-unsafe-webgpu)',
  };
}

/**
 * Whether a WebGPU adapter can be obtained here. On false, `reason` is a one-line message fit for
 * the CLI's fallback warning ("falling back to --target interp: ...").
 */
export async function hasWebGpu(): Promise<{ readonly ok: true } | { readonly ok: false; readonly reason: string }> {
  const found = await findGpu();
  if ('reason' in found) return { ok: false, reason: found.reason };
  const adapter = await found.gpu.requestAdapter();
  if (adapter === null) return { ok: false, reason: noAdapterReason(found.host) };
  return { ok: true };
}

function noAdapterReason(host: 'browser' | 'node'): string {
  return host === 'node'
    ? 'WebGPU found no adapter: install a Vulkan driver (on Debian, Mesa lavapipe from bookworm-backports: ' +
        'mesa-vulkan-drivers) and set XDG_RUNTIME_DIR'
    : 'navigator.gpu.requestAdapter() returned null (no usable GPU or WebGPU blocked)';
}

function summarize(info: GPUAdapterInfo | undefined): AdapterSummary {
  const i = (info ?? {}) as Partial<GPUAdapterInfo> & { subgroupMinSize?: number; subgroupMaxSize?: number };
  return {
    vendor: i.vendor ?? '',
    architecture: i.architecture ?? '',
    device: i.device ?? '',
    description: i.description ?? '',
    subgroupMinSize: i.subgroupMinSize ?? 0,
    subgroupMaxSize: i.subgroupMaxSize ?? 0,
  };
}

/**
 * Acquires an adapter and a device with the features in `wantedFeatures` the adapter offers and
 * with the compute limits raised to the adapter's. Throws `NoWebGpuError` when WebGPU is missing.
 */
export async function acquireDevice(opts: AcquireOptions = {}): Promise<AcquiredDevice> {
  let gpu: GPU;
  let host: 'browser' | 'node';
  if (opts.gpu !== undefined) {
    gpu = opts.gpu;
    host = browserGpu() === opts.gpu ? 'browser' : 'node';
  } else {
    const found = await findGpu();
    if ('reason' in found) throw new NoWebGpuError(found.reason);
    gpu = found.gpu;
    host = found.host;
  }
  const adapterOpts: GPURequestAdapterOptions = {};
  if (opts.powerPreference !== undefined) adapterOpts.powerPreference = opts.powerPreference;
  const adapter = await gpu.requestAdapter(adapterOpts);
  if (adapter === null) throw new NoWebGpuError(noAdapterReason(host));

  const missing = (opts.requiredFeatures ?? []).filter((f) => !adapter.features.has(f));
  if (missing.length > 0) {
    throw new NoWebGpuError(`the WebGPU adapter lacks required feature(s): ${missing.join(', ')}`);
  }
  const requiredFeatures = [...new Set([...wantedFeatures, ...(opts.requiredFeatures ?? [])])].filter((f) =>
    adapter.features.has(f),
  ) as GPUFeatureName[];
  const requiredLimits: Record<string, number> = {};
  for (const name of raisedLimits) {
    const v = adapter.limits[name];
    if (typeof v === 'number') requiredLimits[name] = v;
  }
  const device = await adapter.requestDevice({ requiredFeatures, requiredLimits });
  return {
    device,
    adapterInfo: summarize(adapter.info),
    features: new Set([...device.features]),
    limits: device.limits,
    gpu,
    host,
    lost: device.lost,
  };
}

/** True on Mesa's CPU Vulkan driver (llvmpipe / lavapipe), whose known bugs tests document. */
export function isLavapipe(info: AdapterSummary): boolean {
  return /llvmpipe|lavapipe/i.test(`${info.device} ${info.description}`);
}
