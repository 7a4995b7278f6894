import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { channelInit, resolveChannels } from '../../peer/channels.js';
import { decodeLatest, encodeLatest, LatestFilter, seqNewer } from '../../peer/latest.js';
import { toSignalPayload } from '../../peer/signal-payload.js';
import { readTransportStats } from '../../peer/stats.js';

describe('latest mode', () => {
  it('frames round-trip strings and bytes', () => {
    fc.assert(
      fc.property(fc.nat({ max: 0xffffffff }), fc.oneof(fc.string(), fc.uint8Array()), (seq, payload) => {
        const frame = decodeLatest(encodeLatest(seq, payload));
        expect(frame?.seq).toBe(seq);
        if (typeof payload === 'string') expect(frame?.payload).toBe(payload);
        // A null frame has already failed the seq check above: spread [] rather than throw a TypeError.
        else expect([...((frame?.payload ?? []) as Uint8Array)]).toEqual([...payload]);
      }),
    );
    expect(decodeLatest(new Uint8Array([9, 0, 0, 0, 1]))).toBeNull();
    expect(decodeLatest(new Uint8Array([0, 0]))).toBeNull();
  });

  it('serial-number comparison wraps at 2^32 (RFC 1982)', () => {
    expect(seqNewer(1, 0)).toBe(true);
    expect(seqNewer(0, 1)).toBe(false);
    expect(seqNewer(0, 0xffffffff)).toBe(true);
    expect(seqNewer(0xffffffff, 0)).toBe(false);
    expect(seqNewer(5, 5)).toBe(false);
  });

  it('the filter keeps only newer messages and counts gaps as lost', () => {
    const f = new LatestFilter();
    const accepted = [3, 1, 4, 4, 2, 8, 7, 9].filter((s) => f.accept(s));
    expect(accepted).toEqual([3, 4, 8, 9]);
    expect(f.dropped).toBe(4);
    expect(f.lost).toBe(3); // 5, 6, 7 skipped when 8 arrived (7 came later and was stale)
  });
});

describe('channels', () => {
  it('has the two presets and merges user channels', () => {
    const chans = resolveChannels({ chat: { json: true } });
    expect(chans.map((c) => c.name)).toEqual(['reliable', 'unreliable', 'chat']);
    expect(channelInit(chans[1]!)).toEqual({ ordered: false, maxRetransmits: 0 });
    expect(chans[0]!.reliable).toBe(true);
    expect(chans[1]!.reliable).toBe(false);
  });

  it('refuses contradictory or invalid channel options', () => {
    expect(() => resolveChannels({ x: { maxRetransmits: 1, maxPacketLifeTime: 10 } })).toThrow(/not both/);
    expect(() => resolveChannels({ x: { latest: true } })).toThrow(/latest mode needs an unreliable channel/);
    expect(() => resolveChannels({ 'bad name': {} })).toThrow(/channel name/);
    expect(() => resolveChannels({ x: { maxRetransmits: -1 } })).toThrow(/0-65535/);
  });
});

describe('signal payloads from other peers', () => {
  it('accepts descriptions, candidates, end-of-candidates and reconnect requests', () => {
    expect(toSignalPayload({ gen: 2, description: { type: 'offer', sdp: 'v=0' }, caps: { iceRestart: true } })).toEqual({
      gen: 2,
      caps: { iceRestart: true },
      description: { type: 'offer', sdp: 'v=0' },
    });
    expect(toSignalPayload({ candidate: { candidate: 'candidate:1 1 udp 1 1.2.3.4 5 typ host', sdpMid: '0' } })).toEqual({
      gen: 0,
      candidate: { candidate: 'candidate:1 1 udp 1 1.2.3.4 5 typ host', sdpMid: '0' },
    });
    expect(toSignalPayload({ candidate: null })).toEqual({ gen: 0, candidate: null });
    expect(toSignalPayload({ reconnect: true, gen: 1 })).toEqual({ gen: 1, reconnect: true });
  });

  it('rejects anything else without throwing', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        const p = toSignalPayload(v);
        if (p) expect(p.description || p.candidate !== undefined || p.reconnect).toBeTruthy();
      }),
    );
    for (const bad of [
      null,
      1,
      'x',
      {},
      { description: { type: 'bogus' } },
      { description: { type: 'offer', sdp: 1 } },
      { candidate: { candidate: 5 } },
      { gen: -1, candidate: null },
      { gen: 1.5, candidate: null },
    ]) {
      expect(toSignalPayload(bad)).toBeNull();
    }
  });
});

describe('stats', () => {
  const report = (entries: Record<string, unknown>[]): RTCStatsReport => new Map(entries.map((e) => [e.id as string, e])) as unknown as RTCStatsReport;

  it('reads the selected pair from the transport, and relay when either side relays', () => {
    const s = readTransportStats(
      report([
        { id: 'T', type: 'transport', selectedCandidatePairId: 'P' },
        { id: 'P', type: 'candidate-pair', localCandidateId: 'L', remoteCandidateId: 'R', currentRoundTripTime: 0.012, bytesSent: 10, bytesReceived: 20 },
        { id: 'L', type: 'local-candidate', candidateType: 'relay', address: '10.0.0.1', port: 1, protocol: 'udp' },
        { id: 'R', type: 'remote-candidate', candidateType: 'host', address: '10.0.0.2', port: 2, protocol: 'udp' },
      ]),
    );
    expect(s.path).toBe('relay');
    expect(s.rttMs).toBeCloseTo(12);
    expect(s.selectedPair?.local).toEqual({ type: 'relay', address: '10.0.0.1', port: 1, protocol: 'udp' });
  });

  it('falls back to the nominated succeeded pair, and reports nothing without one', () => {
    const s = readTransportStats(
      report([
        { id: 'P', type: 'candidate-pair', state: 'succeeded', nominated: true, localCandidateId: 'L', remoteCandidateId: 'R' },
        { id: 'L', type: 'local-candidate', candidateType: 'srflx' },
        { id: 'R', type: 'remote-candidate', candidateType: 'host' },
      ]),
    );
    expect(s.path).toBe('direct');
    expect(readTransportStats(report([])).path).toBeNull();
  });
});
