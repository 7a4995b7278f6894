/**
 * Helpers for the WebSocket fallback scenarios of the NAT lab: a router that blocks
 * UDP, the fallback fixture peer (test/fixtures/nat/fallback-peer.mjs), the server's relay
 * counters, and FallbackSession: the bookkeeping and checks the fallback scenarios share.
 * Built on nat-lab.ts and netns.ts.
 */
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { LineProcess, leave, within } from './nat-lab.js';
import type { Netns } from './netns.js';

export const FALLBACK_PEER = fileURLToPath(new URL('../fixtures/nat/fallback-peer.mjs', import.meta.url));

/**
 * Fast fallback timing for the lab, so a scenario takes seconds instead of minutes. The
 * defaults (fallback after 5 s; recovery after a 2 s grace, backoff 0.5-15 s, 5 s per attempt)
 * would make the return to peer-to-peer after UDP comes back take up to ~20 s, and a test that
 * switches twice would spend most of its time waiting on backoff timers. These values keep the
 * same logic, scaled down, and are still well above what ICE needs here (1-2.5 s measured in
 * the lab, direct or through TURN): 1.5 s to fall back, retries every 0.25-2 s, 3 s per attempt.
 */
export const FAST_FALLBACK = {
  fallback: { afterMs: 1_500 },
  restart: { disconnectedGraceMs: 500, baseDelayMs: 250, maxDelayMs: 2_000, attemptTimeoutMs: 3_000 },
} as const;

export type Path = 'direct' | 'relay' | 'websocket';

export interface FallbackPeer {
  proc: LineProcess;
  id: string;
}

/** A fallback fixture peer in `ns`, joined to `room`; the options go to joinRoom as they are. */
export async function startFallbackPeer(
  ns: Netns,
  options: { url: string; room: string; fallback?: unknown; restart?: unknown; channels?: Record<string, unknown>; reconnect?: { baseMs?: number; capMs?: number } },
): Promise<FallbackPeer> {
  const proc = new LineProcess(`fallback-peer@${ns.name}`, ns.spawn(process.execPath, [FALLBACK_PEER, JSON.stringify(options)]));
  const { id } = await within(proc.next<{ id: string }>('joined'), 20_000, () => `${proc.name} did not join: ${proc.stderr}`);
  return { proc, id };
}

/**
 * The next `path` event of `peer` about `other` whose path satisfies `want` (already reported
 * or to come), with the time it was reported (the peer's clock, ms since the epoch: the lab's
 * processes share the machine's clock). With `since`, events reported before it are passed
 * over: a path may change more than once (a loaded machine can delay ICE past fallback.afterMs,
 * so a pair may fall back and return before the test acts), and an event from before an
 * action says nothing about its effect.
 */
export function nextPath(peer: FallbackPeer, other: FallbackPeer, want: (p: Path) => boolean, since = 0): Promise<{ path: Path; at: number }> {
  return peer.proc.next<{ peer: string; path: Path; at: number }>('path', (m) => m.peer === other.id && m.at >= since && want(m.path));
}

/**
 * Resolves once `x` and `y` both see their pair connected on a path that satisfies `want`,
 * now (their `peer.path`), waiting for path events as needed; rejects after `ms`.
 */
export async function settleOn(x: FallbackPeer, y: FallbackPeer, want: (p: Path) => boolean, ms: number, why: () => string): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const since = Date.now();
    const views = await Promise.all([peerView(x, y), peerView(y, x)]);
    if (views.every((v) => v.connected && v.path !== null && want(v.path))) return;
    const remaining = deadline - Date.now();
    if (remaining <= 0) throw new Error(`${why()}\npaths now: ${views.map((v) => v.path).join(' / ')}`);
    // Each side that is not there yet reports it when it gets there (awaited to the end, so no
    // waiter is left behind to take a later event).
    await within(
      Promise.all([x, y].map((p, i) => (views[i]!.path !== null && want(views[i]!.path!) ? null : nextPath(p, i === 0 ? y : x, want, since)))),
      remaining,
      () => `${why()}\npaths when last looked: ${views.map((v) => v.path).join(' / ')}`,
    );
  }
}

/** What `wait` answers: how long `count` messages took, or that they did not come in time. */
export interface Waited {
  ms: number;
  count: number;
  timeout?: true;
}

/** Asks `peer` to report when `count` more messages of `channel` from `from` arrived (while its path is `path`, if given). */
export function waitMessages(peer: FallbackPeer, from: FallbackPeer, channel: string, count: number, options: { path?: Path; timeoutMs?: number } = {}): Promise<Waited> {
  return peer.proc.request<Waited>({ cmd: 'wait', from: from.id, channel, count, timeoutMs: options.timeoutMs ?? 10_000, ...(options.path ? { path: options.path } : {}) }, 'waited');
}

export interface Received {
  /** The numbers of the reliable `r<n>` messages, in arrival order. */
  reliable: number[];
  reliableByPath: Partial<Record<Path | 'none', number>>;
  unreliable: number;
  unreliableByPath: Partial<Record<Path | 'none', number>>;
  /** The longest time between two unreliable messages, from the first on. */
  maxUnreliableGapMs: number;
  errors: string[];
}

export function received(peer: FallbackPeer, from: FallbackPeer): Promise<Received> {
  return peer.proc.request<Received>({ cmd: 'received', from: from.id }, 'received');
}

export interface PeerView {
  /** `peer.path`. */
  path: Path | null;
  connected: boolean;
  /** `(await peer.stats()).path`. */
  statsPath: Path | null;
  selectedPair: unknown;
}

/** `peer`'s view of `other` (answers are matched by peer, so several may be asked at once). */
export function peerView(peer: FallbackPeer, other: FallbackPeer): Promise<PeerView> {
  const answer = peer.proc.next<PeerView & { peer: string }>('stats', (m) => m.peer === other.id);
  peer.proc.child.stdin!.write(`${JSON.stringify({ cmd: 'stats', to: other.id })}\n`);
  return answer;
}

/** `peer`'s view of its traffic with `other` (sends, SCTP queues, recent arrivals), as JSON for failure messages. */
export async function debugView(peer: FallbackPeer, other: FallbackPeer): Promise<string> {
  const view = await within(peer.proc.request({ cmd: 'debug', peer: other.id }, 'debug'), 5_000, () => `${peer.proc.name}: no debug answer`).catch((e: Error) => e.message);
  return `${peer.proc.name} about ${other.proc.name}: ${JSON.stringify(view)}`;
}

/** Starts `r<n>` every `reliableEveryMs` and `u<n>` at `unreliableHz` from `peer` to `to`. */
export async function pump(peer: FallbackPeer, to: FallbackPeer, reliableEveryMs = 10, unreliableHz = 30): Promise<void> {
  await peer.proc.request({ cmd: 'pump', to: to.id, reliableEveryMs, unreliableHz }, 'pumping');
}

export function stopPump(peer: FallbackPeer, to: FallbackPeer): Promise<{ reliableSent: number; unreliableSent: number; sendErrors: string[] }> {
  return peer.proc.request({ cmd: 'stop', to: to.id }, 'stopped');
}

/**
 * Stops `from`'s pump and waits until `to` received every reliable message it sent; returns
 * how many were sent and the numbers `to` received, in arrival order.
 */
export async function drain(from: FallbackPeer, to: FallbackPeer, timeoutMs = 15_000): Promise<{ sent: number; got: number[]; sendErrors: string[] }> {
  const { reliableSent, sendErrors } = await stopPump(from, to);
  let r = await received(to, from);
  const missing = reliableSent - r.reliable.length;
  if (missing > 0) {
    await waitMessages(to, from, 'reliable', missing, { timeoutMs });
    r = await received(to, from);
  }
  return { sent: reliableSent, got: r.reliable, sendErrors };
}

export interface UdpBlock {
  /** UDP packets dropped so far, both directions. */
  dropped(): Promise<number>;
  remove(): Promise<void>;
}

/**
 * Makes a site's router drop every UDP packet it would forward between its LAN and the WAN
 * (both directions), as a network that blocks UDP does: the site's hosts reach neither the
 * other site nor the TURN server over UDP, TCP (signaling) is untouched. Matching on the
 * WAN interface keeps traffic inside the site's LAN alone. With `host`, only that LAN host's
 * UDP to and from the WAN is dropped (after the NAT: the address it has on the LAN). A table
 * of its own, so removing it leaves the router's NAT and firewall as they were.
 */
export async function blockUdp(router: Netns, options: { host?: string } = {}): Promise<UdpBlock> {
  const table = options.host ? `rp_block_udp_${options.host.replaceAll('.', '_')}` : 'rp_block_udp';
  // One host of the LAN only, or all of it.
  const [out, into] = options.host ? [` ip saddr ${options.host}`, ` ip daddr ${options.host}`] : ['', ''];
  await router.exec(
    'nft',
    ['-f', '-'],
    [
      `table inet ${table} {`,
      '  chain forward {',
      // Before the filter priority, so nothing else accepts these first.
      '    type filter hook forward priority -10; policy accept;',
      `    oifname "eth0"${out} meta l4proto udp counter drop`,
      `    iifname "eth0"${into} meta l4proto udp counter drop`,
      '  }',
      '}',
      '',
    ].join('\n'),
  );
  let removed = false;
  return {
    dropped: async () => {
      const { stdout } = await router.exec('nft', ['-j', 'list', 'table', 'inet', table]);
      let packets = 0;
      for (const item of (JSON.parse(stdout) as { nftables: { rule?: { expr: Record<string, unknown>[] } }[] }).nftables) {
        const counter = item.rule?.expr.find((e) => 'counter' in e)?.counter as { packets: number } | undefined;
        packets += counter?.packets ?? 0;
      }
      return packets;
    },
    remove: async () => {
      if (removed) return;
      removed = true;
      await router.exec('nft', ['delete', 'table', 'inet', table]);
    },
  };
}

/** The server's `rallypoint_relay_messages_total` by kind, read from /metrics inside `ns`. */
export async function relayedMessages(ns: Netns, httpUrl: string): Promise<{ reliable: number; unreliable: number }> {
  const script = `fetch(${JSON.stringify(`${httpUrl}/metrics`)}).then((r) => r.text()).then((t) => process.stdout.write(t), (e) => { console.error(e); process.exit(1); })`;
  const { stdout } = await ns.exec(process.execPath, ['-e', script]);
  const count = (kind: string): number => {
    const m = new RegExp(`^rallypoint_relay_messages_total\\{kind="${kind}"\\} (\\d+)$`, 'm').exec(stdout);
    if (!m) throw new Error(`no rallypoint_relay_messages_total{kind="${kind}"} in /metrics`);
    return Number(m[1]);
  };
  return { reliable: count('reliable'), unreliable: count('unreliable') };
}

/** `[0, 1, ..., n-1]`. */
export function sequence(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/** Where a received sequence differs from 0..sent-1: gaps, duplicates, reordering (for failure messages). */
export function describeSequence(got: number[], sent: number): string {
  const seen = new Map<number, number>();
  for (const n of got) seen.set(n, (seen.get(n) ?? 0) + 1);
  const missing = sequence(sent).filter((n) => !seen.has(n));
  const dup = [...seen].filter(([, c]) => c > 1).map(([n]) => n);
  let firstDisorder = -1;
  for (let i = 1; i < got.length; i++) {
    if (got[i]! <= got[i - 1]!) {
      firstDisorder = i;
      break;
    }
  }
  return `sent ${sent}, received ${got.length}; missing ${missing.length} [${missing.slice(0, 10).join(',')}]; duplicated ${dup.length} [${dup.slice(0, 10).join(',')}]; first out of order at index ${firstDisorder}${firstDisorder > 0 ? ` (${got[firstDisorder - 1]} then ${got[firstDisorder]})` : ''}`;
}

/** How much traffic a side must receive on a path, and how long it may take. */
export interface Bursts {
  /** Unreliable messages: about a second of 30 Hz state. */
  game: number;
  /** Reliable messages: about a second of them at one per 10 ms. */
  reliable: number;
  gameMs: number;
  reliableMs: number;
}

/**
 * 30 unreliable messages at 30 Hz take 1 s when nothing is lost (measured 1.0-1.1 s on every
 * path), 100 reliable ones sent every 10 ms 1.1-1.3 s; the bounds allow for a 2-core machine
 * that other test runs load to 8x its cores. The measured times are printed.
 */
export const BURSTS: Bursts = { game: 30, reliable: 100, gameMs: 10_000, reliableMs: 20_000 };

/**
 * The peers and UDP blocks of one fallback scenario, with the checks the scenarios share.
 * `cleanup()` (afterEach or afterAll) removes the blocks and makes every peer leave, whatever
 * happened. `servers()` gives the server processes whose stderr goes into failure messages.
 */
export class FallbackSession {
  readonly peers: FallbackPeer[] = [];
  readonly blocks: UdpBlock[] = [];

  constructor(
    /** Prefix of the lines printed (`[tag] ...`). */
    private readonly tag: string,
    private readonly servers: () => { name: string; stderr: string }[] = () => [],
  ) {}

  /** A fallback fixture peer in `ns` (startFallbackPeer), left by cleanup(). */
  async join(ns: Netns, options: Parameters<typeof startFallbackPeer>[1]): Promise<FallbackPeer> {
    const peer = await startFallbackPeer(ns, options);
    this.peers.push(peer);
    return peer;
  }

  /** Blocks UDP at each router (blockUdp); cleanup() or unblock() removes the blocks. */
  async block(...routers: Netns[]): Promise<UdpBlock[]> {
    const added = await Promise.all(routers.map((r) => blockUdp(r)));
    this.blocks.push(...added);
    return added;
  }

  async unblock(): Promise<void> {
    await Promise.all(this.blocks.splice(0).map((b) => b.remove()));
  }

  async cleanup(): Promise<void> {
    await this.unblock();
    await Promise.all(this.peers.splice(0).map((p) => leave(p.proc)));
  }

  /** Every peer's and server's stderr, for failure messages. */
  diagnosis(what: string): () => string {
    return () => [what, ...this.peers.map((p) => `--- ${p.proc.name} stderr:\n${p.proc.stderr}`), ...this.servers().map((s) => `--- ${s.name} stderr:\n${s.stderr}`)].join('\n');
  }

  /**
   * Resolves when both report `want` for each other at or after `since` (an action: joining,
   * blocking, unblocking); returns when each did.
   */
  bothOn(a: FallbackPeer, b: FallbackPeer, want: (p: Path) => boolean, since: number, ms: number, what: string): Promise<[{ path: Path; at: number }, { path: Path; at: number }]> {
    return within(Promise.all([nextPath(a, b, want, since), nextPath(b, a, want, since)]), ms, this.diagnosis(what));
  }

  /** Each side receives a burst of game state and of reliable messages while on `path`. */
  async expectFlowing(a: FallbackPeer, b: FallbackPeer, path: Path, label: string, bursts: Bursts = BURSTS): Promise<void> {
    const took: string[] = [];
    for (const [to, from] of [
      [a, b],
      [b, a],
    ] as const) {
      const game = await waitMessages(to, from, 'unreliable', bursts.game, { path, timeoutMs: bursts.gameMs });
      if (game.timeout) expect.fail(`${to.proc.name}: ${game.count}/${bursts.game} unreliable messages on ${path} in ${bursts.gameMs} ms\n${await debugView(from, to)}\n${await debugView(to, from)}`);
      const reliable = await waitMessages(to, from, 'reliable', bursts.reliable, { path, timeoutMs: bursts.reliableMs });
      if (reliable.timeout)
        expect.fail(`${to.proc.name}: ${reliable.count}/${bursts.reliable} reliable messages on ${path} in ${bursts.reliableMs} ms\n${await debugView(from, to)}\n${await debugView(to, from)}`);
      took.push(`${game.ms} + ${reliable.ms} ms`);
    }
    console.log(`[${this.tag}] ${label}: ${bursts.game} unreliable + ${bursts.reliable} reliable on ${path} in ${took.join(' / ')}`);
  }

  /** Stops both pumps; every reliable message arrived exactly once, in order; returns the counts. */
  async expectComplete(a: FallbackPeer, b: FallbackPeer): Promise<{ ab: number; ba: number }> {
    const [ab, ba] = await Promise.all([drain(a, b), drain(b, a)]);
    for (const [name, r] of [
      ['a->b', ab],
      ['b->a', ba],
    ] as const) {
      expect(r.sendErrors, name).toEqual([]);
      expect(r.got, `${name}: ${describeSequence(r.got, r.sent)}`).toEqual(sequence(r.sent));
    }
    return { ab: ab.sent, ba: ba.sent };
  }
}
