import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type ClientMessage,
  ClientMessage as ClientMessageSchema,
  DEFAULT_LIMITS,
  decodeClientMessage,
  decodeServerMessage,
  describeIssues,
  ERROR_CODES,
  encodeClientMessage,
  encodeServerMessage,
  LEAVE_REASONS,
  type ServerMessage,
  utf8Length,
} from '../../signaling/protocol/index.js';

const j = (v: unknown): string => JSON.stringify(v);
const ROOM_CHARS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-';

/** Expects a decode failure and returns it. */
function fails(decoded: ReturnType<typeof decodeClientMessage> | ReturnType<typeof decodeServerMessage>, code: 'bad-json' | 'bad-message' = 'bad-message') {
  expect(decoded.ok, JSON.stringify(decoded)).toBe(false);
  if (decoded.ok) throw new Error('unreachable');
  expect(decoded.code).toBe(code);
  expect(typeof decoded.message).toBe('string');
  expect(decoded.message.length).toBeGreaterThan(0);
  return decoded;
}

function ok<T>(decoded: { ok: true; message: T } | { ok: false; message: string }): T {
  expect(decoded.ok, JSON.stringify(decoded)).toBe(true);
  if (!decoded.ok) throw new Error('unreachable');
  return decoded.message;
}

// --- arbitraries ---------------------------------------------------------------------------

const roomArb = fc.stringMatching(/^[A-Za-z0-9_.-]{1,64}$/);
const idArb = fc.string({ minLength: 1, maxLength: 64 });
const refArb = fc.option(fc.string({ maxLength: 64 }), { nil: undefined });
/** JSON values that survive a JSON round trip unchanged (no -0). */
const jsonArb = fc.jsonValue().map((v) => JSON.parse(JSON.stringify(v)) as unknown);
const metaArb = fc.dictionary(fc.string({ unit: fc.constantFrom(...'abcxyz_'), minLength: 1, maxLength: 8 }), jsonArb, { maxKeys: 4 });

function withOptional<T extends object>(base: T, extra: Record<string, unknown>): T {
  const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) out[k] = v;
  return out as T;
}

const u32Arb = fc.oneof(fc.constantFrom(0, 0xffffffff), fc.nat());
const optArb = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });
const relayFieldsArb = {
  channel: roomArb,
  data: optArb(fc.oneof(fc.string(), fc.base64String())),
  b64: optArb(fc.constant(true as const)),
  seq: optArb(u32Arb),
  ack: optArb(u32Arb),
  more: optArb(fc.constant(true as const)),
  unreliable: optArb(fc.constant(true as const)),
};

const clientMessageArb: fc.Arbitrary<ClientMessage> = fc.oneof(
  fc
    .record({ room: roomArb, meta: fc.option(metaArb, { nil: undefined }), resume: fc.option(fc.string({ minLength: 1, maxLength: 128 }), { nil: undefined }), ref: refArb })
    .map(({ room, meta, resume, ref }) => withOptional({ type: 'join' as const, room }, { meta, resume, ref })),
  fc.record({ to: idArb, data: jsonArb, ref: refArb }).map(({ to, data, ref }) => withOptional({ type: 'signal' as const, to, data }, { ref })),
  refArb.map((ref) => withOptional({ type: 'leave' as const }, { ref })),
  fc.record({ to: idArb, ...relayFieldsArb, ref: refArb }).map(({ to, channel, ref, ...rest }) => withOptional({ type: 'relay' as const, to, channel }, { ...rest, ref })),
);

const peerArb = fc.record({ id: idArb, meta: fc.option(metaArb, { nil: undefined }) }).map(({ id, meta }) => withOptional({ id }, { meta }));

const serverMessageArb: fc.Arbitrary<ServerMessage> = fc.oneof(
  fc
    .record({
      id: idArb,
      room: roomArb,
      peers: fc.array(peerArb, { maxLength: 4 }),
      token: fc.string(),
      graceMs: fc.nat(),
      resumed: fc.boolean(),
    })
    .map(({ id, room, peers, token, graceMs, resumed }) => ({
      type: 'welcome' as const,
      id,
      room,
      peers,
      iceServers: [{ urls: 'stun:stun.example.com' }, { urls: ['turn:t.example.com'], username: 'u', credential: 'c' }],
      resume: { token, graceMs },
      resumed,
      limits: { ...DEFAULT_LIMITS },
    })),
  peerArb.map((peer) => ({ type: 'peer-joined' as const, peer })),
  fc.record({ id: idArb, reason: fc.constantFrom(...LEAVE_REASONS) }).map(({ id, reason }) => ({ type: 'peer-left' as const, id, reason })),
  fc.record({ from: idArb, data: jsonArb }).map(({ from, data }) => ({ type: 'signal' as const, from, data })),
  fc.record({ from: idArb, ...relayFieldsArb }).map(({ from, channel, ...rest }) => withOptional({ type: 'relay' as const, from, channel }, rest)),
  fc
    .record({ code: fc.constantFrom(...ERROR_CODES), message: fc.string(), ref: fc.option(fc.string(), { nil: undefined }) })
    .map(({ code, message, ref }) => withOptional({ type: 'error' as const, code, message }, { ref })),
);

// --- client messages ---------------------------------------------------------------------------

describe('decodeClientMessage: join', () => {
  it('accepts a minimal join and every optional field', () => {
    expect(ok(decodeClientMessage(j({ type: 'join', room: 'lobby' })))).toEqual({ type: 'join', room: 'lobby' });
    const full = { type: 'join', room: 'a.b_c-D9', meta: { name: 'ada', n: [1, { x: null }] }, resume: 'tok', ref: 'r1' };
    expect(ok(decodeClientMessage(j(full)))).toEqual(full);
    expect(ok(decodeClientMessage(j({ type: 'join', room: 'x', meta: {} })))).toEqual({ type: 'join', room: 'x', meta: {} });
  });

  it('ignores (drops) unknown fields', () => {
    expect(ok(decodeClientMessage(j({ type: 'join', room: 'x', extra: 1, nested: { a: 1 } })))).toEqual({ type: 'join', room: 'x' });
  });

  it('refuses a missing or non-string room', () => {
    for (const room of [undefined, null, 1, true, ['a'], { a: 1 }]) fails(decodeClientMessage(j({ type: 'join', room })));
  });

  it('room names: 1-64 of [A-Za-z0-9_.-] only', () => {
    ok(decodeClientMessage(j({ type: 'join', room: 'a' })));
    ok(decodeClientMessage(j({ type: 'join', room: 'a'.repeat(64) })));
    ok(decodeClientMessage(j({ type: 'join', room: ROOM_CHARS.slice(0, 64) })));
    ok(decodeClientMessage(j({ type: 'join', room: '...' })));
    for (const room of ['', 'a'.repeat(65), 'a b', 'a/b', 'a\nb', 'é', 'a\u0000', 'room!', '😀', ' lobby', 'lobby ', 'a:b', 'a?b', 'a#b', '\u0430']) {
      fails(decodeClientMessage(j({ type: 'join', room })));
    }
  });

  it('room names: property over valid and invalid names', () => {
    fc.assert(
      fc.property(roomArb, (room) => {
        expect(decodeClientMessage(j({ type: 'join', room })).ok).toBe(true);
      }),
      { numRuns: 500 },
    );
    // A valid name with one character from outside the set inserted anywhere.
    const badChar = fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }).filter((c) => !ROOM_CHARS.includes(c));
    fc.assert(
      fc.property(fc.stringMatching(/^[A-Za-z0-9_.-]{0,40}$/), badChar, fc.nat(), (room, c, at) => {
        const i = room.length === 0 ? 0 : at % (room.length + 1);
        const bad = room.slice(0, i) + c + room.slice(i);
        expect(decodeClientMessage(j({ type: 'join', room: bad })).ok).toBe(false);
      }),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(fc.stringMatching(/^[A-Za-z0-9_.-]{65,100}$/), (room) => {
        expect(decodeClientMessage(j({ type: 'join', room })).ok).toBe(false);
      }),
      { numRuns: 100 },
    );
  });

  it('meta must be a JSON object', () => {
    for (const meta of [null, [], [1], 'x', 1, true]) fails(decodeClientMessage(j({ type: 'join', room: 'x', meta })));
  });

  it('resume must be a string of 1-128', () => {
    ok(decodeClientMessage(j({ type: 'join', room: 'x', resume: 'r'.repeat(128) })));
    for (const resume of ['', 'r'.repeat(129), 1, null, {}]) fails(decodeClientMessage(j({ type: 'join', room: 'x', resume })));
  });
});

describe('decodeClientMessage: signal', () => {
  it('accepts any JSON value as data, including falsy ones', () => {
    for (const data of [null, 0, false, '', [], {}, 'sdp', { sdp: { type: 'offer', sdp: 'v=0' } }, [1, [2, [3]]]]) {
      expect(ok(decodeClientMessage(j({ type: 'signal', to: 'peer', data })))).toEqual({ type: 'signal', to: 'peer', data });
    }
    expect(ok(decodeClientMessage(j({ type: 'signal', to: 'p'.repeat(64), data: 1, ref: 'r' })))).toEqual({ type: 'signal', to: 'p'.repeat(64), data: 1, ref: 'r' });
  });

  it('refuses a missing data (data: undefined is dropped by JSON, so it is missing)', () => {
    fails(decodeClientMessage(j({ type: 'signal', to: 'peer' })));
    fails(decodeClientMessage(j({ type: 'signal', to: 'peer', data: undefined })));
  });

  it('refuses a missing, empty, over-long or non-string to', () => {
    for (const to of [undefined, '', 'p'.repeat(65), 1, null, ['p'], { id: 'p' }]) fails(decodeClientMessage(j({ type: 'signal', to, data: 1 })));
  });
});

describe('decodeClientMessage: relay', () => {
  it('accepts a minimal relay and every optional field', () => {
    expect(ok(decodeClientMessage(j({ type: 'relay', to: 'p', channel: 'reliable' })))).toEqual({ type: 'relay', to: 'p', channel: 'reliable' });
    const full = { type: 'relay', to: 'p', channel: 'game.state_1-x', data: 'AAEC', b64: true, seq: 0xffffffff, ack: 0, more: true, unreliable: true, ref: 'r' };
    expect(ok(decodeClientMessage(j(full)))).toEqual(full);
    expect(ok(decodeClientMessage(j({ type: 'relay', to: 'p', channel: 'c', data: '' })))).toEqual({ type: 'relay', to: 'p', channel: 'c', data: '' });
  });

  it('refuses bad channels, non-string data, seq/ack outside u32 and flags other than true', () => {
    const base = { type: 'relay', to: 'p', channel: 'c' };
    for (const channel of [undefined, '', 'a b', 'c'.repeat(65), 'é', 1]) fails(decodeClientMessage(j({ ...base, channel })));
    for (const data of [1, null, {}, ['x'], true]) fails(decodeClientMessage(j({ ...base, data })));
    for (const n of [-1, 2 ** 32, 1.5, '1', null]) {
      fails(decodeClientMessage(j({ ...base, seq: n })));
      fails(decodeClientMessage(j({ ...base, ack: n })));
    }
    for (const flag of ['b64', 'more', 'unreliable']) for (const v of [false, 1, 'true', null]) fails(decodeClientMessage(j({ ...base, [flag]: v })));
    fails(decodeClientMessage(j({ type: 'relay', channel: 'c' })));
    fails(decodeClientMessage(j({ type: 'relay', to: '', channel: 'c' })));
  });

  it('the fast path (guard) gives exactly what the zod schema gives, unknown fields dropped (property)', () => {
    fc.assert(
      fc.property(clientMessageArb, fc.dictionary(fc.constantFrom('x', 'from', 'extra'), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 2 }), (msg, extra) => {
        const text = j({ ...msg, ...extra });
        const viaZod = ClientMessageSchema.safeParse(JSON.parse(text));
        expect(viaZod.success).toBe(true);
        expect(ok(decodeClientMessage(text))).toEqual(viaZod.data);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('decodeClientMessage: leave, ref and envelopes', () => {
  it('accepts leave with and without ref', () => {
    expect(ok(decodeClientMessage(j({ type: 'leave' })))).toEqual({ type: 'leave' });
    expect(ok(decodeClientMessage(j({ type: 'leave', ref: 'x'.repeat(64) })))).toEqual({ type: 'leave', ref: 'x'.repeat(64) });
  });

  it('ref must be a string of at most 64 on every message', () => {
    for (const base of [{ type: 'join', room: 'x' }, { type: 'signal', to: 'p', data: 1 }, { type: 'leave' }]) {
      ok(decodeClientMessage(j({ ...base, ref: '' })));
      for (const ref of ['x'.repeat(65), 1, null, {}, []]) fails(decodeClientMessage(j({ ...base, ref })));
    }
  });

  it('frames that are not JSON are bad-json, with no ref', () => {
    for (const text of ['', ' ', 'not json', '{', '{"type":"join"', "{'type':'join'}", 'undefined', 'NaN', '{"ref":"r",}', '\u0000']) {
      const f = fails(decodeClientMessage(text), 'bad-json');
      expect(f.ref).toBeUndefined();
    }
  });

  it('JSON that is not a message object is bad-message', () => {
    for (const v of [null, 1, 'join', true, [], [{ type: 'join', room: 'x' }], {}, { type: null }, { type: 1 }, { type: 'JOIN', room: 'x' }, { type: 'welcome' }]) {
      fails(decodeClientMessage(j(v)));
    }
  });

  it('an unknown type echoes a usable ref, and only a usable one', () => {
    expect(fails(decodeClientMessage(j({ type: 'nope', ref: 'r1' }))).ref).toBe('r1');
    expect(fails(decodeClientMessage(j({ type: 'join', room: '', ref: 'r2' }))).ref).toBe('r2');
    expect(fails(decodeClientMessage(j({ type: 'nope', ref: 'x'.repeat(65) }))).ref).toBeUndefined();
    expect(fails(decodeClientMessage(j({ type: 'nope', ref: 7 }))).ref).toBeUndefined();
    expect(fails(decodeClientMessage(j(['ref']))).ref).toBeUndefined();
  });

  it('never throws, whatever the text (property)', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'binary' }), fc.json(), clientMessageArb.map(j)), (text) => {
        const d = decodeClientMessage(text);
        if (!d.ok) {
          expect(['bad-json', 'bad-message']).toContain(d.code);
          expect(typeof d.message).toBe('string');
          if (d.ref !== undefined) expect(d.ref.length).toBeLessThanOrEqual(64);
        }
      }),
      { numRuns: 1000 },
    );
  });
});

describe('encodeClientMessage', () => {
  it('round-trips every valid client message (property)', () => {
    fc.assert(
      fc.property(clientMessageArb, (msg) => {
        const text = encodeClientMessage(msg);
        expect(JSON.parse(text)).toEqual(msg);
        expect(ok(decodeClientMessage(text))).toEqual(msg);
      }),
      { numRuns: 1000 },
    );
  });

  it('throws a TypeError naming the type on a message the server would refuse', () => {
    const bad = [
      { type: 'join', room: '' },
      { type: 'join', room: 'a b' },
      { type: 'join', room: 'x', meta: [] },
      { type: 'signal', to: 'p', data: undefined },
      { type: 'signal', to: '', data: 1 },
      { type: 'signal', data: 1 },
      { type: 'leave', ref: 'x'.repeat(65) },
      { type: 'bogus' },
    ];
    for (const m of bad) {
      expect(() => encodeClientMessage(m as ClientMessage), JSON.stringify(m)).toThrow(TypeError);
      expect(() => encodeClientMessage(m as ClientMessage)).toThrow(new RegExp(`invalid ${m.type} message`));
    }
  });
});

// --- server messages ---------------------------------------------------------------------------

describe('decodeServerMessage', () => {
  const welcome = {
    type: 'welcome',
    id: 'me',
    room: 'lobby',
    peers: [{ id: 'p1' }, { id: 'p2', meta: { name: 'bob' } }],
    iceServers: [{ urls: 'stun:s' }, { urls: ['turn:t'], username: 'u', credential: 'c' }],
    resume: { token: 't', graceMs: 10_000 },
    resumed: false,
    limits: { maxMessageBytes: 16_384 },
  };

  it('accepts every server message type', () => {
    expect(ok(decodeServerMessage(j(welcome)))).toEqual(welcome);
    expect(ok(decodeServerMessage(j({ type: 'peer-joined', peer: { id: 'p', meta: { a: 1 } } })))).toEqual({ type: 'peer-joined', peer: { id: 'p', meta: { a: 1 } } });
    for (const reason of LEAVE_REASONS) ok(decodeServerMessage(j({ type: 'peer-left', id: 'p', reason })));
    expect(ok(decodeServerMessage(j({ type: 'signal', from: 'p', data: null })))).toEqual({ type: 'signal', from: 'p', data: null });
    expect(ok(decodeServerMessage(j({ type: 'relay', from: 'p', channel: 'c', data: 'AA==', b64: true, seq: 1 })))).toEqual({
      type: 'relay',
      from: 'p',
      channel: 'c',
      data: 'AA==',
      b64: true,
      seq: 1,
    });
    for (const code of ERROR_CODES) ok(decodeServerMessage(j({ type: 'error', code, message: 'm', ref: 'r' })));
  });

  it('refuses malformed server messages', () => {
    const bad: unknown[] = [
      { ...welcome, id: undefined },
      { ...welcome, room: 'bad room' },
      { ...welcome, peers: [{}] },
      { ...welcome, iceServers: [{ username: 'u' }] },
      { ...welcome, resume: { token: 't' } },
      { ...welcome, resumed: 'no' },
      { ...welcome, limits: { maxMessageBytes: '16k' } },
      { type: 'peer-joined', peer: { id: '' } },
      { type: 'peer-joined' },
      { type: 'peer-left', id: 'p', reason: 'kicked' },
      { type: 'peer-left', reason: 'left' },
      { type: 'signal', from: 'p' },
      { type: 'signal', to: 'p', data: 1 },
      { type: 'relay', from: 'p' },
      { type: 'relay', to: 'p', channel: 'c' },
      { type: 'relay', from: 'p', channel: 'c', seq: -1 },
      { type: 'error', code: 'no-such-code', message: 'm' },
      { type: 'error', code: 'internal' },
      { type: 'error', code: 'internal', message: 'm', ref: 1 },
      { type: 'join', room: 'x' },
      null,
      [],
    ];
    for (const m of bad) fails(decodeServerMessage(j(m)));
    fails(decodeServerMessage('{oops'), 'bad-json');
  });

  it('encodeServerMessage output always decodes to the same message (property)', () => {
    fc.assert(
      fc.property(serverMessageArb, (msg) => {
        expect(ok(decodeServerMessage(encodeServerMessage(msg)))).toEqual(msg);
      }),
      { numRuns: 1000 },
    );
  });
});

describe('describeIssues', () => {
  it('summarises at most three issues with their paths', () => {
    expect(describeIssues([])).toBe('');
    expect(describeIssues([{ path: [], code: 'invalid_union', message: 'x' }])).toBe('message: unknown type');
    expect(describeIssues([{ path: ['a', 0], code: 'too_big', message: 'x' }])).toBe('a.0: too big');
    expect(describeIssues([{ path: ['a'], code: 'custom', message: 'x', note: 'why' }])).toBe('a: why');
    const four = [1, 2, 3, 4].map((n) => ({ path: [`f${n}`], code: 'invalid_type', message: '' }));
    expect(describeIssues(four).split('; ')).toHaveLength(3);
  });
});

// --- utf8Length ---------------------------------------------------------------------------

/** Any sequence of UTF-16 code units, with surrogates over-represented. */
const codeUnitsArb = fc
  .array(fc.oneof(fc.integer({ min: 0, max: 0x7f }), fc.integer({ min: 0x80, max: 0x7ff }), fc.integer({ min: 0x800, max: 0xffff }), fc.integer({ min: 0xd800, max: 0xdfff })), { maxLength: 40 })
  .map((units) => String.fromCharCode(...units));

/** No lone surrogates (String.prototype.isWellFormed is ES2024, beyond the project's lib). */
const isWellFormed = (s: string): boolean => !/[\ud800-\udfff]/.test(s.replace(/[\ud800-\udbff][\udc00-\udfff]/g, ''));

describe('utf8Length', () => {
  it('matches Buffer.byteLength on examples', () => {
    for (const s of ['', 'a', 'é', '€', '😀', 'a😀b', '\u0000', '\u07ff', '\u0800', '\uffff', '𝄞𝄞', 'Ḁ̀']) {
      expect(utf8Length(s), JSON.stringify(s)).toBe(Buffer.byteLength(s, 'utf8'));
    }
  });

  it('matches Buffer.byteLength for every well-formed string (property)', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'binary' }), fc.string({ unit: 'grapheme' }), codeUnitsArb.filter(isWellFormed)), (s) => {
        expect(utf8Length(s)).toBe(Buffer.byteLength(s, 'utf8'));
      }),
      { numRuns: 2000 },
    );
  });

  it('matches Buffer.byteLength for JSON text (lone surrogates escaped), as the client and server use it (property)', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          codeUnitsArb,
          fc.jsonValue().map((v) => JSON.stringify(v)),
        ),
        (s) => {
          const text = JSON.stringify({ type: 'signal', to: 'p', data: s });
          expect(utf8Length(text)).toBe(Buffer.byteLength(text, 'utf8'));
        },
      ),
      { numRuns: 2000 },
    );
  });

  // NOTE (protocol bug, reported, not fixed here): for strings with a lone high surrogate
  // followed by a non-surrogate, utf8Length counts the pair as 4 bytes while UTF-8 encoders
  // (Buffer, TextEncoder) write U+FFFD (3 bytes) plus the next character, e.g.
  // utf8Length('\ud800\u0800') === 4 but Buffer.byteLength('\ud800\u0800') === 6.
  // JSON text never contains lone surrogates, so the client/server size checks are unaffected.
});
