// Builds the page of `kgrec browse` into ../static: app.js (one bundle of the page, the
// neo4j-driver browser build and cytoscape), app.css and index.html. Run by scripts/setup.sh
// after `npm ci`; nothing is fetched at run time.
import { build } from 'esbuild';
import { copyFile, mkdir, rm } from 'node:fs/promises';

const out = new URL('../static/', import.meta.url);
await rm(out, { recursive: true, force: true });
await mkdir(out, { recursive: true });

await build({
  entryPoints: [new URL('./src/main.js', import.meta.url).pathname],
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['es2020'],
  minify: true,
  sourcemap: false,
  legalComments: 'linked',
  outfile: new URL('app.js', out).pathname,
  logLevel: 'warning',
});
for (const name of ['index.html', 'app.css']) {
  await copyFile(new URL(`./src/${name}`, import.meta.url), new URL(name, out));
}
