// Shared by the headless-Chromium tests: a vite server that takes the page's POSTed report, a
// Chromium pointed at it, and the teardown that stops both and removes the browser profile.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type InlineConfig, type ViteDevServer } from 'vite';

export const chromiumPath = '/usr/bin/chromium';

/** What every test page POSTs to /__result; each test extends it with its own fields. */
export interface PageReportBase {
  ok: boolean;
  error?: string;
}

export interface PageOptions {
  /** vite config to serve with (root, plugins, server.fs); the server always binds 127.0.0.1 on a free port. */
  config: InlineConfig;
  /** Extra GET routes answered with a fixed JSON body, e.g. the model the page fetches. */
  json?: Readonly<Record<string, string>>;
  /** Path and query of the page, starting with '/'. */
  path: string;
  /** Prefix of the temp folder for the Chromium profile. */
  profilePrefix: string;
  /** How long to wait for the page's report before failing with an error report. */
  timeoutMs: number;
}

/** One vite server and one headless Chromium per test file; `close()` in afterAll. */
export class ChromiumPage {
  private server: ViteDevServer | undefined;
  private chrome: ChildProcess | undefined;
  private profile: string | undefined;

  /** Serves the page, opens it in headless Chromium with WebGPU and waits for its POST to /__result. */
  async open<R extends PageReportBase>(o: PageOptions): Promise<R> {
    let deliver: (r: R) => void = () => undefined;
    const report = new Promise<R>((resolve) => (deliver = resolve));
    this.server = await createServer({
      ...o.config,
      configFile: false,
      logLevel: 'error',
      server: { host: '127.0.0.1', ...o.config.server, port: 0, strictPort: false, hmr: false },
      plugins: [
        ...(o.config.plugins ?? []),
        {
          name: 'tfc-page-report',
          configureServer(s) {
            for (const [route, body] of Object.entries(o.json ?? {}))
              s.middlewares.use(route, (_req, res) => {
                res.setHeader('content-type', 'application/json');
                res.end(body);
              });
            s.middlewares.use('/__result', (req, res) => {
              let body = '';
              req.on('data', (c: Buffer) => (body += c.toString()));
              req.on('end', () => {
                res.end('ok');
                deliver(JSON.parse(body) as R);
              });
            });
          },
        },
      ],
    });
    await this.server.listen();
    const addr = this.server.httpServer?.address();
    const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
    this.profile = mkdtempSync(join(tmpdir(), o.profilePrefix));
    this.chrome = spawn(
      chromiumPath,
      ['--headless=new', '--no-sandbox', '--enable-unsafe-webgpu', '--no-first-run', `--user-data-dir=${this.profile}`, `http://127.0.0.1:${port}${o.path}`],
      { stdio: 'ignore' },
    );
    const seconds = o.timeoutMs / 1000;
    const timeout = new Promise<R>((resolve) => setTimeout(() => resolve({ ok: false, error: `no report from the page within ${seconds} s` } as R), o.timeoutMs));
    return Promise.race([report, timeout]);
  }

  async close(): Promise<void> {
    await this.server?.close();
    await stopChromium(this.chrome, this.profile);
  }
}

/**
 * Kills Chromium and waits for it to exit, then removes its profile folder. Chromium's helper
 * processes (GPU, crashpad) can still be writing into the profile for a moment after the main
 * process exits, so a failed removal of this temp folder is retried and then left to the OS's
 * tmp cleanup: it says nothing about the test's result.
 */
export async function stopChromium(chrome: ChildProcess | undefined, profile: string | undefined): Promise<void> {
  if (chrome !== undefined && chrome.exitCode === null && chrome.signalCode === null) {
    const exited = new Promise((resolve) => chrome.once('exit', resolve));
    chrome.kill();
    await exited;
  }
  if (profile === undefined) return;
  try {
    rmSync(profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 300 });
  } catch (e) {
    process.stderr.write(`note: could not remove the Chromium profile ${profile}: ${String(e)}\n`);
  }
}
