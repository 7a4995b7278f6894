/**
 * The methods peer/runtime/werift-fixes.ts replaces, called directly on werift 0.24's own
 * classes: each case runs against werift as shipped (showing the bug) and then fixed.
 * (test/integration/werift-partial-reliability.test.ts shows the same over a lossy network.)
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { RTCSctpTransport } from 'werift';
import { applyWeriftFixes } from '../../peer/runtime/werift-fixes.js';

const FIXED = Symbol.for('rallypoint.werift-fixed');
const DATA_LAST_FRAG = 0x01;
const DATA_FIRST_FRAG = 0x02;

interface Chunk {
  type: number;
  tsn: number;
  flags: number;
  abandoned: boolean;
  retransmit: boolean;
  sentCount: number;
  maxRetransmits: number | undefined;
  expiry: number | undefined;
}

interface Sctp {
  associationState: number;
  sentQueue: Chunk[];
  maybeAbandon(chunk: Chunk): boolean;
  send(streamId: number, ppid: number, data: Buffer, opts: { expiry?: number; maxRetransmits?: number; ordered: boolean }): Promise<void>;
}

interface Transport {
  sctp: Sctp;
  dataChannelQueue: [unknown, number, Buffer][];
  dataChannels: Record<number, unknown>;
  dataChannelOpen(channel: object): void;
  dataChannelFlush(): Promise<void>;
}

/** A real RTCSctpTransport (and SCTP association) over a DTLS transport that goes nowhere. */
function transport(): Transport {
  const t = new RTCSctpTransport() as unknown as Transport & { setDtlsTransport(d: object): void };
  t.setDtlsTransport({
    id: Math.random().toString(36),
    onStateChange: { subscribe: () => ({ unSubscribe: () => {} }) },
    sendData: async () => {},
  });
  return t;
}

function chunk(tsn: number, flags: number, extra: Partial<Chunk> = {}): Chunk {
  return { type: 0 /* DATA */, tsn, flags, abandoned: false, retransmit: false, sentCount: 1, maxRetransmits: undefined, expiry: undefined, ...extra };
}

const single = DATA_FIRST_FRAG | DATA_LAST_FRAG;

function channel(init: { label?: string; protocol?: string; ordered?: boolean; maxRetransmits?: number | null; maxPacketLifeTime?: number | null; id?: number }) {
  return {
    id: 1,
    label: 'state',
    protocol: '',
    ordered: true,
    maxRetransmits: null,
    maxPacketLifeTime: null,
    setId() {},
    addBufferedAmount() {},
    ...init,
  };
}

/** The werift methods before and after the fixes, taken from the same prototypes. */
const shipped = {} as { maybeAbandon: Sctp['maybeAbandon']; dataChannelOpen: Transport['dataChannelOpen']; dataChannelFlush: Transport['dataChannelFlush'] };
const fixed = {} as typeof shipped;

beforeAll(() => {
  const tp = RTCSctpTransport.prototype as unknown as Transport & { [FIXED]?: boolean };
  const sp = Object.getPrototypeOf(transport().sctp) as Sctp & { [FIXED]?: boolean };
  if (tp[FIXED] || sp[FIXED]) throw new Error('werift was already patched in this process; this file needs its own (vitest isolates files)');
  Object.assign(shipped, { maybeAbandon: sp.maybeAbandon, dataChannelOpen: tp.dataChannelOpen, dataChannelFlush: tp.dataChannelFlush });
  applyWeriftFixes(RTCSctpTransport);
  // The SCTP prototype is patched lazily, on the first open/flush of a transport.
  void transport().dataChannelFlush();
  expect(sp[FIXED]).toBe(true);
  Object.assign(fixed, { maybeAbandon: sp.maybeAbandon, dataChannelOpen: tp.dataChannelOpen, dataChannelFlush: tp.dataChannelFlush });
  expect(fixed.maybeAbandon).not.toBe(shipped.maybeAbandon);
});

/** Runs one SCTP.maybeAbandon on a fresh association with `queue` as its sent queue. */
function abandon(impl: Sctp['maybeAbandon'], queue: Chunk[], target: number): { result: boolean; abandoned: number[] } {
  const sctp = transport().sctp;
  sctp.sentQueue = queue;
  const result = impl.call(sctp, queue[target]!);
  return { result, abandoned: queue.filter((c) => c.abandoned).map((c) => c.tsn) };
}

describe('werift SCTP.maybeAbandon (RFC 3758 §3.5)', () => {
  it('maxRetransmits: 0 abandons a chunk sent once (shipped: retransmitted forever)', () => {
    const queue = () => [chunk(1, single, { maxRetransmits: 0 })];
    expect(abandon(shipped.maybeAbandon, queue(), 0)).toEqual({ result: false, abandoned: [] });
    expect(abandon(fixed.maybeAbandon, queue(), 0)).toEqual({ result: true, abandoned: [1] });
  });

  it('maxRetransmits: n keeps the chunk until it was sent n + 1 times', () => {
    expect(abandon(fixed.maybeAbandon, [chunk(1, single, { maxRetransmits: 2, sentCount: 2 })], 0).result).toBe(false);
    expect(abandon(fixed.maybeAbandon, [chunk(1, single, { maxRetransmits: 2, sentCount: 3 })], 0).result).toBe(true);
  });

  it('an expired maxPacketLifeTime abandons (shipped: ms compared with s, never expires)', () => {
    const queue = () => [chunk(1, single, { expiry: Date.now() - 1 })];
    expect(abandon(shipped.maybeAbandon, queue(), 0)).toEqual({ result: false, abandoned: [] });
    expect(abandon(fixed.maybeAbandon, queue(), 0)).toEqual({ result: true, abandoned: [1] });
    expect(abandon(fixed.maybeAbandon, [chunk(1, single, { expiry: Date.now() + 1_000 })], 0).result).toBe(false);
  });

  it('abandons the chunk it was asked about, not the first DATA chunk of the queue', () => {
    // maxRetransmits: 1 and sent twice, so the shipped condition holds too.
    const queue = () => [chunk(1, single), chunk(2, single), chunk(3, single, { maxRetransmits: 1, sentCount: 2 })];
    expect(abandon(shipped.maybeAbandon, queue(), 2)).toEqual({ result: true, abandoned: [1] });
    expect(abandon(fixed.maybeAbandon, queue(), 2)).toEqual({ result: true, abandoned: [3] });
  });

  it('abandons every fragment of the message, and only those', () => {
    const queue = () => [
      chunk(1, single),
      chunk(2, DATA_FIRST_FRAG, { maxRetransmits: 0 }),
      chunk(3, 0, { maxRetransmits: 0 }),
      chunk(4, DATA_LAST_FRAG, { maxRetransmits: 0 }),
      chunk(5, single, { maxRetransmits: 0 }),
    ];
    expect(abandon(fixed.maybeAbandon, queue(), 2)).toEqual({ result: true, abandoned: [2, 3, 4] });
    // Shipped (with maxRetransmits: 1 so it acts at all): the first chunk of the queue.
    const q = queue().map((c) => ({ ...c, maxRetransmits: 1, sentCount: 2 }));
    expect(abandon(shipped.maybeAbandon, q, 2)).toEqual({ result: true, abandoned: [1] });
  });
});

describe('werift RTCSctpTransport.dataChannelOpen (RFC 8832 §5.1 DATA_CHANNEL_OPEN)', () => {
  function openMessage(impl: Transport['dataChannelOpen'], ch: ReturnType<typeof channel>): { type: number; reliability: number; label: string; protocol: string } {
    const t = transport();
    impl.call(t, ch);
    const msg = t.dataChannelQueue[0]![2];
    const labelLength = msg.readUInt16BE(8);
    const protocolLength = msg.readUInt16BE(10);
    return {
      type: msg.readUInt8(1),
      reliability: msg.readUInt32BE(4),
      label: msg.subarray(12, 12 + labelLength).toString('utf8'),
      protocol: msg.subarray(12 + labelLength, 12 + labelLength + protocolLength).toString('utf8'),
    };
  }

  it.each([
    [{ ordered: false, maxRetransmits: 0 }, 0x81, 0, 0x01],
    [{ ordered: false, maxRetransmits: 5 }, 0x81, 5, 0x01],
    [{ ordered: false, maxPacketLifeTime: 150 }, 0x82, 150, 0x02],
    [{ ordered: true, maxRetransmits: 0 }, 0x01, 0, 0x01],
    [{ ordered: true, maxPacketLifeTime: 150 }, 0x02, 150, 0x02],
    [{ ordered: false }, 0x80, 0, 0x80],
    [{ ordered: true }, 0x00, 0, 0x00],
  ])('%o: channel type %i (shipped: %i)', (init, type, reliability, shippedType) => {
    expect(openMessage(fixed.dataChannelOpen, channel(init))).toMatchObject({ type, reliability });
    expect(openMessage(shipped.dataChannelOpen, channel(init)).type).toBe(shippedType);
  });

  it('counts label and protocol lengths in UTF-8 bytes (shipped: UTF-16 units)', () => {
    const ch = () => channel({ label: 'état-ü', protocol: 'proto-ß' });
    expect(openMessage(fixed.dataChannelOpen, ch())).toMatchObject({ label: 'état-ü', protocol: 'proto-ß' });
    expect(openMessage(shipped.dataChannelOpen, ch()).label).not.toBe('état-ü');
  });
});

describe('werift RTCSctpTransport.dataChannelFlush', () => {
  async function sendOptions(impl: Transport['dataChannelFlush'], ch: ReturnType<typeof channel>): Promise<{ expiry?: number; maxRetransmits?: number; ordered: boolean }> {
    const t = transport();
    let captured: { expiry?: number; maxRetransmits?: number; ordered: boolean } | undefined;
    t.sctp.associationState = 4; // ESTABLISHED
    t.sctp.send = async (_id, _ppid, _data, opts) => {
      captured = opts;
    };
    t.dataChannels[ch.id] = ch;
    t.dataChannelQueue.push([ch, 51, Buffer.from('state')]);
    await impl.call(t);
    return captured!;
  }

  it('sets a maxPacketLifeTime expiry in ms from now (shipped: lifetime / 1000, i.e. now)', async () => {
    const ch = () => channel({ ordered: false, maxPacketLifeTime: 150 });
    const before = Date.now();
    const opts = await sendOptions(fixed.dataChannelFlush, ch());
    expect(opts.expiry! - before).toBeGreaterThanOrEqual(150);
    expect(opts.expiry! - Date.now()).toBeLessThanOrEqual(150);
    expect(opts).toMatchObject({ ordered: false, maxRetransmits: undefined });
    const shippedOpts = await sendOptions(shipped.dataChannelFlush, ch());
    expect(shippedOpts.expiry! - before).toBeLessThan(100);
  });

  it('passes maxRetransmits: 0 through', async () => {
    expect(await sendOptions(fixed.dataChannelFlush, channel({ ordered: false, maxRetransmits: 0 }))).toMatchObject({ ordered: false, maxRetransmits: 0, expiry: undefined });
  });
});

/**
 * peer/runtime/werift-fixes.ts replaces these three methods with copies corrected from
 * werift 0.24.4's own (ESM build, lib/index.mjs, which `rallypoint/node` imports). Its guards
 * only look for the bug's signature, so a release that changed the rest of a method would be
 * replaced silently and lose that change: this pins the exact source text. When it fails,
 * read the new methods, carry their changes into the copies (or drop a fix upstream made),
 * then record the new version and hashes here and in package.json (an exact version, no ^).
 */
const PATCHED_VERSION = '0.24.4';
const PATCHED_SOURCE_SHA256 = {
  dataChannelOpen: 'f258158891da76c91764b05a625b328b29a898499046c56dacaba0eab9c8466d',
  dataChannelFlush: 'e78512e2db6bc519bb65cb4ace412a44211ce30c9c4083fe1d191e8db40b9a0e',
  maybeAbandon: '79589bffb4b1b53ddf58c9cab7855c3ce8babab3af7f4a8f67ba3432576d1b6a',
};

describe('the werift that the fixes were made for', () => {
  it(`package.json pins werift to exactly ${PATCHED_VERSION}, and that is the one installed`, () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { dependencies: Record<string, string> };
    expect(pkg.dependencies.werift, 'a range would let npm install a werift these fixes were not checked against').toBe(PATCHED_VERSION);
    const installed = JSON.parse(readFileSync(new URL('../../node_modules/werift/package.json', import.meta.url), 'utf8')) as { version: string };
    expect(installed.version).toBe(PATCHED_VERSION);
  });

  it.each(Object.keys(PATCHED_SOURCE_SHA256) as (keyof typeof PATCHED_SOURCE_SHA256)[])('%s is the source text the fix was copied from', (name) => {
    const text = String(shipped[name]);
    const sha = createHash('sha256').update(text).digest('hex');
    expect(sha, `werift's ${name} changed: check peer/runtime/werift-fixes.ts against it before updating this hash. Its text now:\n${text}`).toBe(PATCHED_SOURCE_SHA256[name]);
  });
});
