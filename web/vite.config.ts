import { defineConfig } from 'vite';

// The API server the dev server and `vite preview` forward /api to.
const api = process.env.FLUO_API ?? 'http://127.0.0.1:18080';

// The Content-Security-Policy FLUO serves the console with; `vite preview` uses it too,
// so that a preview run shows any violation.
const csp =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; " +
  "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

export default defineConfig({
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    chunkSizeWarningLimit: 900,
  },
  server: {
    fs: { allow: ['..'] },
    proxy: { '/api': { target: api, changeOrigin: false } },
  },
  preview: {
    proxy: { '/api': { target: api, changeOrigin: false } },
    headers: { 'content-security-policy': csp, 'x-content-type-options': 'nosniff' },
  },
});
