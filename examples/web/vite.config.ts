// `npx vite examples/web` serves the page on http://127.0.0.1:5173/; `npx vite build examples/web`
// writes a static site to examples/web/dist (serve it with `npx vite preview examples/web`).
import { defineConfig } from 'vite';
import { webConfig } from './config.js';

export default defineConfig(webConfig());
