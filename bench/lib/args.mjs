/**
 * Command-line options of the bench scripts: node:util parseArgs plus the options every
 * script takes. Each script declares its own options; these are added to them.
 *
 *   --no-write   print the section, leave BENCHMARKS.md alone
 *   --json FILE  where the measured results go (default test-artifacts/bench/<name>.json);
 *                `node bench/render.mjs` re-renders the markdown from it without measuring
 */
import { parseArgs } from 'node:util';

export const COMMON_OPTIONS = {
  'no-write': { type: 'boolean', default: false },
  json: { type: 'string' },
};

/** The parsed options (`values` of parseArgs) for `options` plus COMMON_OPTIONS. */
export function benchArgs(options, argv = process.argv.slice(2)) {
  return parseArgs({ args: argv, options: { ...COMMON_OPTIONS, ...options } }).values;
}

/** "a,b,,c" -> ['a', 'b', 'c']. */
export const list = (s) => String(s).split(',').filter(Boolean);

/** Every string option that holds a number, as a number (the others as they are). */
export function numbers(values, keys) {
  return Object.fromEntries(keys.map((k) => [k, Number(values[k])]));
}
