// Builds the page of `kgrec browse` into ../static: app.js (one bundle of the page, the
// neo4j-driver browser build and @neo4j-nvl/base), app.css and index.html. Run by
// scripts/setup.sh after `npm ci`; nothing is fetched at run time.
import { build } from 'esbuild';
import { copyFile, mkdir, rm } from 'node:fs/promises';

const out = new URL('../static/', import.meta.url);
await rm(out, { recursive: true, force: true });
await mkdir(out, { recursive: true });

// NVL imports a usage-analytics client for its side effects; the page sends nothing anywhere
// but to Neo4j, so it is replaced by an empty module.
const noAnalytics = {
  name: 'no-analytics',
  setup(b) {
    b.onResolve({ filter: /^@segment\/analytics-next$/ }, () => ({ path: 'empty', namespace: 'empty' }));
    b.onLoad({ filter: /.*/, namespace: 'empty' }, () => ({ contents: 'export {};', loader: 'js' }));
  },
};

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
  plugins: [noAnalytics],
  logLevel: 'warning',
});
for (const name of ['index.html', 'app.css']) {
  await copyFile(new URL(`./src/${name}`, import.meta.url), new URL(name, out));
}
