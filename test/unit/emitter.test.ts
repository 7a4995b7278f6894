import { describe, expect, expectTypeOf, it, vi } from 'vitest';
import { TypedEmitter } from '../../signaling/client/index.js';

type Events = {
  a: (n: number) => void;
  b: (s: string, flag: boolean) => void;
  c: () => void;
};

class E extends TypedEmitter<Events> {
  fire<K extends keyof Events>(event: K, ...args: Parameters<Events[K]>): void {
    this.emit(event, ...args);
  }
}

describe('TypedEmitter', () => {
  it('calls listeners with the arguments, in registration order', () => {
    const e = new E();
    const calls: string[] = [];
    e.on('b', (s, flag) => calls.push(`1:${s}:${String(flag)}`));
    e.on('b', (s) => calls.push(`2:${s}`));
    e.fire('b', 'x', true);
    expect(calls).toEqual(['1:x:true', '2:x']);
  });

  it('emitting an event without listeners is a no-op (even "error")', () => {
    const e = new E();
    expect(() => e.fire('c')).not.toThrow();
  });

  it('on/off/once return this for chaining', () => {
    const e = new E();
    const f = (): void => {};
    expect(e.on('c', f)).toBe(e);
    expect(e.off('c', f)).toBe(e);
    expect(e.once('c', f)).toBe(e);
  });

  it('the same listener added twice is called once (set semantics)', () => {
    const e = new E();
    const f = vi.fn();
    e.on('a', f).on('a', f);
    e.fire('a', 1);
    expect(f).toHaveBeenCalledTimes(1);
  });

  it('off removes a listener; removing an unknown one is harmless', () => {
    const e = new E();
    const f = vi.fn();
    const g = vi.fn();
    e.on('a', f);
    e.off('a', g).off('c', g);
    e.off('a', f);
    e.fire('a', 1);
    expect(f).not.toHaveBeenCalled();
  });

  it('once fires a single time', () => {
    const e = new E();
    const f = vi.fn();
    e.once('a', f);
    e.fire('a', 1);
    e.fire('a', 2);
    expect(f).toHaveBeenCalledTimes(1);
    expect(f).toHaveBeenCalledWith(1);
  });

  it('off removes a once listener by the function passed to once', () => {
    const e = new E();
    const f = vi.fn();
    const other = vi.fn();
    e.once('a', f);
    e.on('a', other);
    e.off('a', f);
    e.fire('a', 1);
    expect(f).not.toHaveBeenCalled();
    expect(other).toHaveBeenCalledTimes(1);
  });

  it('next resolves with the arguments of the next event only', async () => {
    const e = new E();
    const p = e.next('b');
    e.fire('b', 'first', false);
    e.fire('b', 'second', true);
    await expect(p).resolves.toEqual(['first', false]);
    expectTypeOf(p).toEqualTypeOf<Promise<[s: string, flag: boolean]>>();
    const q = e.next('c');
    e.fire('c');
    await expect(q).resolves.toEqual([]);
  });

  it('a listener removed during an emit still runs in that emit; one added does not', () => {
    const e = new E();
    const calls: string[] = [];
    const second = (): void => {
      calls.push('second');
    };
    const late = (): void => {
      calls.push('late');
    };
    e.on('c', () => {
      calls.push('first');
      e.off('c', second);
      e.on('c', late);
    });
    e.on('c', second);
    e.fire('c');
    expect(calls).toEqual(['first', 'second']);
    calls.length = 0;
    e.fire('c');
    expect(calls).toEqual(['first', 'late']);
  });

  it('a once listener that re-registers itself runs again on the next emit, not this one', () => {
    const e = new E();
    let n = 0;
    const f = (): void => {
      n++;
      if (n < 3) e.once('c', f);
    };
    e.once('c', f);
    e.fire('c');
    expect(n).toBe(1);
    e.fire('c');
    e.fire('c');
    e.fire('c');
    expect(n).toBe(3);
  });

  it('removeAllListeners drops everything, including pending next()', () => {
    const e = new E();
    const f = vi.fn();
    e.on('a', f).once('c', f);
    void e.next('b');
    e.removeAllListeners();
    e.fire('a', 1);
    e.fire('b', 'x', true);
    e.fire('c');
    expect(f).not.toHaveBeenCalled();
  });

  it('a throwing listener propagates to the emitter and stops later listeners', () => {
    const e = new E();
    const later = vi.fn();
    e.on('c', () => {
      throw new Error('boom');
    });
    e.on('c', later);
    expect(() => e.fire('c')).toThrow('boom');
    expect(later).not.toHaveBeenCalled();
  });

  it('is type-safe', () => {
    const e = new E();
    // @ts-expect-error wrong argument type
    e.on('a', (s: string) => void s);
    // @ts-expect-error unknown event
    e.on('zzz', () => {});
    expectTypeOf(e.next('a')).toEqualTypeOf<Promise<[n: number]>>();
  });
});
