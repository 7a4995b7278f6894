import type { BuildOptions, BuildResult } from 'esbuild';

/** esbuild options of the library bundle (peer/index.ts -> rallypoint.min.js). */
export function libraryOptions(outdir: string): BuildOptions & { metafile: true };
/** Builds the library bundle, the demo and its page into `outdir` (default dist/web). */
export function buildWeb(options?: { outdir?: string }): Promise<{ library: BuildResult<{ metafile: true }> }>;
