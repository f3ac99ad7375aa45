// `npx vite examples/web` serves the page on http://127.0.0.1:5173/ (the module in out/web/model.ts,
// the files of $TFC_CHECKPOINT, or charlm's, under checkpoint/: see config.ts); `npx vite build
// examples/web` writes a static site to examples/web/dist (serve it with `npx vite preview examples/web`).
import { defineConfig } from 'vite';
import { webConfig } from './config.js';

export default defineConfig(webConfig());
