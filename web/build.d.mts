import type { BuildOptions, Metafile } from 'esbuild';

/** Property names the bundle may shorten: only the library reads or writes them. */
export const INTERNAL_PROPS: readonly string[];
/** esbuild options of the library bundle (peer/index.ts -> rallypoint.min.js), before terser. */
export function libraryOptions(outdir: string): BuildOptions & { metafile: true; write: false };
/** Builds rallypoint.min.js and its map into `outdir`: esbuild, then terser; the file the budget measures. */
export function buildLibrary(outdir: string): Promise<{ code: string; metafile: Metafile }>;
/** Builds the library bundle, the demo and its page into `outdir` (default dist/web). */
export function buildWeb(options?: { outdir?: string }): Promise<{ library: { code: string; metafile: Metafile } }>;
