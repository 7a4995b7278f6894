/**
 * The types of what `send` accepts and `message` events carry (peer/channel.ts SendData,
 * MessageData): checked by the typecheck of the tests (`tsc -p test`), run as a no-op here.
 */
import { expect, it } from 'vitest';
import type { MessageData, RemotePeer } from '../../peer/index.js';

interface State {
  n: number;
}
class Point {
  x = 1;
}

function typed(p: RemotePeer): void {
  void p.send('reliable', 'text');
  void p.send('reliable', new Uint8Array(1));
  void p.send('reliable', new ArrayBuffer(1));
  void p.send('json', { a: [1, 'b', null] });
  void p.send('json', [1, 2]);
  void p.send('json', 3);
  void p.send('json', false);
  void p.send('json', null);
  void p.send('json', new Point());
  const state: State = { n: 1 };
  void p.send('json', state);
  // @ts-expect-error undefined is not JSON and not bytes
  void p.send('json', undefined);
  // @ts-expect-error JSON.stringify throws on a bigint
  void p.send('json', 1n);
  p.on('message', (_channel, data: MessageData) => {
    // An app's own interface is one cast away; strings and bytes narrow with typeof/instanceof.
    const own = data as State;
    if (typeof data === 'string') data.toUpperCase();
    else if (data instanceof Uint8Array) void data.byteLength;
    void own;
  });
}

it('SendData and MessageData are real types (see tsc -p test)', () => {
  expect(typeof typed).toBe('function');
});
