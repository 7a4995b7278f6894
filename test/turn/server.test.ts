/**
 * The embedded TURN server over real UDP sockets on loopback. Each test names the node-turn
 * 0.0.6 defect it guards against; each fails against node-turn's own handlers.
 */
import dgram from 'node:dgram';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { decodeXorAddress, encode, StunAttr, StunClass, StunMethod } from '../../turn/codec.js';
import { TurnError, TurnServer, type TurnServerOptions } from '../../turn/index.js';
import { cleanup, defer, deferred } from '../helpers/resources.js';
import { decode, getAttr, verifyIntegrity } from '../helpers/stun-codec.js';
import { errorCode, TurnTestClient, u32, udpPeer } from '../helpers/turn-client.js';
import { startTurnServer } from '../helpers/turn-server.js';

afterEach(async () => {
  vi.useRealTimers();
  vi.restoreAllMocks();
  await cleanup();
});

const USERS: Record<string, string> = { alice: 'secret-a', bob: 'secret-b' };

const startServer = (extra: Partial<TurnServerOptions> = {}): ReturnType<typeof startTurnServer> => startTurnServer(USERS, extra);

const UDP_TRANSPORT = { type: StunAttr.requestedTransport, value: Buffer.from([17, 0, 0, 0]) };

/** True once `port` on 127.0.0.1 can be bound again, i.e. the relay socket was closed. */
async function portIsFree(port: number): Promise<boolean> {
  const s = dgram.createSocket('udp4');
  try {
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.bind({ port, address: '127.0.0.1', exclusive: true }, () => resolve());
    });
    return true;
  } catch {
    return false;
  } finally {
    s.close();
  }
}

describe('TurnServer', () => {
  it('refuses to start without credentials (node-turn defaults to authMech "none", an open relay)', () => {
    expect(() => new TurnServer({} as unknown as TurnServerOptions)).toThrow(TurnError);
    try {
      new TurnServer({} as unknown as TurnServerOptions);
    } catch (err) {
      expect((err as TurnError).code).toBe('insecure-config');
    }
  });

  it('refuses a wildcard listener without a relay or external address, and bad ranges (bad-config)', () => {
    const credentials = (): undefined => undefined;
    expect(() => new TurnServer({ host: '0.0.0.0', credentials })).toThrow(expect.objectContaining({ code: 'bad-config' }));
    expect(() => new TurnServer({ host: '127.0.0.1', credentials, minPort: 5000, maxPort: 4000 })).toThrow(expect.objectContaining({ code: 'bad-config' }));
    expect(() => new TurnServer({ host: '0.0.0.0', relayAddress: '127.0.0.1', credentials })).not.toThrow();
  });

  it('advertises externalAddress in XOR-RELAYED-ADDRESS (1:1 NAT)', async () => {
    const { address } = await startServer({ externalAddress: '203.0.113.7' });
    const c = await TurnTestClient.open(address, 'alice', 'secret-a');
    const { relayed } = await c.allocate();
    expect(relayed.address).toBe('203.0.113.7');
  });

  it('listen() binds once when called twice, and fails with listen-failed on a taken port', async () => {
    const { server, address } = await startServer();
    expect(await server.listen()).toEqual(address);
    const other = new TurnServer({ host: '127.0.0.1', port: address.port, credentials: () => undefined });
    defer(() => other.close());
    await expect(other.listen()).rejects.toMatchObject({ code: 'listen-failed' });
  });

  it('answers STUN Binding without credentials', async () => {
    const { address } = await startServer();
    const c = await TurnTestClient.open(address, 'alice', 'x');
    const res = await c.request(StunMethod.binding, [], { auth: false });
    expect(res.msg.cls).toBe(StunClass.success);
    expect(getAttr(res.msg, StunAttr.xorMappedAddress)).toBeDefined();
  });

  it('rejects unauthenticated and wrong-password Allocate with 401', async () => {
    const { address } = await startServer();
    const c = await TurnTestClient.open(address, 'alice', 'wrong');
    const res = await c.request(StunMethod.allocate, [{ type: StunAttr.requestedTransport, value: Buffer.from([17, 0, 0, 0]) }]);
    expect(errorCode(res.msg)).toBe(401);
    const unknown = await TurnTestClient.open(address, 'mallory', 'x');
    await expect(unknown.allocate()).rejects.toThrow(/401/);
  });

  it('nonces come from crypto, not Math.random (node-turn authentification.js generateNonce)', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.5);
    const { address } = await startServer();
    const c = await TurnTestClient.open(address, 'alice', 'secret-a');
    const nonces = new Set<string>();
    for (let i = 0; i < 3; i++) {
      const res = await c.request(StunMethod.allocate, [], { auth: false });
      expect(errorCode(res.msg)).toBe(401);
      const nonce = getAttr(res.msg, StunAttr.nonce)!.toString();
      expect(nonce).toMatch(/^[0-9a-f]{58}$/);
      nonces.add(nonce);
    }
    expect(nonces.size).toBe(3);
    // a nonce the server never issued is stale
    c.learn({ ...(await c.request(StunMethod.allocate, [], { auth: false })).msg });
    c.nonce = `${c.nonce!.slice(0, 57)}${c.nonce!.endsWith('0') ? '1' : '0'}`;
    const stale = await c.transact((transactionId) => c.signed(StunMethod.allocate, [UDP_TRANSPORT], transactionId));
    expect(errorCode(stale.msg)).toBe(438);
  });

  it('nonces expire after an hour: 438 Stale Nonce, then the client goes on with the new one', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const { address } = await startServer();
    const c = await TurnTestClient.open(address, 'alice', 'secret-a');
    await c.allocate();
    const first = c.nonce;
    expect((await c.refresh()).msg.cls).toBe(StunClass.success);
    expect(c.nonce).toBe(first);
    vi.setSystemTime(Date.now() + 3_601_000);
    const res = await c.refresh();
    expect(res.msg.cls).toBe(StunClass.success);
    expect(c.nonce).not.toBe(first);
  });

  it('honours the requested LIFETIME on Allocate (node-turn reads "liftetime")', async () => {
    const { address } = await startServer();
    const c = await TurnTestClient.open(address, 'alice', 'secret-a');
    const a = await c.allocate(1200);
    expect(a.lifetime).toBe(1200);
    expect(verifyIntegrity(a.res.raw, c.key!)).toBe(true);
    const capped = await (await TurnTestClient.open(address, 'bob', 'secret-b')).allocate(99_999);
    expect(capped.lifetime).toBe(3600);
  });

  it('answers a retransmitted Allocate with the same allocation, never a second one', async () => {
    const { server, address } = await startServer();
    const c = await TurnTestClient.open(address, 'alice', 'secret-a');
    await c.allocate();
    await c.refresh(0);
    const relayedPorts = new Set<number>();
    let responses = 0;
    const first = deferred();
    let raw: Buffer | undefined;
    c.socket.on('message', (buf: Buffer) => {
      const msg = decode(buf);
      if (!raw || !msg.transactionId.equals(raw.subarray(8, 20))) return;
      responses++;
      relayedPorts.add(decodeXorAddress(getAttr(msg, StunAttr.xorRelayedAddress)!, msg.transactionId).port);
      first.resolve();
    });
    const transactionId = Buffer.from('0123456789ab');
    raw = encode(
      {
        method: StunMethod.allocate,
        cls: StunClass.request,
        transactionId,
        attributes: [
          { type: StunAttr.requestedTransport, value: Buffer.from([17, 0, 0, 0]) },
          { type: StunAttr.username, value: Buffer.from('alice') },
          { type: StunAttr.realm, value: Buffer.from(c.realm!) },
          { type: StunAttr.nonce, value: Buffer.from(c.nonce!) },
        ],
      },
      { key: c.key },
    );
    c.sendRaw(raw);
    c.sendRaw(raw);
    await first.promise;
    // a later retransmission gets the same answer
    const again = deferred();
    const before = responses;
    c.socket.on('message', () => {
      if (responses > before) again.resolve();
    });
    c.sendRaw(raw);
    await again.promise;
    expect(relayedPorts.size).toBe(1);
    expect(server.allocationCount).toBe(1);
    // a new Allocate (new transaction) on the same 5-tuple is a mismatch
    await expect(c.allocate()).rejects.toThrow(/437/);
    expect(server.allocationCount).toBe(1);
  });

  it('keeps the allocation across two Refreshes (node-turn replied LIFETIME=0 and deleted it)', async () => {
    const { server, address } = await startServer();
    const peer = await udpPeer();
    const c = await TurnTestClient.open(address, 'alice', 'secret-a');
    await c.allocate();
    const r1 = await c.refresh(900);
    expect(r1.msg.cls).toBe(StunClass.success);
    expect(getAttr(r1.msg, StunAttr.lifetime)!.readUInt32BE(0)).toBe(900);
    expect(verifyIntegrity(r1.raw, c.key!)).toBe(true);
    const r2 = await c.refresh();
    expect(getAttr(r2.msg, StunAttr.lifetime)!.readUInt32BE(0)).toBe(600);
    expect(server.allocationCount).toBe(1);
    // still relays
    expect((await c.createPermission(peer.address)).msg.cls).toBe(StunClass.success);
    c.sendIndication(peer.address, Buffer.from('still here'));
    expect((await peer.next()).data.toString()).toBe('still here');
  });

  it('closes the relay socket on Refresh LIFETIME=0 (node-turn leaked the port)', async () => {
    const { server, address } = await startServer();
    const c = await TurnTestClient.open(address, 'alice', 'secret-a');
    const { relayed } = await c.allocate();
    expect(await portIsFree(relayed.port)).toBe(false);
    const res = await c.refresh(0);
    expect(res.msg.cls).toBe(StunClass.success);
    expect(getAttr(res.msg, StunAttr.lifetime)!.readUInt32BE(0)).toBe(0);
    expect(server.allocationCount).toBe(0);
    expect(await portIsFree(relayed.port)).toBe(true);
    expect(errorCode((await c.refresh()).msg)).toBe(437);
  });

  it('closes the relay socket when the allocation expires (node-turn leaked the port)', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const { server, address } = await startServer();
    const c = await TurnTestClient.open(address, 'alice', 'secret-a');
    const { relayed } = await c.allocate();
    expect(server.allocationCount).toBe(1);
    vi.advanceTimersByTime(599_000);
    expect(server.allocationCount).toBe(1);
    vi.advanceTimersByTime(2_000);
    expect(server.allocationCount).toBe(0);
    expect(await portIsFree(relayed.port)).toBe(true);
  });

  it('closes every relay socket on close(), and close() is idempotent', async () => {
    const { server, address } = await startServer();
    const c = await TurnTestClient.open(address, 'alice', 'secret-a');
    const { relayed } = await c.allocate();
    await server.close();
    await server.close();
    expect(await portIsFree(relayed.port)).toBe(true);
    expect(await portIsFree(address.port)).toBe(true);
    await expect(server.listen()).rejects.toMatchObject({ code: 'closed' });
  });

  it('close() resolves only once every relay socket is closed, those still being bound included', async () => {
    const { server, address } = await startServer();
    const clients = await Promise.all(Array.from({ length: 8 }, () => TurnTestClient.open(address, 'alice', 'secret-a')));
    // Learn a nonce each (bound to each client's address), then build their Allocates.
    for (const c of clients) c.learn((await c.request(StunMethod.allocate, [{ type: StunAttr.requestedTransport, value: Buffer.from([17, 0, 0, 0]) }], { auth: false })).msg);
    const udpHandles = (): number => process.getActiveResourcesInfo().filter((r) => r === 'UDPWrap').length;
    // Everything but the server's listening socket.
    const baseline = udpHandles() - 1;
    const listener = (server as unknown as { listener: { socket: dgram.Socket } }).listener.socket;
    // close() right after the server handled the first Allocate: its relay port is being bound.
    const closed = new Promise<void>((resolve) => listener.once('message', () => resolve(server.close())));
    for (const c of clients) {
      c.sendRaw(c.signed(StunMethod.allocate, [UDP_TRANSPORT], Buffer.alloc(12, 1)));
    }
    await closed;
    expect(udpHandles()).toBe(baseline);
    expect(server.allocationCount).toBe(0);
  });

  it('signs the ChannelBind success with MESSAGE-INTEGRITY (node-turn channelBind.js did not)', async () => {
    const { address } = await startServer();
    const peer = await udpPeer();
    const c = await TurnTestClient.open(address, 'alice', 'secret-a');
    await c.allocate();
    const res = await c.channelBind(0x4000, peer.address);
    expect(res.msg.cls).toBe(StunClass.success);
    expect(getAttr(res.msg, StunAttr.messageIntegrity)).toBeDefined();
    expect(verifyIntegrity(res.raw, c.key!)).toBe(true);
  });

  it('relays client ChannelData to the peer and peer data back as ChannelData (node-turn message.js dropped it)', async () => {
    const { address } = await startServer();
    const peer = await udpPeer();
    const c = await TurnTestClient.open(address, 'alice', 'secret-a');
    const { relayed } = await c.allocate();
    expect((await c.channelBind(0x4001, peer.address)).msg.cls).toBe(StunClass.success);
    c.channelData(0x4001, Buffer.from('over the channel'));
    const got = await peer.next();
    expect(got.data.toString()).toBe('over the channel');
    expect(got.from.port).toBe(relayed.port);
    peer.socket.send(Buffer.from('back again'), relayed.port, relayed.address);
    const back = await c.nextData();
    expect(back.channel).toBe(0x4001);
    expect(back.data.toString()).toBe('back again');
  });

  it('expires a channel binding after 10 minutes unless refreshed (node-turn kept it forever)', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const { address } = await startServer();
    const peer = await udpPeer();
    const c = await TurnTestClient.open(address, 'alice', 'secret-a');
    const { relayed } = await c.allocate();
    expect((await c.channelBind(0x4002, peer.address)).msg.cls).toBe(StunClass.success);
    peer.socket.send(Buffer.from('bound'), relayed.port, relayed.address);
    expect((await c.nextData()).channel).toBe(0x4002);
    vi.setSystemTime(Date.now() + 550_000);
    expect((await c.createPermission(peer.address)).msg.cls).toBe(StunClass.success);
    expect((await c.refresh()).msg.cls).toBe(StunClass.success);
    vi.setSystemTime(Date.now() + 60_000);
    peer.socket.send(Buffer.from('unbound'), relayed.port, relayed.address);
    const got = await c.nextData();
    expect(got.channel).toBeUndefined();
    expect(got.peer?.port).toBe(peer.address.port);
    // rebinding refreshes it
    expect((await c.channelBind(0x4002, peer.address)).msg.cls).toBe(StunClass.success);
    peer.socket.send(Buffer.from('bound again'), relayed.port, relayed.address);
    expect((await c.nextData()).channel).toBe(0x4002);
  });

  it('passes peer data that looks like ChannelData through untouched (node-turn allocation.js stripped it)', async () => {
    const { address } = await startServer();
    const peer = await udpPeer();
    const c = await TurnTestClient.open(address, 'alice', 'secret-a');
    const { relayed } = await c.allocate();
    await c.createPermission(peer.address);
    const payload = Buffer.from([0x40, 0x00, 0x00, 0x02, 0xaa, 0xbb]);
    peer.socket.send(payload, relayed.port, relayed.address);
    const got = await c.nextData();
    expect(got.peer?.port).toBe(peer.address.port);
    expect(got.data.equals(payload)).toBe(true);
  });

  it('allocates an even relay port for EVEN-PORT, 508 for reservations (node-turn threw reading EVEN-PORT)', async () => {
    const { address } = await startServer();
    const c = await TurnTestClient.open(address, 'alice', 'secret-a');
    const evenPort = (r: boolean): { type: number; value: Buffer } => ({ type: 0x0018, value: Buffer.from([r ? 0x80 : 0]) });
    const transport = { type: StunAttr.requestedTransport, value: Buffer.from([17, 0, 0, 0]) };
    expect(errorCode((await c.request(StunMethod.allocate, [transport, evenPort(true)])).msg)).toBe(508);
    const res = await c.request(StunMethod.allocate, [transport, evenPort(false)]);
    expect(res.msg.cls).toBe(StunClass.success);
    const relayed = decodeXorAddress(getAttr(res.msg, StunAttr.xorRelayedAddress)!, res.msg.transactionId);
    expect(relayed.port % 2).toBe(0);
  });

  it('accepts RFC 5766 channel numbers up to 0x7FFE and refuses others with 400', async () => {
    const { address } = await startServer();
    const peer = await udpPeer();
    const c = await TurnTestClient.open(address, 'alice', 'secret-a');
    await c.allocate();
    expect((await c.channelBind(0x7ffe, peer.address)).msg.cls).toBe(StunClass.success);
    expect(errorCode((await c.channelBind(0x3fff, { ...peer.address, port: peer.address.port + 1 })).msg)).toBe(400);
    // a second channel for the same peer is refused
    expect(errorCode((await c.channelBind(0x4000, peer.address)).msg)).toBe(400);
  });

  it('answers 420 listing unknown comprehension-required attributes (node-turn dropped the message)', async () => {
    const { address } = await startServer();
    const c = await TurnTestClient.open(address, 'alice', 'secret-a');
    const res = await c.request(StunMethod.binding, [{ type: 0x7ffe, value: Buffer.from('??') }], { auth: false, fingerprint: true });
    expect(res.msg.cls).toBe(StunClass.error);
    expect(errorCode(res.msg)).toBe(420);
    expect(getAttr(res.msg, StunAttr.unknownAttributes)!.readUInt16BE(0)).toBe(0x7ffe);
    // the response itself is a valid STUN message
    expect(decode(res.raw).transactionId.equals(res.msg.transactionId)).toBe(true);
  });

  it('ignores unknown comprehension-optional attributes, also inside authenticated requests', async () => {
    const { address } = await startServer();
    const c = await TurnTestClient.open(address, 'alice', 'secret-a');
    const res = await c.request(StunMethod.binding, [{ type: 0xc0de, value: Buffer.from('ignore me') }], { auth: false });
    expect(res.msg.cls).toBe(StunClass.success);
    await c.allocate();
    const refreshed = await c.request(StunMethod.refresh, [
      { type: 0xc0de, value: Buffer.from('x') },
      { type: StunAttr.lifetime, value: u32(700) },
    ]);
    expect(refreshed.msg.cls).toBe(StunClass.success);
    expect(getAttr(refreshed.msg, StunAttr.lifetime)!.readUInt32BE(0)).toBe(700);
  });
});
