/**
 * Every documented limit can be set (also the HTTP transports' pollHoldMs, sseKeepaliveMs and maxPostBytes
 * were in DEFAULT_LIMITS but missing from the options schema, so `limits: { pollHoldMs }`
 * threw "Unrecognized key" and the HTTP transports' timings could not be configured).
 */
import { describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS } from '../../signaling/protocol/limits.js';
import { InvalidOptionsError } from '../../signaling/server/index.js';
import { resolveOptions } from '../../signaling/server/options.js';

describe('limits options', () => {
  it.each(Object.keys(DEFAULT_LIMITS))('accepts %s and uses the value given', (key) => {
    const value = DEFAULT_LIMITS[key as keyof typeof DEFAULT_LIMITS];
    expect(resolveOptions({ limits: { [key]: value } }).limits[key as keyof typeof DEFAULT_LIMITS]).toBe(value);
  });

  it('takes the HTTP transports timings and refuses nonsense for them', () => {
    const { limits } = resolveOptions({ limits: { pollHoldMs: 1200, sseKeepaliveMs: 700, maxPostBytes: 4096 } });
    expect([limits.pollHoldMs, limits.sseKeepaliveMs, limits.maxPostBytes]).toEqual([1200, 700, 4096]);
    for (const bad of [{ pollHoldMs: 0 }, { sseKeepaliveMs: -1 }, { maxPostBytes: 1.5 }]) {
      expect(() => resolveOptions({ limits: bad })).toThrow(InvalidOptionsError);
    }
  });
});
