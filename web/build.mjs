// Builds the browser files into dist/web/:
//   rallypoint.min.js  the peer library and signaling client (peer/index.ts), ESM, minified
//   demo.js            the demo game (web/demo/demo.ts); imports ./rallypoint.min.js at run time
//   index.html         the demo page (web/demo/index.html)
// `npm run build` runs it after tsc; `npm start` serves dist/web at /.
import { build } from 'esbuild';
import { copyFile, mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

/** What every browser file is built with: one minified ES module for current browsers. */
const browserModule = {
  bundle: true,
  minify: true,
  format: 'esm',
  platform: 'browser',
  target: ['es2022'],
  sourcemap: true,
  legalComments: 'none',
  logLevel: 'warning',
};

/** esbuild options of the library bundle (the size budget is measured on exactly this). */
export function libraryOptions(outdir) {
  return { ...browserModule, entryPoints: { rallypoint: `${root}peer/index.ts` }, outdir, entryNames: '[name].min', metafile: true };
}

/**
 * The demo imports the library from `../../peer/index.js` for its types; in the bundle that
 * import becomes `./rallypoint.min.js`, so the page runs the very bundle the budget measures.
 */
const libraryAsExternal = {
  name: 'rallypoint-external',
  setup(b) {
    b.onResolve({ filter: /\/peer\/index\.js$/ }, () => ({ path: './rallypoint.min.js', external: true }));
  },
};

export async function buildWeb({ outdir = `${root}dist/web` } = {}) {
  await mkdir(outdir, { recursive: true });
  const library = await build(libraryOptions(outdir));
  await build({ ...browserModule, entryPoints: { demo: `${root}web/demo/demo.ts` }, outdir, plugins: [libraryAsExternal] });
  await copyFile(`${root}web/demo/index.html`, `${outdir}/index.html`);
  return { library };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await buildWeb();
