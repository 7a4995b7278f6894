import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { StrikeCounter, TokenBucket } from '../../signaling/server/token-bucket.js';

describe('TokenBucket', () => {
  it('accepts a full burst at once, then refuses', () => {
    const b = new TokenBucket(50, 200, 1_000);
    for (let i = 0; i < 200; i++) expect(b.take(1_000)).toBe(true);
    expect(b.take(1_000)).toBe(false);
    expect(b.take(1_000)).toBe(false);
  });

  it('refills at rate tokens per second', () => {
    const b = new TokenBucket(10, 5, 0);
    for (let i = 0; i < 5; i++) expect(b.take(0)).toBe(true);
    expect(b.take(0)).toBe(false);
    expect(b.take(99)).toBe(false); // 0.99 token
    expect(b.take(100)).toBe(true); // 1 token after 100 ms at 10/s
    expect(b.take(100)).toBe(false);
    expect(b.take(350)).toBe(true); // 2.5 tokens
    expect(b.take(350)).toBe(true);
    expect(b.take(350)).toBe(false);
  });

  it('never stores more than burst, however long it was idle', () => {
    const b = new TokenBucket(100, 3, 0);
    const later = 1_000_000;
    for (let i = 0; i < 3; i++) expect(b.take(later)).toBe(true);
    expect(b.take(later)).toBe(false);
  });

  it('takes a cost of several tokens, or none; refund gives them back, never beyond the burst', () => {
    const b = new TokenBucket(1_000, 2_500, 0);
    expect(b.take(0, 1_000)).toBe(true);
    expect(b.take(0, 1_000)).toBe(true);
    expect(b.take(0, 1_000)).toBe(false); // 500 left: nothing taken
    expect(b.take(0, 500)).toBe(true);
    b.refund(400);
    expect(b.take(0, 401)).toBe(false);
    expect(b.take(0, 400)).toBe(true);
    b.refund(10_000);
    expect(b.take(0, 2_500)).toBe(true);
    expect(b.take(0)).toBe(false);
  });

  it('does not refill when the clock goes backwards', () => {
    const b = new TokenBucket(1, 1, 10_000);
    expect(b.take(10_000)).toBe(true);
    expect(b.take(5_000)).toBe(false);
    expect(b.take(5_000)).toBe(false);
  });

  it('sustains exactly the rate when takes are spaced 1/rate apart', () => {
    const b = new TokenBucket(50, 1, 0);
    for (let t = 0; t < 10_000; t += 20) expect(b.take(t)).toBe(true);
  });

  it('never accepts more than burst + rate * elapsed (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 100 }), fc.integer({ min: 1, max: 50 }), fc.array(fc.integer({ min: 0, max: 200 }), { minLength: 1, maxLength: 300 }), (rate, burst, gaps) => {
        const b = new TokenBucket(rate, burst, 0);
        let now = 0;
        let accepted = 0;
        for (const gap of gaps) {
          now += gap;
          if (b.take(now)) accepted++;
          expect(accepted).toBeLessThanOrEqual(burst + (rate * now) / 1000 + 1e-9);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('always accepts when the caller stays under the rate (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 100 }), fc.integer({ min: 1, max: 50 }), fc.array(fc.integer({ min: 0, max: 100 }), { maxLength: 200 }), (rate, burst, extra) => {
        const b = new TokenBucket(rate, burst, 0);
        const interval = Math.ceil(1000 / rate);
        let now = 0;
        for (const e of extra) {
          expect(b.take(now)).toBe(true);
          now += interval + e;
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('StrikeCounter', () => {
  it('crosses the threshold on the strike after it, in a quick series', () => {
    const s = new StrikeCounter(20, 0);
    for (let i = 0; i < 20; i++) expect(s.add(0)).toBe(false);
    expect(s.add(0)).toBe(true);
    expect(s.add(0)).toBe(true);
  });

  it('forgives one strike per second', () => {
    const s = new StrikeCounter(3, 0);
    expect(s.add(0)).toBe(false); // 1
    expect(s.add(0)).toBe(false); // 2
    expect(s.add(0)).toBe(false); // 3
    expect(s.add(1_000)).toBe(false); // 3 - 1 + 1 = 3
    expect(s.add(1_000)).toBe(true); // 4
  });

  it('decays to zero, not below', () => {
    const s = new StrikeCounter(2, 0);
    s.add(0);
    s.add(0);
    // After a long quiet period the counter restarts from zero, so 2 more are allowed.
    expect(s.add(1_000_000)).toBe(false);
    expect(s.add(1_000_000)).toBe(false);
    expect(s.add(1_000_000)).toBe(true);
  });

  it('an error rate at or below 1/s never crosses the threshold (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 30 }), fc.array(fc.integer({ min: 1_000, max: 5_000 }), { maxLength: 200 }), (threshold, gaps) => {
        const s = new StrikeCounter(threshold, 0);
        let now = 0;
        for (const gap of gaps) {
          expect(s.add(now)).toBe(false);
          now += gap;
        }
      }),
      { numRuns: 300 },
    );
  });

  it('threshold + 1 strikes within less than a second always cross it (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 30 }), fc.integer({ min: 0, max: 10_000 }), (threshold, start) => {
        const s = new StrikeCounter(threshold, start);
        // threshold + 1 strikes spread over less than 0.9 s: less than 0.9 strike decays.
        let crossed = false;
        for (let i = 0; i <= threshold; i++) crossed = s.add(start + Math.floor((i * 900) / (threshold + 1)));
        expect(crossed).toBe(true);
      }),
      { numRuns: 300 },
    );
  });
});
