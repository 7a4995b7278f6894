#!/usr/bin/env node
/**
 * Differential check for the codec's hand-written `signal` fast path (codec.ts fastSignal):
 * decodeClientMessage() must give exactly what the zod schema alone gives, for any JSON.
 *   node bench/lib/fastpath-equivalence.mjs [runs=200000]
 */
import { deepStrictEqual, strictEqual } from 'node:assert';
import fc from 'fast-check';
import { ClientMessage, decodeClientMessage } from '../../dist/signaling/protocol/index.js';

const runs = Number(process.argv[2] ?? 200_000);
const str = fc.oneof(fc.string({ maxLength: 70 }), fc.string({ minLength: 60, maxLength: 70 }), fc.constantFrom('', 'a', 'x'.repeat(64), 'x'.repeat(65), '😀'.repeat(32), '😀'.repeat(33)));
const anyJson = fc.jsonValue({ maxDepth: 3 });
const signalish = fc.record(
  {
    type: fc.oneof(fc.constant('signal'), fc.constant('signal'), fc.constantFrom('join', 'leave', 'Signal', ''), anyJson),
    to: fc.oneof(str, anyJson),
    data: fc.oneof(anyJson, fc.constant(null)),
    ref: fc.oneof(str, anyJson),
    room: fc.oneof(str, anyJson),
    extra: anyJson,
    __proto__: anyJson,
  },
  { requiredKeys: [] },
);
const value = fc.oneof(signalish, signalish, anyJson, fc.record({ type: fc.constant('signal'), to: str, data: anyJson }));

let accepted = 0;
fc.assert(
  fc.property(value, (v) => {
    const text = JSON.stringify(v);
    if (text === undefined) return;
    const got = decodeClientMessage(text);
    const ref = ClientMessage.safeParse(JSON.parse(text));
    strictEqual(got.ok, ref.success, text);
    if (got.ok) {
      accepted++;
      deepStrictEqual(got.message, ref.data, text);
      deepStrictEqual(Object.keys(got.message).sort(), Object.keys(ref.data).sort(), text);
    }
  }),
  { numRuns: runs },
);
console.log(`fast path equivalent to the schema on ${runs} generated frames (${accepted} valid)`);
