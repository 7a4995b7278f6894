/**
 * The NAT lab (peers behind real NAT routers), built on the network lab (netns.ts): a "public" namespace with a
 * switch, NAT router namespaces per site, hosts behind them, and the processes the scenarios
 * run there (the real `rallypoint serve` CLI with its embedded TURN, Debian coturn, Node
 * peers speaking JSON lines).
 *
 *          pub (switch wan, 10.213.P.0/24; signaling + TURN on .1)
 *           |                    |
 *      r<site> eth0 .x     r<site> eth0 .y        NAT: masquerade [random] out of eth0
 *           | lan switch         | lan switch
 *      h<name> (default route via the router)
 *
 * Every address is private (10.213.0.0/16, see Subnet), the public side included; the
 * TURN server's allow list gets the public subnet, and nothing else, so that it relays to
 * the routers' WAN addresses (what peers behind NAT look like from outside).
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium, type Page } from 'playwright-core';
import { CHROMIUM_ARGS, CHROMIUM_PATH, chromiumMissing, NO_MDNS_ARG, type PageLog, watchPage } from './browser.js';
import { START_LINE, TURN_LINE } from './cli.js';
import type { NetLab, Netns, Switch } from './netns.js';

export const CLI = fileURLToPath(new URL('../../dist/signaling/cli/main.js', import.meta.url));
export const NAT_PEER = fileURLToPath(new URL('../fixtures/nat/peer.mjs', import.meta.url));
export const STUN_PING = fileURLToPath(new URL('../fixtures/nat/stun-ping.mjs', import.meta.url));
export const TURNSERVER = '/usr/bin/turnserver';
const LIB_PAGE = fileURLToPath(new URL('../fixtures/web/lib.html', import.meta.url));

// ---------------------------------------------------------------------------------------
// Topology

/**
 * `cone`: `masquerade` keeps a host's source port for every destination (endpoint-independent
 * mapping) and conntrack only lets in replies (port-restricted filtering).
 * `symmetric`: `masquerade random` picks a new port per destination, so the address a STUN
 * server sees is useless to any other peer.
 */
export type NatKind = 'cone' | 'symmetric';

export interface Host {
  ns: Netns;
  address: string;
}

export interface Site {
  router: Netns;
  /** The router's address on the public switch: what the outside sees of this site. */
  wan: string;
  lan: Switch;
  nat: NatKind;
}

export class NatTopology {
  private constructor(
    readonly lab: NetLab,
    /** The "public" namespace: the switch every router hangs off, and the servers. */
    readonly pub: Netns,
    readonly wan: Switch,
  ) {}

  static async create(lab: NetLab): Promise<NatTopology> {
    const pub = await lab.namespace('pub');
    // The public namespace does not forward: nothing reaches beyond the lab through it.
    return new NatTopology(lab, pub, await lab.switch(pub, { ifname: 'wan' }));
  }

  /** The public side's address, where the servers listen (the switch's .1). */
  get publicAddress(): string {
    return this.wan.gateway;
  }

  /** A NAT router `r<name>` on the public switch with a LAN switch of its own behind it. */
  async site(name: string, nat: NatKind): Promise<Site> {
    const router = await this.lab.namespace(`r${name}`);
    const wan = await this.wan.attach(router, { ifname: 'eth0' });
    const lan = await this.lab.switch(router, { ifname: 'lan' });
    await router.exec('sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1']);
    const masquerade = nat === 'symmetric' ? 'masquerade random' : 'masquerade';
    // The firewall every home router has: unsolicited packets from the WAN are dropped in
    // `input`, before conntrack confirms them. Without it, a peer's first hole-punching packet
    // (arriving before this side's own) leaves an entry that makes masquerade pick ANOTHER port
    // for this side's packets to that peer (the tuple is taken), so the cone NAT behaves as a
    // symmetric one and ICE falls back to the relay.
    await router.exec(
      'nft',
      ['-f', '-'],
      [
        'table ip nat {',
        '  chain post {',
        '    type nat hook postrouting priority srcnat; policy accept;',
        `    oifname "eth0" ${masquerade}`,
        '  }',
        '}',
        'table inet firewall {',
        '  chain in {',
        '    type filter hook input priority filter; policy accept;',
        '    iifname "eth0" ct state new drop',
        '  }',
        '}',
        '',
      ].join('\n'),
    );
    return { router, wan, lan, nat };
  }

  /** A host namespace `h<name>` on `lan` (a site's LAN or the public switch), default route via it. */
  async host(name: string, lan: Switch): Promise<Host> {
    const ns = await this.lab.namespace(`h${name}`);
    return { ns, address: await lan.attach(ns) };
  }
}

/** Two NAT sites (`a` and `b` by default) with one host each: the scene most scenarios start from. */
export interface TwoSites {
  net: NatTopology;
  siteA: Site;
  siteB: Site;
  hostA: Host;
  hostB: Host;
}

/**
 * Builds the two-site scene in `lab`: sites `a` and `b` behind NATs of `kinds`, one host on
 * each site's LAN, named `hosts` (namespaces `h<name>`). Namespaces and routers take 2-5 s on
 * a loaded 2-core machine.
 */
export async function twoSites(lab: NetLab, kinds: [NatKind, NatKind], hosts: [string, string] = ['a', 'b']): Promise<TwoSites> {
  const net = await NatTopology.create(lab);
  const [siteA, siteB] = [await net.site('a', kinds[0]), await net.site('b', kinds[1])];
  const [hostA, hostB] = [await net.host(hosts[0], siteA.lan), await net.host(hosts[1], siteB.lan)];
  return { net, siteA, siteB, hostA, hostB };
}

/**
 * `rallypoint serve` flags for its embedded TURN server (a free port), relaying only to the
 * lab's public side: the routers' WAN addresses, which is what peers behind NAT look like.
 */
export function embeddedTurnArgs(net: NatTopology): string[] {
  return ['--turn-port', '0', '--turn-allow', net.wan.subnet.cidr];
}

/** `rallypoint serve` with its embedded TURN server in the public namespace, plus `args`. */
export function startServeWithTurn(net: NatTopology, args: string[] = []): Promise<Serve> {
  return startServe(net.pub, net.publicAddress, [...embeddedTurnArgs(net), ...args]);
}

/** Asks a fixture peer to leave (the room's close is part of what works); SIGKILL if it does not within 10 s. */
export async function leave(proc: LineProcess): Promise<void> {
  await within(proc.request({ cmd: 'leave' }, 'left'), 10_000, () => `${proc.name} did not leave`).catch(() => proc.child.kill('SIGKILL'));
}

// ---------------------------------------------------------------------------------------
// Processes speaking lines

type Line = Record<string, unknown>;

/**
 * A child process whose stdout is JSON lines `{event, ...}` (a non-JSON line becomes
 * `{event: 'text', line}`); commands go to stdin as JSON lines. `next(event)` waits for the
 * next such line and rejects when the process exits first or reports `{event: 'error'}`.
 */
export class LineProcess {
  private readonly queue: Line[] = [];
  private readonly waiters: { match: (m: Line) => boolean; resolve: (m: Line) => void; reject: (e: Error) => void }[] = [];
  private exitError: Error | null = null;
  /** Each returns true once it is done (then it is dropped). */
  private readonly stderrWaiters: (() => boolean)[] = [];
  stderr = '';
  readonly closed: Promise<number | null>;

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    child.stderr!.on('data', (d: Buffer) => {
      this.stderr += d.toString();
      for (const w of this.stderrWaiters.splice(0)) if (!w()) this.stderrWaiters.push(w);
    });
    createInterface({ input: child.stdout! }).on('line', (text) => {
      let msg: Line;
      try {
        msg = JSON.parse(text) as Line;
        if (typeof msg !== 'object' || msg === null) msg = { event: 'text', line: text };
      } catch {
        msg = { event: 'text', line: text };
      }
      if (msg.event === 'error') return this.fail(new Error(`${this.name}: ${String(msg.message)}`));
      const i = this.waiters.findIndex((w) => w.match(msg));
      if (i >= 0) this.waiters.splice(i, 1)[0]!.resolve(msg);
      else this.queue.push(msg);
    });
    // 'close', not 'exit': stdout is read to its end first.
    this.closed = new Promise((resolve) => {
      child.once('close', (code, signal) => {
        this.fail(new Error(`${this.name} exited (${code ?? signal}) ${this.stderr.trim()}`));
        resolve(code);
      });
    });
  }

  private fail(err: Error): void {
    this.exitError ??= err;
    for (const w of this.waiters.splice(0)) w.reject(err);
  }

  /** The next line of `event` (matching `where`, if given), already received or to come. */
  next<T = Line>(event: string, where: (m: T) => boolean = () => true): Promise<T> {
    const match = (m: Line): boolean => m.event === event && where(m as T);
    const i = this.queue.findIndex(match);
    if (i >= 0) return Promise.resolve(this.queue.splice(i, 1)[0] as T);
    if (this.exitError) return Promise.reject(this.exitError);
    return new Promise((resolve, reject) => this.waiters.push({ match, resolve: resolve as (m: Line) => void, reject }));
  }

  /**
   * Resolves once the process's stderr (everything it wrote so far, or what comes) matches
   * `re`: a log line of `rallypoint serve` (its logs go to stderr) is an event to await.
   */
  stderrMatch(re: RegExp): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        if (re.test(this.stderr)) resolve();
        else if (this.exitError) reject(this.exitError);
        else return false;
        return true;
      };
      if (!check()) this.stderrWaiters.push(check);
    });
  }

  /** Writes a command and waits for the answer `event`. */
  request<T = Line>(cmd: Line, event: string): Promise<T> {
    const answer = this.next<T>(event);
    this.child.stdin!.write(`${JSON.stringify(cmd)}\n`);
    return answer;
  }
}

// ---------------------------------------------------------------------------------------
// rallypoint serve

export interface Serve {
  proc: LineProcess;
  /** `ws://HOST:PORT/ws` from the start line. */
  wsUrl: string;
  /** `http://HOST:PORT`. */
  httpUrl: string;
  /** From the second line, when the embedded TURN runs. */
  turn: { address: string; port: number; relay: string } | null;
}

/**
 * Runs `rallypoint serve` (the built CLI) in `ns` on `host`, port 0, with `args` added, and
 * reads its start lines: `rallypoint listening on http://H:P (signaling ws://H:P/ws)`, then,
 * when the embedded TURN runs, `rallypoint TURN listening on udp://A:P (relay R)`.
 */
export async function startServe(ns: Netns, host: string, args: string[], options: { embeddedTurn?: boolean } = {}): Promise<Serve> {
  const { embeddedTurn = true } = options;
  const proc = new LineProcess(`serve@${ns.name}`, ns.spawn(process.execPath, [CLI, 'serve', '--port', '0', '--host', host, '--log-level', 'warn', ...args], { killSignal: 'SIGTERM' }));
  const first = String((await proc.next<{ line: string }>('text')).line);
  const m = START_LINE.exec(first);
  if (!m) throw new Error(`unexpected start line: ${first}`);
  let turn: Serve['turn'] = null;
  if (embeddedTurn) {
    const second = String((await proc.next<{ line: string }>('text')).line);
    const t = TURN_LINE.exec(second);
    if (!t) throw new Error(`unexpected TURN line: ${second}`);
    turn = { address: t[1]!, port: Number(t[2]), relay: t[3]! };
  }
  return { proc, httpUrl: m[1]!, wsUrl: m[2]!, turn };
}

// ---------------------------------------------------------------------------------------
// coturn

export interface Coturn {
  proc: LineProcess;
  port: number;
  /** The turnserver.conf `rallypoint coturn-config` printed. */
  config: string;
}

/**
 * Debian's coturn in `ns`, configured by the file `rallypoint coturn-config` prints (the
 * project's own generator, as an operator would run it). Resolves once coturn answers a STUN
 * Binding request on `address:port`.
 */
export async function startCoturn(ns: Netns, options: { address: string; port: number; secret: string; allow: string[] }): Promise<Coturn> {
  const { address, port, secret, allow } = options;
  const { stdout: config } = await ns.exec(process.execPath, [
    CLI,
    'coturn-config',
    '--secret',
    secret,
    '--listening-ip',
    address,
    '--listening-port',
    String(port),
    '--relay-ip',
    address,
    '--allow',
    allow.join(','),
  ]);
  const dir = mkdtempSync(join(tmpdir(), 'rallypoint-nat-coturn-'));
  const file = join(dir, 'turnserver.conf');
  writeFileSync(file, config, { mode: 0o600 });
  // Its log on stdout, line-buffered (stdbuf), verbose enough to show each session's user and
  // ALLOCATE: tests read allocations from it as they happen.
  // pidfile and userdb in our own directory, not /var.
  const proc = new LineProcess(
    `coturn@${ns.name}`,
    ns.spawn('stdbuf', ['-oL', TURNSERVER, '-c', file, '--log-file=stdout', '--verbose', `--pidfile=${join(dir, 'turnserver.pid')}`, `--userdb=${join(dir, 'turndb')}`]),
  );
  proc.closed.finally(() => rmSync(dir, { recursive: true, force: true })).catch(() => undefined);
  // coturn prints nothing when its listener is up: ask it.
  await Promise.race([stunBinding(ns, address, port), proc.closed.then(() => Promise.reject(new Error(`turnserver exited: ${proc.stderr}`)))]);
  return { proc, port, config };
}

/**
 * The XOR-MAPPED-ADDRESS a STUN Binding request from `ns` to `ip:port` gets (requests are
 * resent every 100 ms until one is answered, 15 s at most).
 */
export async function stunBinding(ns: Netns, ip: string, port: number): Promise<{ address: string; port: number }> {
  const [mapped] = await stunMappings(ns, [`${ip}:${port}`]);
  return mapped!;
}

/** The mapped address of ONE socket in `ns` as each `ip:port` STUN server sees it, in order. */
export async function stunMappings(ns: Netns, targets: string[]): Promise<{ address: string; port: number }[]> {
  const { stdout } = await ns.exec(process.execPath, [STUN_PING, ...targets]);
  const byTarget = new Map(
    stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { target: string; address: string; port: number })
      .map((m) => [m.target, { address: m.address, port: m.port }]),
  );
  return targets.map((t) => byTarget.get(t)!);
}

// ---------------------------------------------------------------------------------------
// Peers

export interface CandidateView {
  type: string | undefined;
  address: string | undefined;
  port: number | undefined;
}

export interface PairView {
  local: CandidateView;
  remote: CandidateView;
}

/** A peer's view of its connection to the other one (RemotePeer.stats() and getStats()). */
export interface PeerStatsView {
  path: 'direct' | 'relay' | null;
  selectedPair: PairView | null;
  /** Every local candidate gathered, from getStats(). */
  localCandidates: CandidateView[];
  /** The iceServers the library configured the connection with (the welcome's). */
  iceServers: { urls: string | string[]; username?: string; credential?: string }[] | null;
}

/** A Node peer (test/fixtures/nat/peer.mjs) in `ns`, joined to `room`. */
export async function startNodePeer(ns: Netns, options: { url: string; room: string; rtcConfig?: Record<string, unknown> }): Promise<{ proc: LineProcess; id: string }> {
  const proc = new LineProcess(`peer@${ns.name}`, ns.spawn(process.execPath, [NAT_PEER, JSON.stringify(options)]));
  const { id } = await proc.next<{ id: string }>('joined');
  return { proc, id };
}

/** `type:address` of each candidate, for failure messages. */
export function describePair(pair: { local: Partial<CandidateView>; remote: Partial<CandidateView> } | null): string {
  return pair ? `${pair.local.type} ${pair.local.address}:${pair.local.port} -> ${pair.remote.type} ${pair.remote.address}:${pair.remote.port}` : 'no pair';
}

/**
 * How long the peers may take to connect: measured here 1-2.5 s, direct or relayed; 30 s
 * leaves room for a loaded 2-core machine.
 */
export const ICE_TIMEOUT_MS = 30_000;

/** `promise`, or a rejection saying what was awaited (and what the processes said) after `ms`. */
export async function within<T>(promise: Promise<T>, ms: number, why: () => string | Promise<string>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => void Promise.resolve(why()).then((m) => reject(new Error(m))), ms)));
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export interface NodePair {
  a: { proc: LineProcess; id: string };
  b: { proc: LineProcess; id: string };
}

/**
 * Node peers in `nsA` and `nsB` joined to one room; resolves when each reports the other
 * connected (every channel open). B joins second, so B offers.
 */
export async function connectNodePeers(nsA: Netns, nsB: Netns, url: string, room: string, rtcConfig?: Record<string, unknown>): Promise<NodePair> {
  const a = await startNodePeer(nsA, { url, room, ...(rtcConfig ? { rtcConfig } : {}) });
  const b = await startNodePeer(nsB, { url, room, ...(rtcConfig ? { rtcConfig } : {}) });
  const connected = Promise.all([a.proc.next('connected', (m: { peer: string }) => m.peer === b.id), b.proc.next('connected', (m: { peer: string }) => m.peer === a.id)]);
  await within(connected, ICE_TIMEOUT_MS, () => `peers not connected after ${ICE_TIMEOUT_MS} ms\n--- a stderr:\n${a.proc.stderr}\n--- b stderr:\n${b.proc.stderr}`);
  return { a, b };
}

/**
 * Sends `count` numbered messages each way on `reliable` and resolves with what each side
 * received from the other, in arrival order.
 */
export async function exchange(pair: NodePair, count = 5): Promise<{ atA: string[]; atB: string[] }> {
  const receive = async (p: NodePair['a'], from: string, prefix: string): Promise<string[]> => {
    const got: string[] = [];
    for (let i = 0; i < count; i++) {
      const m = await p.proc.next<{ from: string; channel: string; data: string }>('message', (x) => x.from === from && x.channel === 'reliable');
      got.push(m.data);
      if (!m.data.startsWith(prefix)) break;
    }
    return got;
  };
  const atA = receive(pair.a, pair.b.id, 'b->a');
  const atB = receive(pair.b, pair.a.id, 'a->b');
  for (let i = 0; i < count; i++) {
    await Promise.all([
      pair.a.proc.request({ cmd: 'send', to: pair.b.id, channel: 'reliable', data: `a->b ${i}` }, 'sent'),
      pair.b.proc.request({ cmd: 'send', to: pair.a.id, channel: 'reliable', data: `b->a ${i}` }, 'sent'),
    ]);
  }
  return { atA: await atA, atB: await atB };
}

/** Both sides' view of the connection. */
export async function pairStats(pair: NodePair): Promise<{ a: PeerStatsView; b: PeerStatsView }> {
  const [a, b] = await Promise.all([pair.a.proc.request<PeerStatsView>({ cmd: 'stats', to: pair.b.id }, 'stats'), pair.b.proc.request<PeerStatsView>({ cmd: 'stats', to: pair.a.id }, 'stats')]);
  return { a, b };
}

/** The `count` messages `exchange` sends from `from` ('a' or 'b'). */
export function expectedMessages(from: 'a' | 'b', count = 5): string[] {
  const to = from === 'a' ? 'b' : 'a';
  return Array.from({ length: count }, (_, i) => `${from}->${to} ${i}`);
}

// ---------------------------------------------------------------------------------------
// Chromium in a namespace

/**
 * Debian's Chromium launched by playwright inside `ns`: playwright's executablePath is a
 * wrapper that execs `ip netns exec NS chromium` (the pipes playwright drives it through are
 * inherited). The namespace needs a default route, or Chromium gathers no ICE candidates.
 * Host candidates carry addresses, not mDNS names (NO_MDNS_ARG): werift cannot resolve those.
 */
export async function launchChromiumIn(ns: Netns): Promise<Browser> {
  const missing = chromiumMissing();
  if (missing) throw new Error(missing);
  const dir = mkdtempSync(join(tmpdir(), 'rallypoint-nat-chromium-'));
  const wrapper = join(dir, 'chromium');
  writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${ns.name} ${CHROMIUM_PATH} "$@"\n`, { mode: 0o755 });
  try {
    const browser = await chromium.launch({ executablePath: wrapper, headless: true, args: [...CHROMIUM_ARGS, NO_MDNS_ARG], timeout: 20_000 });
    browser.on('disconnected', () => rmSync(dir, { recursive: true, force: true }));
    return browser;
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/**
 * Opens test/fixtures/web/lib.html (the library harness of the browser suites) in a page of
 * `browser`, as a document of the signaling server's origin (a lab address: the root
 * namespace's loopback is out of the browser's reach). The page then loads /rallypoint.min.js,
 * the built bundle, from the real server (dist/web).
 *
 * Why not `page.route` to fulfil lib.html: a fulfilled document has no IP address, so
 * Chromium puts it in the `public` address space, and its Local Network Access checks then
 * block the page's requests to the lab's private address ("The request client is not a
 * secure context and the resource is in more-private address space `local`"). A document the
 * server really sent (its 404 page) is `local`; lib.html is written into that document.
 */
export async function openLibPage(browser: Browser, httpUrl: string, wsUrl: string): Promise<{ page: Page; log: PageLog }> {
  const context = await browser.newContext();
  context.setDefaultTimeout(ICE_TIMEOUT_MS);
  const page = await context.newPage();
  const log = watchPage(page);
  const response = await page.goto(`${httpUrl}/nat-lab?ws=${encodeURIComponent(wsUrl)}`);
  if (response?.status() !== 404) throw new Error(`expected the server's 404 page at /nat-lab, got ${response?.status()}`);
  await page.setContent(readFileSync(LIB_PAGE, 'utf8'));
  await page.waitForFunction(() => document.body.dataset.ready === 'true');
  return { page, log };
}
