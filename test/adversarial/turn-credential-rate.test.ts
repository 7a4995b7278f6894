/**
 * Attack: a TURN credential (every joined signaling client gets one) used to get past the rate
 * limits, and a spoofed flood used to starve real clients of the global bucket.
 * - Any request that authenticated from an address without an allocation got its per-IP and
 *   global tokens back before the handler ran, so an Allocate that fails forever (TCP relay:
 *   442; over quota: 486) cost no token while costing two HMACs and node-turn's decode and
 *   encode each: one 401 for a nonce, then no limit at all.
 * - The global bucket was spent by every request from an address without an allocation:
 *   junk above its refill rate (from spoofed sources, which per-IP buckets cannot stop) left
 *   no token for a real client's Allocate.
 * - Then authenticated requests spent the same per-IP bucket (64 at once, 16/s) as the
 *   Bindings and unauthenticated Allocates before them: a browser joining a full 32-peer room
 *   had ~2 tokens left for its 31 authenticated Allocates, and most waited for a STUN
 *   retransmit. Requests with a valid nonce now spend the verified buckets.
 */
import { randomBytes } from 'node:crypto';
import type dgram from 'node:dgram';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { encode, StunAttr, type StunAttribute, StunClass, StunMethod } from '../../turn/codec.js';
import type { TurnServer, TurnServerOptions } from '../../turn/index.js';
import { cleanup } from '../helpers/resources.js';
import { metricValue } from '../helpers/server.js';
import { errorCode, type Response, TurnTestClient } from '../helpers/turn-client.js';
import { startTurnServer } from '../helpers/turn-server.js';

afterEach(async () => {
  await cleanup();
});

const USERS: Record<string, string> = { alice: 'secret-a', bob: 'secret-b', mallory: 'secret-m' };
const UDP: StunAttribute = { type: StunAttr.requestedTransport, value: Buffer.from([17, 0, 0, 0]) };
/** REQUESTED-TRANSPORT TCP: never relayed here, 442 every time (RFC 8656 section 7.2). */
const TCP: StunAttribute = { type: StunAttr.requestedTransport, value: Buffer.from([6, 0, 0, 0]) };

const start = (extra: Partial<TurnServerOptions> = {}): ReturnType<typeof startTurnServer> => startTurnServer(USERS, extra);

const code = (res: Response | 'no answer'): number | 'no answer' => (res === 'no answer' ? res : res.msg.cls === StunClass.success ? 200 : (errorCode(res.msg) ?? -1));

async function refusals(server: TurnServer, reason: string): Promise<number> {
  return metricValue(await server.metrics.registry.metrics(), 'rallypoint_turn_refusals_total', { reason }) ?? 0;
}

/** The answer, or 'no answer' after `ms` (a dropped request is never answered). */
function within(res: Promise<Response>, ms = 3000): Promise<Response | 'no answer'> {
  return Promise.race([res, new Promise<'no answer'>((r) => setTimeout(() => r('no answer'), ms).unref())]);
}

/** Sends datagrams in small batches, letting the server read between them (no socket buffer overflow). */
async function blast(socket: dgram.Socket, to: { address: string; port: number }, datagrams: Buffer[]): Promise<void> {
  for (let i = 0; i < datagrams.length; i += 32) {
    await Promise.all(datagrams.slice(i, i + 32).map((d) => new Promise<void>((r) => socket.send(d, to.port, to.address, () => r()))));
    await new Promise((r) => setTimeout(r, 1));
  }
}

/** Counts the 442 answers a client's socket gets. */
function count442(c: TurnTestClient): { n: number } {
  const seen = { n: 0 };
  c.socket.on('message', (buf: Buffer) => {
    // error class, ERROR-CODE 442 anywhere in the body is enough for a count
    if (buf.length >= 20 && (buf.readUInt16BE(0) & 0x0110) === 0x0110 && buf.includes(Buffer.from([0, 0, 4, 42]))) seen.n++;
  });
  return seen;
}

describe('TURN: a credential buys no extra request rate', () => {
  it('thousands of authenticated Allocates that fail (442) end up rate-limited, and another client still allocates', async () => {
    const { server, address } = await start();
    const mallory = await TurnTestClient.open(address, 'mallory', 'secret-m');
    // one 401 for a nonce, then a signed 442
    expect(code(await mallory.request(StunMethod.allocate, [TCP]))).toBe(442);
    const answered = count442(mallory);
    const total = 2000;
    await blast(
      mallory.socket,
      address,
      Array.from({ length: total }, () => mallory.signed(StunMethod.allocate, [TCP])),
    );
    // every datagram was either answered or refused (a few may be lost on loopback)
    await vi.waitFor(async () => expect((await refusals(server, 'rate-limited')) + answered.n).toBeGreaterThanOrEqual(total * 0.95), { timeout: 10_000 });
    const limited = await refusals(server, 'rate-limited');
    // the per-username bucket (32 at once, 8/s) and the verified per-IP one (256, 64/s); before
    // the first fix all 2,000 were answered
    expect(limited).toBeGreaterThan(total * 0.8);
    expect(answered.n).toBeLessThan(total * 0.15);
    // a legitimate client from another address is unaffected
    const bob = await TurnTestClient.open(address, 'bob', 'secret-b', '127.0.0.2');
    expect(code(await within(bob.request(StunMethod.allocate, [UDP])))).toBe(200);
    expect(server.allocationCount).toBe(1);
  }, 30_000);

  it('one credential used from many addresses is limited by its own bucket, another credential is not', async () => {
    // Per-IP buckets out of the way: only the per-username bucket (32 at once, 8/s) is left.
    const { server, address } = await start({ quotas: { unauthenticatedBurst: 100_000, verifiedSourceBurst: 100_000 } });
    const clients: TurnTestClient[] = [];
    for (let i = 0; i < 8; i++) {
      const c = await TurnTestClient.open(address, 'mallory', 'secret-m', `127.0.0.${10 + i}`);
      // the nonce only: an unauthenticated Allocate spends no credential token
      c.learn((await c.request(StunMethod.allocate, [TCP], { auth: false })).msg);
      clients.push(c);
    }
    const answered = clients.map(count442);
    const perClient = 100;
    for (const c of clients)
      await blast(
        c.socket,
        address,
        Array.from({ length: perClient }, () => c.signed(StunMethod.allocate, [TCP])),
      );
    const total = clients.length * perClient;
    const got = (): number => answered.reduce((n, a) => n + a.n, 0);
    await vi.waitFor(async () => expect((await refusals(server, 'rate-limited')) + got()).toBeGreaterThanOrEqual(total * 0.95), { timeout: 10_000 });
    expect(await refusals(server, 'rate-limited')).toBeGreaterThan(total * 0.7);
    expect(got()).toBeLessThan(total * 0.25);
    const bob = await TurnTestClient.open(address, 'bob', 'secret-b', '127.0.0.2');
    expect(code(await within(bob.request(StunMethod.allocate, [UDP])))).toBe(200);
  }, 30_000);

  it('an Allocate that creates an allocation gives its verified per-IP token back; one that fails does not', async () => {
    const { server, address } = await start({ quotas: { verifiedSourceBurst: 2, verifiedSourcePerSecond: 0.001 } });
    // 3 allocations: 3 challenges (unverified bucket) + 3 signed Allocates (verified, given back)
    for (let i = 0; i < 3; i++) {
      const c = await TurnTestClient.open(address, 'alice', 'secret-a');
      await c.allocate();
    }
    expect(server.allocationCount).toBe(3);
    const m = await TurnTestClient.open(address, 'mallory', 'secret-m');
    // challenge (unverified), signed 442 (verified token 1, kept), signed 442 (token 2, kept), then nothing left
    expect(code(await within(m.request(StunMethod.allocate, [TCP])))).toBe(442);
    expect(code(await within(m.transact((tid) => m.signed(StunMethod.allocate, [TCP], tid))))).toBe(442);
    expect(
      code(
        await within(
          m.transact((tid) => m.signed(StunMethod.allocate, [TCP], tid)),
          500,
        ),
      ),
    ).toBe('no answer');
  });

  /** 31 sockets on one IP (one RTCPeerConnection per remote peer), each after a Binding and a 401: ready to send its authenticated Allocate. */
  async function joiningBrowser(address: { address: string; port: number }): Promise<TurnTestClient[]> {
    const clients = await Promise.all(Array.from({ length: 31 }, () => TurnTestClient.open(address, 'alice', 'secret-a')));
    // within() gives up after 3 s and nothing is retransmitted: a dropped request fails the test
    const bindings = await Promise.all(clients.map((c) => within(c.transact(binding))));
    expect(bindings.map(code)).toEqual(clients.map(() => 200));
    const challenges = await Promise.all(clients.map((c) => within(c.transact(challenge))));
    expect(challenges.map(code)).toEqual(clients.map(() => 401));
    clients.forEach((c, i) => {
      c.learn((challenges[i] as Response).msg);
    });
    return clients;
  }
  const binding = (tid: Buffer): Buffer => encode({ method: StunMethod.binding, cls: StunClass.request, transactionId: tid, attributes: [] });
  const challenge = (tid: Buffer): Buffer => encode({ method: StunMethod.allocate, cls: StunClass.request, transactionId: tid, attributes: [UDP] });

  it('a browser joining a full room: 31 Bindings, 31 challenges, then 31 authenticated Allocates at once all get 200 first time', async () => {
    const { server, address } = await start();
    const clients = await joiningBrowser(address);
    const allocates = await Promise.all(clients.map((c) => within(c.transact((tid) => c.signed(StunMethod.allocate, [UDP], tid)))));
    expect(allocates.map(code)).toEqual(clients.map(() => 200));
    expect(server.allocationCount).toBe(31);
    expect(await refusals(server, 'rate-limited')).toBe(0);
  });

  it('with the per-IP bucket emptied by others on the same IP (NAT, or spoofed), those 31 authenticated Allocates still all get 200 first time', async () => {
    const { server, address } = await start();
    const clients = await joiningBrowser(address);
    // another host behind the same NAT (or datagrams spoofing this IP) spends the rest of the
    // IP's unverified bucket: 64 at once, 62 spent above
    const other = await TurnTestClient.open(address, 'x', 'x');
    await blast(
      other.socket,
      address,
      Array.from({ length: 40 }, () => binding(randomBytes(12))),
    );
    await vi.waitFor(async () => expect(await refusals(server, 'rate-limited')).toBeGreaterThanOrEqual(30), { timeout: 5000 });
    const limited = await refusals(server, 'rate-limited');
    // before the fix the authenticated Allocates spent that same empty bucket: all dropped
    const allocates = await Promise.all(clients.map((c) => within(c.transact((tid) => c.signed(StunMethod.allocate, [UDP], tid)))));
    expect(allocates.map(code)).toEqual(clients.map(() => 200));
    expect(server.allocationCount).toBe(31);
    expect(await refusals(server, 'rate-limited')).toBe(limited);
  });
});

describe('TURN: spoofed junk cannot starve requests that carry a valid nonce', () => {
  it('with the global bucket emptied by one source, a client with a valid nonce still allocates', async () => {
    const { server, address } = await start({ quotas: { unauthenticatedGlobalBurst: 20, unauthenticatedGlobalPerSecond: 0.01, unauthenticatedBurst: 100_000 } });
    const alice = await TurnTestClient.open(address, 'alice', 'secret-a', '127.0.0.2');
    // alice's challenge (one global token): she holds a nonce bound to her address
    const challenge = await alice.request(StunMethod.allocate, [UDP], { auth: false });
    expect(code(challenge)).toBe(401);
    alice.learn(challenge.msg);
    // the flood: unauthenticated Bindings from one (as good as spoofed) source
    const flood = await TurnTestClient.open(address, 'x', 'x', '127.0.0.3');
    const binding = (): Buffer => encode({ method: StunMethod.binding, cls: StunClass.request, transactionId: randomBytes(12), attributes: [] });
    await blast(flood.socket, address, Array.from({ length: 200 }, binding));
    await vi.waitFor(async () => expect(await refusals(server, 'rate-limited')).toBeGreaterThanOrEqual(150), { timeout: 10_000 });
    // the global bucket is empty: a new client gets no challenge
    const carol = await TurnTestClient.open(address, 'bob', 'secret-b', '127.0.0.4');
    expect(code(await within(carol.request(StunMethod.allocate, [UDP], { auth: false }), 500))).toBe('no answer');
    // alice's signed Allocate carries a nonce issued to her address: it passes
    const res = await within(alice.transact((tid) => alice.signed(StunMethod.allocate, [UDP], tid)));
    expect(code(res)).toBe(200);
    expect(server.allocationCount).toBe(1);
    // a forged nonce (or one issued to another address) spends the unverified buckets: nothing
    const thief = await TurnTestClient.open(address, 'alice', 'secret-a', '127.0.0.5');
    thief.realm = alice.realm;
    thief.nonce = alice.nonce;
    thief.key = alice.key;
    expect(
      code(
        await within(
          thief.transact((tid) => thief.signed(StunMethod.allocate, [UDP], tid)),
          500,
        ),
      ),
    ).toBe('no answer');
  });
});
