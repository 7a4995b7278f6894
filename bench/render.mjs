#!/usr/bin/env node
/**
 * Renders markdown from saved bench results, without measuring again.
 *
 *   node bench/render.mjs signaling turn       # test-artifacts/bench/<name>.json -> print
 *   node bench/render.mjs --write signaling    # ... and rewrite its BENCHMARKS.md section and summary rows
 *   node bench/render.mjs --json FILE          # one results file, whichever script wrote it
 *
 * Sections that BENCHMARKS.md keeps by hand around the tables (loss, turn-attack) are only
 * printed.
 */
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { loadResults, resultsPath, writeSection, writeSummary } from './lib/results.mjs';

const REPORTS = ['signaling', 'turn', 'peer', 'cluster', 'transports', 'loss', 'turn-attack', 'hotpaths'];
/** Their sections in BENCHMARKS.md are rewritten whole by their scripts. */
const WRITABLE = new Set(['signaling', 'turn', 'peer', 'cluster', 'transports', 'hotpaths']);

const { values: args, positionals } = parseArgs({
  options: { write: { type: 'boolean', default: false }, json: { type: 'string' } },
  allowPositionals: true,
});

const files = args.json ? [resultsPath(null, args.json)] : (positionals.length ? positionals : REPORTS).map((n) => resultsPath(n));
let rendered = 0;
for (const file of files) {
  if (!existsSync(file)) {
    if (positionals.length || args.json) throw new Error(`${file}: no such results file (run the bench script first)`);
    continue;
  }
  const results = loadResults(file);
  if (!REPORTS.includes(results.name)) throw new Error(`${file}: unknown results "${results.name}"`);
  const report = await import(`./report/${results.name}.mjs`);
  const { section, headlines } = report.render(results);
  console.log(`<!-- ${file} -->\n${section}\n`);
  rendered++;
  if (args.write && WRITABLE.has(results.name)) {
    writeSection(report.HEADING, section);
    if (headlines.length) writeSummary(report.SUMMARY, headlines);
    console.error(`${results.name}: section and summary rows rewritten`);
  }
}
if (!rendered) console.error('no results files in test-artifacts/bench/ (run a bench script first)');
