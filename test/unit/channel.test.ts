/**
 * peer/channel.ts and peer/reliable-stream.ts with a fake RTCDataChannel and fake hooks: the
 * send poll's lifetime, and what a channel does when the remote peer breaks the reliable
 * framing.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Channel, ChannelHooks } from '../../peer/channel.js';
import { createChannel, resolveChannels } from '../../peer/channels.js';
import type { PeerError } from '../../peer/errors.js';
import { DEFAULT_FLOW, MAX_MESSAGE_BYTES, MIN_REASSEMBLY_CAP } from '../../peer/flow.js';
import { encodeFragment } from '../../peer/framing.js';

/** The part of RTCDataChannel a Channel touches. */
class FakeDataChannel {
  readyState: RTCDataChannelState = 'open';
  bufferedAmount = 0;
  binaryType = 'blob';
  bufferedAmountLowThreshold = 0;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onopen: (() => void) | null = null;
  onclose: (() => void) | null = null;
  onbufferedamountlow: (() => void) | null = null;
  readonly sent: unknown[] = [];
  send(data: unknown): void {
    this.sent.push(data);
  }
  close(): void {
    this.readyState = 'closed';
  }
}

function reliableChannel(overrides: Partial<ChannelHooks> = {}): { channel: Channel; errors: PeerError[]; messages: unknown[] } {
  const errors: PeerError[] = [];
  const messages: unknown[] = [];
  const config = resolveChannels().find((c) => c.name === 'reliable');
  if (!config) throw new Error('no reliable preset');
  const hooks: ChannelHooks = {
    maxMessageSize: () => 65_536,
    gate: () => null,
    message: (d) => messages.push(d),
    error: (e) => errors.push(e),
    open: () => {},
    lost: () => {},
    route: () => 'rtc',
    heard: () => {},
    fallback: () => null,
    ...overrides,
  };
  return { channel: createChannel(config, DEFAULT_FLOW, hooks), errors, messages };
}

const asDc = (dc: FakeDataChannel): RTCDataChannel => dc as unknown as RTCDataChannel;

afterEach(() => {
  vi.useRealTimers();
});

describe('Channel send poll', () => {
  it('stops polling while the data channel is closed with sends waiting, and sends them on the next one', async () => {
    vi.useFakeTimers();
    const { channel } = reliableChannel();
    const dc = new FakeDataChannel();
    // Above the high watermark: the send waits and the 5 ms poll starts.
    dc.bufferedAmount = DEFAULT_FLOW.highWaterMark * 2;
    channel.attach(asDc(dc));
    let settled = false;
    const sent = channel.send('waiting').then(() => (settled = true));
    expect(vi.getTimerCount()).toBe(1);
    // The data channel dies with the send still queued (the connection is being rebuilt).
    dc.readyState = 'closed';
    await vi.advanceTimersByTimeAsync(100);
    // Before the fix the interval kept firing every 5 ms for as long as the rebuild took.
    expect(vi.getTimerCount()).toBe(0);
    expect(settled).toBe(false);
    const next = new FakeDataChannel();
    channel.attach(asDc(next));
    await sent;
    expect(next.sent).toHaveLength(1);
    channel.close();
  });
});

describe('Channel framing violations', () => {
  it('1-byte fragments marked more on the fallback path close the channel at the first one', () => {
    const { channel, errors } = reliableChannel();
    channel.receiveRelay({ from: 'x', channel: 'reliable', seq: 0, more: true, data: new Uint8Array([0, 9]) });
    expect(errors.map((e) => e.code)).toEqual(['protocol-violation']);
    expect(errors[0]?.message).toMatch(/fragment of 1 bytes marked more/);
  });

  it('an empty fragment marked more closes the channel with protocol-violation', async () => {
    const { channel, errors } = reliableChannel();
    const dc = new FakeDataChannel();
    channel.attach(asDc(dc));
    dc.onmessage?.({ data: encodeFragment({ seq: 0, text: false, more: true, bytes: new Uint8Array(0) }).buffer });
    expect(errors.map((e) => e.code)).toEqual(['protocol-violation']);
    expect(errors[0]?.message).toMatch(/reliable framing: fragment of 0 bytes marked more/);
    await expect(channel.send('after')).rejects.toMatchObject({ code: 'closed' });
    expect(dc.readyState).toBe('closed');
  });

  it('a remote that advertises a huge max message size (a=max-message-size:1073741823) cannot raise the reassembly cap past MAX_MESSAGE_BYTES', () => {
    expect(MAX_MESSAGE_BYTES).toBe(16 * 1024 * 1024);
    // The connection reports what the remote's SDP said: about 1 GiB, which Firefox honours.
    const { channel, errors, messages } = reliableChannel({ maxMessageSize: () => 1_073_741_823 });
    channel.attach(asDc(new FakeDataChannel()));
    const mib = new Uint8Array((1 << 20) + 1); // kind byte 0 (bytes) + 1 MiB
    let seq = 0;
    while (seq < 16) channel.receiveRelay({ from: 'x', channel: 'reliable', seq: seq++, more: true, data: mib });
    expect(errors).toEqual([]);
    // Before the fix the cap followed the advertised ~1 GiB and this went on for 1,024 MiB.
    channel.receiveRelay({ from: 'x', channel: 'reliable', seq: seq++, more: true, data: mib });
    expect(errors.map((e) => e.code)).toEqual(['protocol-violation']);
    expect(errors[0]?.message).toMatch(/over 16777216 bytes/);
    expect(messages).toEqual([]);
  });

  it('send() refuses a message over MAX_MESSAGE_BYTES with too-large, whatever the negotiated max message size', async () => {
    const { channel } = reliableChannel({ maxMessageSize: () => 1_073_741_823 });
    channel.attach(asDc(new FakeDataChannel()));
    // Before the fix this was judged against ~1 GiB (and then refused only by the queue limit, buffer-full).
    await expect(channel.send(new Uint8Array(MAX_MESSAGE_BYTES + 1))).rejects.toMatchObject({ code: 'too-large' });
    channel.close();
  });

  it('a message growing past the reassembly cap (at least MIN_REASSEMBLY_CAP, whatever the current max message size) closes the channel, on the fallback path too', async () => {
    const { channel, errors, messages } = reliableChannel({ maxMessageSize: () => 100 });
    const kindBytes = (n: number): Uint8Array => new Uint8Array(n + 1); // kind byte 0: bytes
    // A sender whose connection allows more than ours is not refused: 21 x 12,000 bytes pass.
    let seq = 0;
    while (seq < 21) channel.receiveRelay({ from: 'x', channel: 'reliable', seq: seq++, more: true, data: kindBytes(12_000) });
    expect(errors).toEqual([]);
    channel.receiveRelay({ from: 'x', channel: 'reliable', seq: seq++, more: true, data: kindBytes(12_000) });
    expect(MIN_REASSEMBLY_CAP).toBe(262_144);
    expect(errors.map((e) => e.code)).toEqual(['protocol-violation']);
    expect(errors[0]?.message).toMatch(/over 262144 bytes/);
    // Closed: later frames are not even looked at.
    channel.receiveRelay({ from: 'x', channel: 'reliable', seq, data: kindBytes(1) });
    expect(errors).toHaveLength(1);
    expect(messages).toEqual([]);
  });
});
