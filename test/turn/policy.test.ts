/** Peer address policy: the TURN server must not relay into internal networks (SSRF). */
import { afterEach, describe, expect, it } from 'vitest';
import { StunClass } from '../../turn/codec.js';
import { PeerPolicy, type PeerPolicyOptions, TurnServer } from '../../turn/index.js';
import { cleanup, defer } from '../helpers/resources.js';
import { verifyIntegrity } from '../helpers/stun-codec.js';
import { errorCode, TurnTestClient, udpPeer } from '../helpers/turn-client.js';

afterEach(cleanup);

describe('PeerPolicy', () => {
  const denied = [
    '127.0.0.1',
    '127.255.255.254',
    '10.0.0.1',
    '172.16.5.4',
    '192.168.1.1',
    '100.64.0.1',
    '169.254.169.254',
    '0.0.0.0',
    '224.0.0.251',
    '255.255.255.255',
    '240.0.0.1',
    '192.0.2.1',
    '198.51.100.7',
    '203.0.113.9',
    '198.18.0.1',
    '::1',
    '::',
    '0:0:0:0:0:0:0:1',
    '::ffff:127.0.0.1',
    '0:0:0:0:0:ffff:7f00:1',
    '::ffff:10.0.0.1',
    '::ffff:169.254.169.254',
    '64:ff9b::7f00:1',
    '64:ff9b::8.8.8.8',
    'fc00::1',
    'fd12:3456::1',
    'fe80::1',
    'ff02::1',
    '2001:db8::1',
    '2002::1',
    'not-an-ip',
    '',
  ];
  const allowed = ['8.8.8.8', '1.1.1.1', '2606:4700:4700::1111', '::ffff:8.8.8.8', '172.32.0.1', '100.128.0.1'];

  it.each(denied)('refuses %s by default', (a) => expect(new PeerPolicy().allows(a)).toBe(false));
  it.each(allowed)('allows %s by default', (a) => expect(new PeerPolicy().allows(a)).toBe(true));

  it('an allow list opens exactly its ranges, in IPv4-mapped form too', () => {
    const p = new PeerPolicy({ allow: ['127.0.0.0/8', '10.1.0.0/16'] });
    expect(p.allows('127.0.0.1')).toBe(true);
    expect(p.allows('::ffff:127.0.0.1')).toBe(true);
    expect(p.allows('10.1.2.3')).toBe(true);
    expect(p.allows('10.2.0.1')).toBe(false);
    expect(p.allows('::1')).toBe(false);
    expect(p.allows('169.254.169.254')).toBe(false);
    // NAT64 prefix itself stays denied
    expect(p.allows('64:ff9b::7f00:1')).toBe(false);
  });

  it('rejects malformed CIDRs with bad-cidr', () => {
    for (const bad of ['10.0.0.0/33', 'nope/8', '::1/129', '10.0.0.0/8/1', '10.0.0.0/x']) {
      expect(() => new PeerPolicy({ allow: [bad] })).toThrow(expect.objectContaining({ code: 'bad-cidr' }));
    }
  });
});

async function start(peers?: PeerPolicyOptions): Promise<{ address: { address: string; port: number } }> {
  const server = new TurnServer({ host: '127.0.0.1', port: 0, credentials: (u) => (u === 'alice' ? 'pw' : undefined), peers });
  defer(() => server.close());
  return { address: await server.listen() };
}

describe('TurnServer peer policy', () => {
  it.each(['::1', '::ffff:127.0.0.1', '169.254.169.254', '10.0.0.1', '127.0.0.1'])('refuses CreatePermission and ChannelBind to %s with 403', async (ip) => {
    const { address } = await start();
    const c = await TurnTestClient.open(address, 'alice', 'pw');
    await c.allocate();
    const peer = { address: ip, port: 9 };
    const perm = await c.createPermission(peer);
    const bind = await c.channelBind(0x4000, peer);
    expect(errorCode(perm.msg)).toBe(403);
    expect(errorCode(bind.msg)).toBe(403);
    // RFC 8489 section 9.2.4: an error response to an authenticated request is signed
    // (node-turn's reject() sent it unsigned).
    expect(verifyIntegrity(perm.raw, c.key!)).toBe(true);
    expect(verifyIntegrity(bind.raw, c.key!)).toBe(true);
  });

  it('nothing reaches a UDP listener on 127.0.0.1 (Send, ChannelBind, ChannelData)', async () => {
    // 127.0.0.2 is allowed as a sentinel: once its datagram arrives, an earlier one to
    // 127.0.0.1 would have arrived too.
    const { address } = await start({ allow: ['127.0.0.2/32'] });
    const target = await udpPeer('127.0.0.1');
    const sentinel = await udpPeer('127.0.0.2');
    const c = await TurnTestClient.open(address, 'alice', 'pw');
    const { relayed } = await c.allocate();
    expect(errorCode((await c.createPermission(target.address)).msg)).toBe(403);
    expect(errorCode((await c.channelBind(0x4000, target.address)).msg)).toBe(403);
    c.sendIndication(target.address, Buffer.from('ssrf via send'));
    c.channelData(0x4000, Buffer.from('ssrf via channel'));
    expect((await c.createPermission(sentinel.address)).msg.cls).toBe(StunClass.success);
    c.sendIndication(sentinel.address, Buffer.from('sentinel'));
    expect((await sentinel.next()).data.toString()).toBe('sentinel');
    await new Promise((r) => setImmediate(r));
    expect(target.received).toHaveLength(0);
    // and the target cannot talk to the client through the relay either
    target.socket.send(Buffer.from('inbound'), relayed.port, relayed.address);
    sentinel.socket.send(Buffer.from('sentinel back'), relayed.port, relayed.address);
    const got = await c.nextData();
    expect(got.data.toString()).toBe('sentinel back');
  });

  it('with 127.0.0.0/8 allowed, relays end to end: Send/Data indications and ChannelData both ways', async () => {
    const { address } = await start({ allow: ['127.0.0.0/8'] });
    const peer = await udpPeer('127.0.0.1');
    const c = await TurnTestClient.open(address, 'alice', 'pw');
    const { relayed } = await c.allocate();
    expect(relayed.address).toBe('127.0.0.1');
    expect((await c.createPermission(peer.address)).msg.cls).toBe(StunClass.success);
    c.sendIndication(peer.address, Buffer.from('ping'));
    const first = await peer.next();
    expect(first.data.toString()).toBe('ping');
    expect(first.from).toEqual(relayed);
    peer.socket.send(Buffer.from('pong'), relayed.port, relayed.address);
    const pong = await c.nextData();
    expect(pong.peer).toEqual(peer.address);
    expect(pong.data.toString()).toBe('pong');

    expect((await c.channelBind(0x4abc, peer.address)).msg.cls).toBe(StunClass.success);
    c.channelData(0x4abc, Buffer.from('chan ping'));
    expect((await peer.next()).data.toString()).toBe('chan ping');
    peer.socket.send(Buffer.from('chan pong'), relayed.port, relayed.address);
    const back = await c.nextData();
    expect(back.channel).toBe(0x4abc);
    expect(back.data.toString()).toBe('chan pong');
  });

  it('over IPv6: with ::1/128 allowed, relays to a ::1 listener and back', async () => {
    const server = new TurnServer({ host: '::1', port: 0, credentials: (u) => (u === 'alice' ? 'pw' : undefined), peers: { allow: ['::1/128'] } });
    defer(() => server.close());
    const address = await server.listen();
    const peer = await udpPeer('::1');
    const c = await TurnTestClient.open(address, 'alice', 'pw');
    const { relayed } = await c.allocate();
    expect((await c.createPermission(peer.address)).msg.cls).toBe(StunClass.success);
    c.sendIndication(peer.address, Buffer.from('v6'));
    expect((await peer.next()).data.toString()).toBe('v6');
    peer.socket.send(Buffer.from('v6 back'), relayed.port, '::1');
    const got = await c.nextData();
    expect(got.peer?.port).toBe(peer.address.port);
    expect(got.data.toString()).toBe('v6 back');
    // and without the allow list ::1 is refused
    const strict = new TurnServer({ host: '::1', port: 0, credentials: (u) => (u === 'alice' ? 'pw' : undefined) });
    defer(() => strict.close());
    const c2 = await TurnTestClient.open(await strict.listen(), 'alice', 'pw');
    await c2.allocate();
    expect(errorCode((await c2.createPermission(peer.address)).msg)).toBe(403);
  });
});
