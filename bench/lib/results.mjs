/**
 * Where a bench run's figures go. A script measures into a JSON file (its results, the
 * options it ran with, the machine), then renders markdown from that JSON alone
 * (bench/report/<name>.mjs), so `node bench/render.mjs` can re-render a section, or the
 * summary table, without measuring again.
 *
 * BENCHMARKS.md: each script owns one "## " section, replaced whole, and its rows of the
 * summary table at the top (between the SUMMARY markers), replaced whole too.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const BENCHMARKS = join(ROOT, 'BENCHMARKS.md');
const PREAMBLE = '# Benchmarks\n\nFigures from one machine; compare ratios, not absolute numbers.\n';

/** The results file of script `name`: `json` when given, else test-artifacts/bench/<name>.json. */
export const resultsPath = (name, json) => (json ? resolve(json) : join(ROOT, 'test-artifacts', 'bench', `${name}.json`));

/** Writes `results` ({ name, machine, config, ... }) as JSON; returns the file. */
export function saveResults(name, results, json) {
  const file = resultsPath(name, json);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify(results, (_, v) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v), 1)}\n`);
  return file;
}

/** Reads a results file back; NaN and Infinity, written as strings, come back as numbers. */
export function loadResults(file) {
  return JSON.parse(readFileSync(file, 'utf8'), (_, v) => (v === 'NaN' || v === 'Infinity' || v === '-Infinity' ? Number(v) : v));
}

/**
 * Replaces the section of BENCHMARKS.md whose heading line is `heading` (exactly, trailing
 * blanks aside), up to the next "## " line, with `section`; appends it if absent.
 */
export function writeSection(heading, section, file = BENCHMARKS) {
  let text = existsSync(file) ? readFileSync(file, 'utf8') : PREAMBLE;
  const re = new RegExp(`^${heading.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}[ \\t]*$`, 'm');
  const start = text.search(re);
  if (start === -1) {
    text = `${text.trimEnd()}\n\n${section.trimEnd()}\n`;
  } else {
    const after = text.slice(start).search(/\n## /);
    const rest = after === -1 ? '' : text.slice(start + after + 1);
    text = `${text.slice(0, start)}${section.trimEnd()}\n${rest ? `\n${rest}` : ''}`;
  }
  writeFileSync(file, text);
  return file;
}

// ---- the summary table ------------------------------------------------------------------

const BEGIN = '<!-- SUMMARY: rows written by the bench scripts (bench/lib/results.mjs); a script replaces its own rows -->';
const END = '<!-- /SUMMARY -->';
const HEAD = ['| section | headline | result | target | met | run |', '|---|---|---|---|---|---|'];

/**
 * A headline of a section: one ratio (or figure) with its target. `met`: true, false, or
 * null when the run could not say.
 */
export function headline(section, what, result, target, met, date) {
  return { section, what, result, target, met, date };
}

const cell = (s) => String(s).replaceAll('|', '\\|').replaceAll('\n', ' ');
const rowText = (h) =>
  `| ${cell(h.section)} | ${cell(h.what)} | ${cell(h.result)} | ${cell(h.target)} | ${h.met === true ? 'met' : h.met === false ? '**NOT met**' : '-'} | ${cell(h.date.slice(0, 10))} |`;

/** The summary rows now in `text`, parsed back ({ section, line }). */
function summaryRows(text) {
  const a = text.indexOf(BEGIN);
  const b = text.indexOf(END);
  if (a === -1 || b === -1) return [];
  return text
    .slice(a + BEGIN.length, b)
    .split('\n')
    .filter((l) => l.startsWith('| ') && !l.startsWith(HEAD[0]) && !l.startsWith('|---'))
    .map((line) => ({ section: line.slice(2, line.indexOf(' |')), line }));
}

/**
 * Replaces the summary rows of `section` by `headlines` (a script's rows keep their place;
 * a new section's rows go last). Creates the table after the file's opening paragraph if
 * it is missing.
 */
export function writeSummary(section, headlines, file = BENCHMARKS) {
  let text = existsSync(file) ? readFileSync(file, 'utf8') : PREAMBLE;
  const rows = summaryRows(text);
  const mine = headlines.map(rowText);
  const at = rows.findIndex((r) => r.section === section);
  const others = rows.filter((r) => r.section !== section).map((r) => r.line);
  const lines =
    at === -1
      ? [...others, ...mine]
      : [
          ...rows
            .slice(0, at)
            .filter((r) => r.section !== section)
            .map((r) => r.line),
          ...mine,
          ...rows
            .slice(at)
            .filter((r) => r.section !== section)
            .map((r) => r.line),
        ];
  const block = [BEGIN, ...HEAD, ...lines, END].join('\n');
  const a = text.indexOf(BEGIN);
  const b = text.indexOf(END);
  if (a !== -1 && b !== -1) {
    text = `${text.slice(0, a)}${block}${text.slice(b + END.length)}`;
  } else {
    const firstSection = text.search(/^## /m);
    const intro = '## Summary\n\nEach headline ratio of the sections below, its target, and the date of the run that measured it (a script rewrites its own rows when it rewrites its section).\n\n';
    text = firstSection === -1 ? `${text.trimEnd()}\n\n${intro}${block}\n` : `${text.slice(0, firstSection)}${intro}${block}\n\n${text.slice(firstSection)}`;
  }
  writeFileSync(file, text);
  return file;
}

/**
 * After a run: saves the results, renders them with `report` (a bench/report/*.mjs module:
 * { HEADING, SUMMARY, render(results) -> { section, headlines } }), prints the section, and
 * unless `noWrite` rewrites the section and the summary rows in BENCHMARKS.md.
 */
export function publish(name, results, report, { json, noWrite = false, write = true } = {}) {
  const file = saveResults(name, results, json);
  console.log(`results: ${file}`);
  const { section, headlines } = report.render(results);
  console.log(`\n${section}`);
  if (write && !noWrite) {
    console.log(`written to ${writeSection(report.HEADING, section)}`);
    if (headlines.length) writeSummary(report.SUMMARY, headlines);
  }
  return section;
}
