import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeDelivery, decodeRecord, encodeDirected, encodeRecord, fields, Keys, recordsOf } from '../../signaling/cluster/wire.js';

describe('cluster wire formats', () => {
  it('a record round-trips node, token and meta; the meta may contain the separator', () => {
    fc.assert(
      fc.property(
        fc.stringMatching(/^[A-Za-z0-9_.-]{0,16}$/),
        fc.stringMatching(/^[A-Za-z0-9_-]{0,43}$/),
        fc.option(fc.dictionary(fc.string(), fc.string()), { nil: undefined }),
        (node, token, meta) => {
          const peer = meta === undefined ? { id: 'p' } : { id: 'p', meta };
          expect(decodeRecord('p', encodeRecord(node, token, peer))).toEqual({ node, token, grace: '', peer });
        },
      ),
    );
  });

  it('a record that is not one (truncated, or meta that is not JSON) is refused, not thrown', () => {
    expect(decodeRecord('p', 'n1|tok')).toBeNull();
    expect(decodeRecord('p', 'n1|tok||{not json')).toBeNull();
  });

  it('fields splits the first n fields and leaves the rest whole, whatever it holds', () => {
    fc.assert(
      fc.property(fc.array(fc.stringMatching(/^[^|]*$/), { minLength: 1, maxLength: 5 }), fc.string(), (head, rest) => {
        expect(fields([...head, rest].join('|'), head.length)).toEqual([...head, rest]);
      }),
    );
    expect(fields('a|b', 3)).toBeNull();
  });

  it('a directed frame keeps the frame untouched and its relay delivery', () => {
    const frame = '{"type":"relay","from":"x","channel":"state","data":"a|b|c","unreliable":true}';
    const msg = encodeDirected('room', 'to', frame, { kind: 'unreliable', latestKey: 'x state' });
    const [type, room, to, kind, key, rest] = fields(msg, 5) ?? [];
    expect([type, room, to, rest]).toEqual(['d', 'room', 'to', frame]);
    expect(decodeDelivery(kind ?? '', key ?? '')).toEqual({ kind: 'unreliable', latestKey: 'x state' });
    const signal = fields(encodeDirected('room', 'to', '{"type":"signal"}'), 5) ?? [];
    expect(decodeDelivery(signal[3] ?? '', signal[4] ?? '')).toBeUndefined();
  });

  it('HGETALL replies read the same as RESP2 arrays, RESP3 maps and objects', () => {
    const rec = encodeRecord('n1', 't', { id: 'a', meta: { name: 'x' } });
    const want = new Map([['a', { node: 'n1', token: 't', grace: '', peer: { id: 'a', meta: { name: 'x' } } }]]);
    expect(recordsOf(['a', rec])).toEqual(want);
    expect(recordsOf(new Map([['a', rec]]))).toEqual(want);
    expect(recordsOf({ a: rec })).toEqual(want);
    expect(recordsOf(null).size).toBe(0);
  });

  it("every key of a room carries the room's hash tag, so a room's keys share one Redis Cluster slot", () => {
    const k = new Keys('rp');
    const tag = (key: string): string => /\{([^}]*)\}/.exec(key)?.[1] ?? '';
    for (const key of [k.members('lobby'), k.version('lobby'), k.roomChannel('lobby'), k.inbox('lobby', 'p1')]) expect(tag(key)).toBe('r.lobby');
    expect(tag(k.nodeChannel('n1'))).toBe('n.n1');
    expect(new Set([k.nodes(), k.epoch(), k.rooms()].map(tag))).toEqual(new Set(['c']));
  });
});
