import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, LEAVE_REASONS } from '../../signaling/protocol/codes.js';
import { checkClientMessage, checkServerMessage } from '../../signaling/protocol/guards.js';
import { ClientMessage, ServerMessage } from '../../signaling/protocol/schemas.js';

// Valid messages, with boundary-length strings likely.
const roomChar = fc.constantFrom(...'abcXYZ019_.-'.split(''));
const room = fc.oneof(fc.string({ unit: roomChar, minLength: 1, maxLength: 3 }), fc.string({ unit: roomChar, minLength: 62, maxLength: 64 }));
const id = fc.oneof(fc.string({ minLength: 1, maxLength: 3 }), fc.string({ minLength: 62, maxLength: 64 }));
const ref = fc.oneof(fc.string({ maxLength: 2 }), fc.string({ minLength: 63, maxLength: 64 }));
const meta = fc.dictionary(fc.string({ maxLength: 3 }), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 2 });
const data = fc.jsonValue({ maxDepth: 2 });
const opt = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });
const strip = <T extends object>(o: T): T => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
// Relay fields: channel names like rooms, seq/ack at the u32 edges, base64 or any text.
const u32 = fc.oneof(fc.constantFrom(0, 1, 0xfffffffe, 0xffffffff), fc.nat());
const relayFields = {
  channel: room,
  data: opt(fc.oneof(fc.string(), fc.base64String())),
  b64: opt(fc.constant(true as const)),
  seq: opt(u32),
  ack: opt(u32),
  more: opt(fc.constant(true as const)),
  unreliable: opt(fc.constant(true as const)),
};

const validClient = fc.oneof(
  fc.record({ type: fc.constant('join'), room, meta: opt(meta), resume: opt(fc.string({ minLength: 1, maxLength: 128 })), ref: opt(ref) }).map(strip),
  fc.record({ type: fc.constant('signal'), to: id, data, ref: opt(ref) }).map(strip),
  fc.record({ type: fc.constant('leave'), ref: opt(ref) }).map(strip),
  fc.record({ type: fc.constant('relay'), to: id, ...relayFields, ref: opt(ref) }).map(strip),
  fc.record({ type: fc.constant('ping'), ref: opt(ref) }).map(strip),
);
const peer = fc.record({ id, meta: opt(meta) }).map(strip);
const ice = fc.record({ urls: fc.oneof(fc.string(), fc.array(fc.string(), { maxLength: 2 })), username: opt(fc.string()), credential: opt(fc.string()) }).map(strip);
const validServer = fc.oneof(
  fc.record({
    type: fc.constant('welcome'),
    id,
    room,
    peers: fc.array(peer, { maxLength: 2 }),
    iceServers: fc.array(ice, { minLength: 1, maxLength: 2 }),
    resume: fc.record({ token: fc.string(), graceMs: fc.integer() }),
    resumed: fc.boolean(),
    limits: fc.dictionary(fc.string({ maxLength: 3 }), fc.integer(), { minKeys: 1, maxKeys: 2 }),
  }),
  fc.record({ type: fc.constant('peer-joined'), peer }),
  fc.record({ type: fc.constant('peer-left'), id, reason: fc.constantFrom(...LEAVE_REASONS) }),
  fc.record({ type: fc.constant('signal'), from: id, data }),
  fc.record({ type: fc.constant('relay'), from: id, ...relayFields }).map(strip),
  fc.record({ type: fc.constant('error'), code: fc.constantFrom(...ERROR_CODES), message: fc.string(), ref: opt(fc.string()) }).map(strip),
  fc.record({ type: fc.constant('pong'), ref: opt(fc.string()) }).map(strip),
);

// Replacements: wrong types, boundary strings, values JSON cannot express.
const weird = fc.oneof(
  fc.jsonValue({ maxDepth: 1 }),
  fc.string({ minLength: 65, maxLength: 66 }),
  fc.string({ minLength: 129, maxLength: 130 }),
  fc.constantFrom(undefined, null, '', 'a b', 'é', [], {}, 0, -1, -0, 1.5, Number.NaN, Number.POSITIVE_INFINITY, true, false, 'join', 'signal', 'relay', 'ping', 'pong', 'gone', 'nope'),
  // Just past the u32 range of seq/ack.
  fc.constantFrom(0x100000000, 2 ** 53, 0xffffffff + 0.5),
  fc.constant(new Date(0)),
  fc.constant(Object.create(null) as object),
);

/** Every path to a value inside `v` (objects and arrays, a few levels deep). */
function paths(v: unknown, prefix: (string | number)[] = [], depth = 0): (string | number)[][] {
  if (depth > 3 || typeof v !== 'object' || v === null) return [];
  const keys = Array.isArray(v) ? v.map((_, i) => i) : Object.keys(v);
  return keys.flatMap((k) => [[...prefix, k], ...paths((v as Record<string | number, unknown>)[k], [...prefix, k], depth + 1)]);
}

/** A copy of `v` with the value at one path replaced, deleted, or a key added. */
function mutate(v: unknown, pick: number, replacement: unknown, mode: number): unknown {
  const copy = structuredClone(v) as Record<string | number, unknown>;
  const all = [[], ...paths(copy)] as (string | number)[][];
  const path = all[pick % all.length] as (string | number)[];
  if (path.length === 0) return mode === 0 ? replacement : { ...copy, extra: replacement };
  let parent: Record<string | number, unknown> = copy;
  for (const k of path.slice(0, -1)) parent = parent[k] as Record<string | number, unknown>;
  const last = path[path.length - 1] as string | number;
  if (mode === 1 && !Array.isArray(parent)) delete parent[last];
  else parent[last] = replacement;
  return copy;
}

const mutated = (valid: fc.Arbitrary<unknown>) =>
  fc.oneof(
    valid,
    fc.tuple(valid, fc.nat(), weird, fc.nat({ max: 2 })).map(([v, p, r, m]) => mutate(v, p, r, m)),
    weird,
  );

describe('browser guards accept exactly what the zod schemas accept', () => {
  it('client messages', () => {
    fc.assert(
      fc.property(mutated(validClient), (v) => {
        expect(checkClientMessage(v) === null, JSON.stringify(v)).toBe(ClientMessage.safeParse(v).success);
      }),
      { numRuns: 10_000 },
    );
  });

  it('server messages', () => {
    fc.assert(
      fc.property(mutated(validServer), (v) => {
        expect(checkServerMessage(v) === null, JSON.stringify(v)).toBe(ServerMessage.safeParse(v).success);
      }),
      { numRuns: 10_000 },
    );
  });

  it('the generators hit both sides of the line', () => {
    const sample = fc.sample(mutated(validClient), { numRuns: 2000, seed: 1 });
    const valid = sample.filter((v) => ClientMessage.safeParse(v).success).length;
    expect(valid).toBeGreaterThan(400);
    expect(valid).toBeLessThan(1800);
  });

  it('reasons name the field', () => {
    expect(checkClientMessage({ type: 'join', room: 'no spaces' })).toMatch(/room/);
    expect(checkClientMessage({ type: 'signal', to: 'x' })).toMatch(/data/);
    expect(checkServerMessage({ type: 'peer-left', id: 'x', reason: 'gone' })).toMatch(/reason/);
    expect(checkClientMessage({ type: 'relay', to: 'x', channel: 'no spaces' })).toMatch(/channel/);
    expect(checkClientMessage({ type: 'relay', to: 'x', channel: 'c', seq: 2 ** 32 })).toMatch(/seq/);
    expect(checkServerMessage({ type: 'relay', from: 'x', channel: 'c', unreliable: false })).toMatch(/unreliable/);
  });
});
