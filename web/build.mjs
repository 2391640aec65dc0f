// Builds the web app into dist/: index.html at the root, the bundle and styles under assets/.
// Everything comes from node_modules; nothing is fetched from a CDN at run time.
import { build } from 'esbuild';
import { copyFile, mkdir, rm } from 'node:fs/promises';

const started = Date.now();
await rm('dist', { recursive: true, force: true });
await mkdir('dist/assets', { recursive: true });
await build({
  entryPoints: ['src/main.tsx'],
  bundle: true,
  minify: true,
  sourcemap: true,
  format: 'esm',
  target: 'es2020',
  jsx: 'automatic',
  jsxImportSource: 'preact',
  outfile: 'dist/assets/app.js',
  logLevel: 'warning',
});
await copyFile('index.html', 'dist/index.html');
await copyFile('src/styles.css', 'dist/assets/app.css');
console.error(`[web] built dist/ in ${Date.now() - started} ms`);
