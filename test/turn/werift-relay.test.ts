/**
 * werift peers in relay-only mode through the embedded TURN server. werift relays with
 * ChannelBind + ChannelData, which node-turn 0.0.6 dropped, so this is the end-to-end check
 * of those fixes.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { weriftRuntime } from '../../peer/runtime/werift.js';
import { mintTurnCredentials, restCredentialLookup, TurnServer } from '../../turn/index.js';
import { cleanup, defer, deferred } from '../helpers/resources.js';

afterEach(cleanup);

const SECRET = 'werift-relay-test-secret';

describe('werift through the embedded TURN server', () => {
  it('connects two relay-only werift peers and exchanges data-channel messages', async () => {
    const server = new TurnServer({
      host: '127.0.0.1',
      port: 0,
      credentials: restCredentialLookup({ secret: SECRET }),
      peers: { allow: ['127.0.0.0/8'] },
    });
    defer(() => server.close());
    const { port } = await server.listen();
    const { RTCPeerConnection: PC } = weriftRuntime();
    const config = (id: string): RTCConfiguration => {
      const c = mintTurnCredentials(id, { secret: SECRET, ttl: 300 });
      return { iceServers: [{ urls: `turn:127.0.0.1:${port}`, username: c.username, credential: c.password }], iceTransportPolicy: 'relay' };
    };
    const a = new PC(config('a'));
    const b = new PC(config('b'));
    defer(() => b.close());
    defer(() => a.close());
    const candidates: string[] = [];
    a.onicecandidate = (e) => {
      if (e.candidate) {
        candidates.push(e.candidate.candidate);
        void b.addIceCandidate(e.candidate);
      }
    };
    b.onicecandidate = (e) => {
      if (e.candidate) void a.addIceCandidate(e.candidate);
    };
    const received = deferred<string>();
    b.ondatachannel = (e) => {
      e.channel.onmessage = (m) => received.resolve(String(m.data));
    };
    const ch = a.createDataChannel('relay');
    const open = deferred();
    ch.onopen = () => open.resolve();
    await a.setLocalDescription(await a.createOffer());
    await b.setRemoteDescription(a.localDescription!);
    await b.setLocalDescription(await b.createAnswer());
    await a.setRemoteDescription(b.localDescription!);
    await open.promise;
    ch.send('through the relay');
    expect(await received.promise).toBe('through the relay');
    expect(candidates.length).toBeGreaterThan(0);
    expect(candidates.every((c) => c.includes(' typ relay'))).toBe(true);
    expect(server.allocationCount).toBe(2);
  });
});
