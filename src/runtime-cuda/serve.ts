// Client of a launcher in serve mode (`launcher --serve WEIGHTS`, codegen/cuda/runtime/tfc_launcher.h
// documents the protocol): spawns it, waits for the ready line (weights uploaded once), then sends
// one request at a time (a JSON header line + raw little-endian input bytes) and reads the answer
// (a JSON line + the fetched outputs' bytes). Outputs named in `keep` stay on the device and are
// bound to the next request's inputs through `device`, with no host round trip.
import { type ChildProcessByStdio, spawn } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { LauncherError } from './launcher.js';

/** A host tensor of a request, in a safetensors dtype. */
export interface ServeInput {
  readonly name: string;
  readonly dtype: 'F32' | 'I32';
  readonly shape: readonly number[];
  readonly data: Float32Array | Int32Array;
}

export interface ServeRequest {
  readonly dims?: Readonly<Record<string, number>>;
  readonly inputs?: readonly ServeInput[];
  /** Input name -> name of an output the previous request kept on the device. */
  readonly device?: Readonly<Record<string, string>>;
  readonly keep?: readonly string[];
  readonly fetch?: readonly string[];
}

export interface ServeOutput {
  readonly dtype: 'F32' | 'I32';
  readonly shape: readonly number[];
  readonly data: Float32Array | Int32Array;
}

export interface ServeResponse {
  readonly outputs: ReadonlyMap<string, ServeOutput>;
  /** Bytes this request copied host -> device and device -> host (the launcher's counters). */
  readonly h2dBytes: number;
  readonly d2hBytes: number;
  /** Kernel time of the request (cudaEvents on a GPU; wall time in the emulator). */
  readonly ms: number;
}

/** A request the launcher refused (bad header, unknown name, wrong shape): nothing ran, the session goes on. */
export class ServeRequestError extends Error {}

type Child = ChildProcessByStdio<Writable, Readable, Readable>;

export class LauncherServer {
  private readonly chunks: Buffer[] = [];
  private buffered = 0;
  private wake: (() => void) | undefined;
  private exited: { code: number | null; signal: string | null } | undefined;
  private stderr = '';
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly child: Child,
    /** Bytes the launcher copied to the device while loading (the weights). */
    public weightBytes = 0,
  ) {
    child.stdout.on('data', (b: Buffer) => {
      this.chunks.push(b);
      this.buffered += b.length;
      this.wake?.();
    });
    child.stderr.on('data', (b: Buffer) => {
      if (this.stderr.length < 16384) this.stderr += b.toString('utf8');
    });
    child.on('error', (e) => {
      // spawn failed (no such file, not executable): as if it exited, with the reason.
      this.stderr += e.message;
      this.exited ??= { code: null, signal: null };
      this.wake?.();
    });
    child.on('exit', (code, signal) => {
      this.exited = { code, signal };
      this.wake?.();
    });
    child.stdin.on('error', () => undefined); // EPIPE after the launcher died: reported by the next read
  }

  /** Starts `exe --serve weights` and waits until the weights are on the device. */
  static async start(exe: string, weights: string): Promise<LauncherServer> {
    const child = spawn(exe, ['--serve', weights], { stdio: ['pipe', 'pipe', 'pipe'] });
    const server = new LauncherServer(child);
    const ready = await server.readHeader();
    if (ready['ok'] !== true) throw new LauncherError(`CUDA launcher did not start: ${String(ready['error'] ?? JSON.stringify(ready))}`);
    server.weightBytes = Number(ready['h2d'] ?? 0);
    return server;
  }

  /** Sends one request and reads its answer (answers come in request order). */
  request(req: ServeRequest): Promise<ServeResponse> {
    const header = JSON.stringify({
      ...(req.dims !== undefined ? { dims: req.dims } : {}),
      inputs: (req.inputs ?? []).map((i) => ({ name: i.name, dtype: i.dtype, shape: i.shape })),
      ...(req.device !== undefined ? { device: req.device } : {}),
      keep: req.keep ?? [],
      fetch: req.fetch ?? [],
    });
    const payload = Buffer.concat((req.inputs ?? []).map((i) => Buffer.from(i.data.buffer, i.data.byteOffset, i.data.byteLength)));
    return this.requestRaw(`${header}\n`, payload);
  }

  /**
   * Sends raw bytes as a request (tests of malformed requests use it directly). The bytes are
   * written at once (the launcher answers in order); answers are read one after another.
   */
  requestRaw(header: string, payload: Uint8Array = new Uint8Array(0)): Promise<ServeResponse> {
    if (this.exited === undefined) {
      this.child.stdin.write(header);
      if (payload.length > 0) this.child.stdin.write(payload);
    }
    const next = this.queue.then(async () => {
      const h = await this.readHeader();
      if (h['ok'] !== true) {
        const msg = String(h['error'] ?? JSON.stringify(h));
        throw h['fatal'] === true ? new LauncherError(`CUDA launcher: ${msg}`) : new ServeRequestError(msg);
      }
      const outputs = new Map<string, ServeOutput>();
      for (const o of (h['outputs'] ?? []) as { name: string; dtype: 'F32' | 'I32'; shape: number[] }[]) {
        const n = o.shape.reduce((a, b) => a * b, 1);
        const bytes = await this.readBytes(n * 4);
        const copy = new Uint8Array(bytes).buffer; // aligned, independent of the stream's chunks
        outputs.set(o.name, { dtype: o.dtype, shape: o.shape, data: o.dtype === 'I32' ? new Int32Array(copy, 0, n) : new Float32Array(copy, 0, n) });
      }
      return { outputs, h2dBytes: Number(h['h2d'] ?? 0), d2hBytes: Number(h['d2h'] ?? 0), ms: Number(h['ms'] ?? 0) };
    });
    this.queue = next.catch(() => undefined);
    return next;
  }

  /**
   * Closes stdin (EOF: the launcher exits 0 at a request boundary, 1 inside one) and waits for the
   * launcher to exit; returns its exit code. Await outstanding requests first to let them finish.
   */
  async close(): Promise<number | null> {
    if (this.exited === undefined) {
      this.child.stdin.end();
      await new Promise<void>((resolve) => {
        if (this.exited !== undefined) resolve();
        else this.child.on('exit', () => resolve());
      });
    }
    return this.exited?.code ?? null;
  }

  /** Kills the launcher (after an error, when the stream may be out of step). */
  kill(): void {
    if (this.exited === undefined) this.child.kill('SIGKILL');
  }

  private async waitFor(pred: () => boolean): Promise<void> {
    while (!pred()) {
      if (this.exited !== undefined) {
        const how = this.exited.signal !== null ? `was killed by ${this.exited.signal}` : `exited ${this.exited.code ?? '?'}`;
        throw new LauncherError(`CUDA launcher ${how}: ${this.stderr.trim()}`);
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
  }

  private take(n: number): Buffer {
    const all = this.chunks.length === 1 ? (this.chunks[0] ?? Buffer.alloc(0)) : Buffer.concat(this.chunks);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks.length = 0;
    if (rest.length > 0) this.chunks.push(rest);
    this.buffered = rest.length;
    return out;
  }

  private readBytes(n: number): Promise<Buffer> {
    return this.waitFor(() => this.buffered >= n).then(() => this.take(n));
  }

  private async readHeader(): Promise<Record<string, unknown>> {
    let at = -1;
    await this.waitFor(() => {
      at = this.chunks.length === 0 ? -1 : Buffer.concat(this.chunks).indexOf(10);
      return at >= 0;
    });
    const line = this.take(at + 1).toString('utf8');
    try {
      return JSON.parse(line) as Record<string, unknown>;
    } catch {
      throw new LauncherError(`CUDA launcher answered something that is not JSON: ${line.slice(0, 200)}`);
    }
  }
}
