/**
 * An `error` event with no listener does not vanish (signaling/client/emitter.ts): it goes
 * to console.error once per emitter and code, and is never thrown.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { PeerError } from '../../peer/errors.js';
import { TypedEmitter } from '../../signaling/client/emitter.js';
import { pair } from '../helpers/fake-rtc.js';

class Emitter extends TypedEmitter<{ error: (err: Error) => void; other: () => void }> {
  fire(err: Error): void {
    this.emit('error', err);
  }
}

afterEach(() => {
  vi.restoreAllMocks();
  vi.useRealTimers();
});

describe('an error event nobody listens to', () => {
  it('goes to console.error once per emitter and code, never thrown', () => {
    const log = vi.spyOn(console, 'error').mockImplementation(() => {});
    const a = new Emitter();
    const b = new Emitter();
    expect(() => {
      a.fire(new PeerError('bad-data', 'one'));
      a.fire(new PeerError('bad-data', 'two'));
      a.fire(new PeerError('closed', 'three'));
      b.fire(new PeerError('bad-data', 'four'));
      a.fire(new Error('no code'));
      a.fire(new Error('no code again'));
    }).not.toThrow();
    expect(log.mock.calls.map(([e]) => (e as Error).message)).toEqual(['one', 'three', 'four', 'no code']);
  });

  it('is not logged while someone listens', () => {
    const log = vi.spyOn(console, 'error').mockImplementation(() => {});
    const a = new Emitter();
    const seen: Error[] = [];
    a.on('error', (err) => seen.push(err));
    a.fire(new PeerError('bad-data', 'heard'));
    expect(seen).toHaveLength(1);
    expect(log).not.toHaveBeenCalled();
  });

  it('a RemotePeer without an error listener reports an unknown channel on the console', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
    const log = vi.spyOn(console, 'error').mockImplementation(() => {});
    const { a, b } = pair(5_000);
    a.removeAllListeners();
    a.handleRelay({ from: 'b', channel: 'nope', data: 'x' });
    a.handleRelay({ from: 'b', channel: 'nope', data: 'x' });
    expect(log).toHaveBeenCalledTimes(1);
    expect(log.mock.calls[0]?.[0]).toMatchObject({ name: 'PeerError', code: 'unknown-channel' });
    await Promise.all([a.close(), b.close()]);
  });
});
