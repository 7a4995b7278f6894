import { describe, expect, it } from 'vitest';
import { CLOSE_CODES, closeCodeFor, ERROR_CODES, type ErrorCode, FINAL_CLOSE_CODES, LEAVE_REASONS, UPGRADE_REFUSALS } from '../../signaling/protocol/index.js';

/** The "close code when repeated" column of PROTOCOL.md's error table. */
const PROTOCOL_TABLE: Record<ErrorCode, number> = {
  'bad-json': 4000,
  'bad-message': 4001,
  'too-large': 4009,
  'rate-limited': 4029,
  'not-joined': 4002,
  'already-joined': 4002,
  'peer-not-found': 4002,
  // Never counted as a strike (the cluster's trouble, not the client's); a refused join closes with 1013.
  unavailable: 4002,
  'room-full': 4002,
  'too-many-rooms': 4002,
  unauthorized: 4003,
  'server-full': 4002,
  internal: 1011,
  'relay-disabled': 4002,
};

describe('closeCodeFor', () => {
  it('has a row for every ERROR_CODE and no other', () => {
    expect(Object.keys(PROTOCOL_TABLE).sort()).toEqual([...ERROR_CODES].sort());
    expect(new Set(ERROR_CODES).size).toBe(ERROR_CODES.length);
  });

  it.each([...ERROR_CODES])('maps %s to its documented close code', (code) => {
    const close = closeCodeFor(code);
    expect(close).toBe(PROTOCOL_TABLE[code]);
    expect(Object.values(CLOSE_CODES)).toContain(close);
  });

  it('maps into the ranges RFC 6455 allows to be sent in a close frame', () => {
    for (const code of ERROR_CODES) {
      const c = closeCodeFor(code);
      // 1005, 1006 and 1015 must never be sent; 4000-4999 are for applications.
      expect([1005, 1006, 1015]).not.toContain(c);
      expect((c >= 1000 && c <= 1011) || (c >= 4000 && c <= 4999)).toBe(true);
    }
  });
});

describe('CLOSE_CODES and FINAL_CLOSE_CODES', () => {
  it('close codes are distinct', () => {
    const values = Object.values(CLOSE_CODES);
    expect(new Set(values).size).toBe(values.length);
  });

  it('final codes are exactly the "reconnect? no" rows of PROTOCOL.md (but 1000, which the client adds)', () => {
    expect([...FINAL_CLOSE_CODES].sort()).toEqual([4000, 4001, 4002, 4003, 4010]);
    for (const code of FINAL_CLOSE_CODES) expect(Object.values(CLOSE_CODES)).toContain(code);
    // Retryable ones.
    for (const code of [1001, 1006, 1009, 1011, 1013, 4008, 4009, 4029]) expect(FINAL_CLOSE_CODES.has(code)).toBe(false);
    expect([...FINAL_CLOSE_CODES].sort()).toEqual([CLOSE_CODES.badJson, CLOSE_CODES.badMessage, CLOSE_CODES.unauthorized, CLOSE_CODES.replaced, CLOSE_CODES.protocolAbuse].sort());
  });

  it('unauthorized closes for good; rate-limited and too-large do not', () => {
    expect(FINAL_CLOSE_CODES.has(closeCodeFor('unauthorized'))).toBe(true);
    expect(FINAL_CLOSE_CODES.has(closeCodeFor('rate-limited'))).toBe(false);
    expect(FINAL_CLOSE_CODES.has(closeCodeFor('too-large'))).toBe(false);
  });
});

describe('other tables', () => {
  it('upgrade refusals carry HTTP error statuses', () => {
    for (const status of Object.values(UPGRADE_REFUSALS)) expect(status >= 400 && status < 600).toBe(true);
    expect(UPGRADE_REFUSALS.unauthorized).toBe(401);
  });

  it('leave reasons', () => {
    expect([...LEAVE_REASONS]).toEqual(['left', 'closed', 'timeout']);
  });
});
