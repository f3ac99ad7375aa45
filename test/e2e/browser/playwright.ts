// Headless Chromium driven through playwright-core (Debian's /usr/bin/chromium, not a downloaded
// browser) for tests that click and pick files in a page, and a vite server on 127.0.0.1 (WebGPU
// needs a secure context) on a free port. chromium.ts is the older fire-and-wait-for-a-POST helper.
import { chromium, type Browser } from 'playwright-core';
import { createServer, type InlineConfig, type ViteDevServer } from 'vite';
import { chromiumPath } from './chromium.js';

export { chromiumPath };

/** Serves `config` on 127.0.0.1 and returns the server and its base URL (with a trailing slash). */
export async function serve(config: InlineConfig): Promise<{ server: ViteDevServer; base: string }> {
  const server = await createServer({
    ...config,
    configFile: false,
    logLevel: 'error',
    server: { host: '127.0.0.1', ...config.server, port: 0, strictPort: false, hmr: false },
  });
  await server.listen();
  const addr = server.httpServer?.address();
  if (typeof addr !== 'object' || addr === null) throw new Error('vite did not report its port');
  return { server, base: `http://127.0.0.1:${addr.port}/` };
}

/** Headless Chromium with WebGPU (SwiftShader's adapter where there is no GPU). */
export function launch(): Promise<Browser> {
  return chromium.launch({ executablePath: chromiumPath, headless: true, args: ['--headless=new', '--no-first-run', '--enable-unsafe-webgpu'] });
}
