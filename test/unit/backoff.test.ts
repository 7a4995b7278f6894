import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ExponentialBackoff } from '../../signaling/client/index.js';

const ctx = (attempt: number, elapsedMs = 0, closeCode = 1006) => ({ attempt, elapsedMs, closeCode });

describe('ExponentialBackoff', () => {
  it('has the documented defaults', () => {
    const b = new ExponentialBackoff();
    expect(b.baseMs).toBe(250);
    expect(b.capMs).toBe(10_000);
    expect(b.maxAttempts).toBe(20);
    expect(b.maxElapsedMs).toBe(120_000);
  });

  it('rejects nonsensical bounds', () => {
    expect(() => new ExponentialBackoff({ baseMs: 0 })).toThrow(RangeError);
    expect(() => new ExponentialBackoff({ baseMs: -1 })).toThrow(RangeError);
    expect(() => new ExponentialBackoff({ baseMs: Number.NaN })).toThrow(RangeError);
    expect(() => new ExponentialBackoff({ baseMs: 100, capMs: 50 })).toThrow(RangeError);
    expect(() => new ExponentialBackoff({ baseMs: 100, capMs: 100 })).not.toThrow();
  });

  it('full jitter: random 0 gives 0, random just under 1 gives just under the ceiling', () => {
    const low = new ExponentialBackoff({ baseMs: 100, capMs: 1_000, random: () => 0 });
    const high = new ExponentialBackoff({ baseMs: 100, capMs: 1_000, random: () => 1 - Number.EPSILON });
    const ceilings = [100, 200, 400, 800, 1_000, 1_000, 1_000];
    ceilings.forEach((ceiling, attempt) => {
      expect(low.nextDelayMs(ctx(attempt))).toBe(0);
      expect(high.nextDelayMs(ctx(attempt))).toBe(ceiling - 1);
    });
  });

  it('full jitter: random 0.5 gives half the ceiling', () => {
    const b = new ExponentialBackoff({ baseMs: 100, capMs: 10_000, random: () => 0.5 });
    expect([0, 1, 2, 3, 10].map((a) => b.nextDelayMs(ctx(a)))).toEqual([50, 100, 200, 400, 5_000]);
  });

  it('gives up at maxAttempts', () => {
    const b = new ExponentialBackoff({ maxAttempts: 3, random: () => 0.5 });
    expect(b.nextDelayMs(ctx(0))).not.toBeNull();
    expect(b.nextDelayMs(ctx(2))).not.toBeNull();
    expect(b.nextDelayMs(ctx(3))).toBeNull();
    expect(b.nextDelayMs(ctx(100))).toBeNull();
    expect(new ExponentialBackoff({ maxAttempts: 0 }).nextDelayMs(ctx(0))).toBeNull();
  });

  it('gives up at maxElapsedMs', () => {
    const b = new ExponentialBackoff({ maxElapsedMs: 5_000, random: () => 0.5 });
    expect(b.nextDelayMs(ctx(0, 4_999))).not.toBeNull();
    expect(b.nextDelayMs(ctx(0, 5_000))).toBeNull();
    expect(b.nextDelayMs(ctx(1, 60_000))).toBeNull();
  });

  it('stays finite and capped for huge attempt numbers', () => {
    const b = new ExponentialBackoff({ baseMs: 1, capMs: 30_000, maxAttempts: Number.POSITIVE_INFINITY, random: () => 0.999 });
    for (const attempt of [31, 64, 1_024, 1e6]) {
      const d = b.nextDelayMs(ctx(attempt));
      expect(Number.isFinite(d)).toBe(true);
      expect(d).toBeLessThan(30_000);
    }
  });

  it('every delay is an integer in [0, min(cap, base * 2^attempt)), or null past the limits (property)', () => {
    fc.assert(
      fc.property(
        fc.record({
          baseMs: fc.integer({ min: 1, max: 5_000 }),
          capExtra: fc.integer({ min: 0, max: 200_000 }),
          maxAttempts: fc.integer({ min: 0, max: 40 }),
          maxElapsedMs: fc.integer({ min: 0, max: 300_000 }),
        }),
        fc.integer({ min: 0, max: 60 }),
        fc.integer({ min: 0, max: 400_000 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        ({ baseMs, capExtra, maxAttempts, maxElapsedMs }, attempt, elapsedMs, r) => {
          const capMs = baseMs + capExtra;
          const b = new ExponentialBackoff({ baseMs, capMs, maxAttempts, maxElapsedMs, random: () => r });
          const d = b.nextDelayMs(ctx(attempt, elapsedMs));
          if (attempt >= maxAttempts || elapsedMs >= maxElapsedMs) {
            expect(d).toBeNull();
            return;
          }
          expect(d).not.toBeNull();
          const ceiling = Math.min(capMs, baseMs * 2 ** attempt);
          expect(Number.isInteger(d)).toBe(true);
          expect(d).toBeGreaterThanOrEqual(0);
          expect(d).toBeLessThan(ceiling);
        },
      ),
      { numRuns: 2_000 },
    );
  });

  it('with Math.random, delays spread over the whole window (not clustered)', () => {
    const b = new ExponentialBackoff({ baseMs: 1_000, capMs: 1_000 });
    const delays = Array.from({ length: 2_000 }, () => b.nextDelayMs(ctx(5)) as number);
    expect(Math.min(...delays)).toBeLessThan(100);
    expect(Math.max(...delays)).toBeGreaterThan(900);
    const mean = delays.reduce((a, d) => a + d, 0) / delays.length;
    expect(mean).toBeGreaterThan(400);
    expect(mean).toBeLessThan(600);
  });

  it('a retry sequence ends after exactly maxAttempts delays (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 50 }), fc.integer({ min: 1, max: 100 }), (maxAttempts, baseMs) => {
        const b = new ExponentialBackoff({ baseMs, capMs: baseMs * 8, maxAttempts, maxElapsedMs: Number.POSITIVE_INFINITY });
        let attempt = 0;
        while (b.nextDelayMs(ctx(attempt)) !== null) attempt++;
        expect(attempt).toBe(maxAttempts);
      }),
      { numRuns: 200 },
    );
  });
});
