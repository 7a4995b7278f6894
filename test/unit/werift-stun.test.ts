import { describe, expect, it } from 'vitest';
import { weriftRuntime } from '../../peer/runtime/werift.js';

type Internal = { secureManager: { iceTransports?: unknown }; iceTransports: { connection: { stunServer?: unknown } }[] };

async function gatheredConnection(iceServers: RTCIceServer[] | undefined): Promise<{ stunServer?: unknown }> {
  const { RTCPeerConnection: PC } = weriftRuntime();
  const pc = new PC(iceServers === undefined ? {} : { iceServers });
  try {
    pc.createDataChannel('x');
    // The ICE transport exists once the data channel's transport is set up; gathering (which
    // would wait for an unreachable server) is not needed to see its configuration.
    await pc.createOffer();
    const transports = (pc as unknown as Internal).iceTransports;
    expect(transports.length).toBeGreaterThan(0);
    return transports[0]!.connection;
  } finally {
    await pc.close();
  }
}

describe('werift runtime: no STUN server nobody configured', () => {
  it('does not fall back to stun.l.google.com without configured STUN (werift does, even for iceServers: [])', async () => {
    expect((await gatheredConnection([])).stunServer).toBeUndefined();
    expect((await gatheredConnection(undefined)).stunServer).toBeUndefined();
    expect((await gatheredConnection([{ urls: 'turn:127.0.0.1:3478', username: 'u', credential: 'p' }])).stunServer).toBeUndefined();
  });

  it('keeps a STUN server that was configured', async () => {
    expect((await gatheredConnection([{ urls: 'stun:127.0.0.1:3478' }])).stunServer).toEqual(['127.0.0.1', 3478]);
  });
});
