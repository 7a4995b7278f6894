/**
 * A small network lab made of Linux network namespaces, for tests that need real packet
 * loss between real processes (and, later, NAT routers and TURN).
 *
 * - Every namespace is named `rp-<6 hex>-<role>`: parallel runs never clash.
 * - Nothing is created in the root namespace: veth pairs are created inside a lab namespace
 *   with their peer end placed directly in the other one, so no interface of the host is
 *   ever added, changed or addressed. Deleting a namespace deletes its interfaces and its
 *   nftables tables with it.
 * - Subnets are /24s of 10.213.0.0/16 that overlap none of the root namespace's routes or
 *   addresses (read with `ip -j route`/`ip -j addr`, never changed).
 * - Teardown always runs: `lab.destroy()` (call it in afterAll; `useNetLab` does), plus a
 *   synchronous teardown on process exit and on SIGINT/SIGTERM/SIGHUP, plus a reaper that
 *   removes namespaces left by a lab whose process died (SIGKILL): each lab records itself
 *   in /run/rallypoint-netlab/<id>.json with its owner pid.
 *
 * Needs root, iproute2 and nftables. `canUseNetns()` says whether they are usable;
 * `describeNetns`/`requireNetns` skip with a printed reason outside CI and FAIL under CI.
 */
import { execFile, spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, it } from 'vitest';

const REGISTRY = '/run/rallypoint-netlab';
/** Every lab namespace name starts with this. */
export const NETNS_PREFIX = 'rp-';

// ---------------------------------------------------------------------------------------
// Running commands

export interface ExecResult {
  stdout: string;
  stderr: string;
}

/** Runs a command (no shell); rejects with its stderr on a non-zero exit. */
export function run(cmd: string, args: readonly string[], input?: string): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${stderr.trim() || err.message}`, { cause: err }));
      else resolve({ stdout, stderr });
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

function runSync(cmd: string, args: readonly string[], input?: string): { ok: boolean; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', input, timeout: 10_000 });
  return { ok: r.status === 0, stdout: r.stdout ?? '', stderr: r.stderr ?? (r.error ? r.error.message : '') };
}

// ---------------------------------------------------------------------------------------
// Capability check

export type NetnsCapability = { ok: true } | { ok: false; reason: string };

let capability: NetnsCapability | undefined;

/**
 * Whether this process can build a lab: root, `ip netns`, veth pairs and nftables inside a
 * namespace. Tried for real once (a throw-away namespace), then cached.
 */
export function canUseNetns(): NetnsCapability {
  capability ??= probe();
  return capability;
}

function probe(): NetnsCapability {
  if (process.platform !== 'linux') return { ok: false, reason: `network namespaces need Linux (this is ${process.platform})` };
  if (process.getuid?.() !== 0) return { ok: false, reason: 'network namespaces need root (uid 0)' };
  for (const [cmd, arg] of [
    ['ip', '-V'],
    ['nft', '--version'],
  ] as const) {
    const r = spawnSync(cmd, [arg], { encoding: 'utf8' });
    if (r.error || r.status !== 0) return { ok: false, reason: `\`${cmd}\` is not usable: ${r.error?.message ?? r.stderr}` };
  }
  const name = `${NETNS_PREFIX}probe-${randomBytes(3).toString('hex')}`;
  const add = runSync('ip', ['netns', 'add', name]);
  if (!add.ok) return { ok: false, reason: `ip netns add failed: ${add.stderr.trim()}` };
  try {
    const veth = runSync('ip', ['-n', name, 'link', 'add', 'p0', 'type', 'veth', 'peer', 'name', 'p1']);
    if (!veth.ok) return { ok: false, reason: `cannot create a veth pair in a namespace: ${veth.stderr.trim()}` };
    const nft = runSync('ip', ['netns', 'exec', name, 'nft', '-f', '-'], `table inet probe {\nchain o { type filter hook output priority 0; meta l4proto udp numgen random mod 100 < 5 counter drop; }\n}\n`);
    if (!nft.ok) return { ok: false, reason: `nftables (numgen, counter, drop) unusable in a namespace: ${nft.stderr.trim()}` };
    return { ok: true };
  } finally {
    runSync('ip', ['netns', 'del', name]);
  }
}

/** CI=true (or any value but false/0): a missing capability must fail, not skip. */
export function isCI(): boolean {
  const ci = process.env.CI;
  return ci !== undefined && ci !== '' && ci !== 'false' && ci !== '0';
}

/**
 * Use inside a test: skips it (with the reason printed) when the lab cannot be built,
 * except under CI where it throws, so a CI machine without root fails loudly.
 */
export function requireNetns(ctx: { skip(note?: string): void }): void {
  const cap = canUseNetns();
  if (cap.ok) return;
  if (isCI()) throw new Error(`CI=true but the network lab is unavailable: ${cap.reason}`);
  console.warn(`[netns] skipping: ${cap.reason}`);
  ctx.skip(cap.reason);
}

/** Alias of requireNetns, under the name the lab issues use. */
export const requireRoot = requireNetns;

/**
 * `describe` for suites that need the lab: outside CI it is skipped with the reason
 * printed; under CI a missing capability turns it into one failing test.
 */
export function describeNetns(name: string, fn: () => void): void {
  const cap = canUseNetns();
  if (cap.ok) {
    describe(name, fn);
  } else if (isCI()) {
    describe(name, () => {
      it('needs root, ip netns and nftables (CI=true: a missing capability fails)', () => {
        throw new Error(`CI=true but the network lab is unavailable: ${cap.reason}`);
      });
    });
  } else {
    console.warn(`[netns] skipping "${name}": ${cap.reason}`);
    describe.skip(name, fn);
  }
}

let realtime: string[] | undefined;

/**
 * `['chrt', '-f', '20']` where this process may start SCHED_FIFO processes, else `[]`: a
 * prefix for latency-measuring children, so that other load on the machine delays them less.
 */
export function realtimePrefix(): string[] {
  realtime ??= spawnSync('chrt', ['-f', '20', 'true']).status === 0 ? ['chrt', '-f', '20'] : [];
  return realtime;
}

// ---------------------------------------------------------------------------------------
// Addresses

/** A /24 in 10.213.0.0/16. */
export class Subnet {
  constructor(readonly third: number) {}
  get cidr(): string {
    return `10.213.${this.third}.0/24`;
  }
  /** Host `n` (1-254) of the subnet. */
  host(n: number): string {
    if (!Number.isInteger(n) || n < 1 || n > 254) throw new RangeError(`host ${n} is outside 1-254`);
    return `10.213.${this.third}.${n}`;
  }
}

function ipToInt(ip: string): number {
  const p = ip.split('.').map(Number);
  return (((p[0] ?? 0) << 24) | ((p[1] ?? 0) << 16) | ((p[2] ?? 0) << 8) | (p[3] ?? 0)) >>> 0;
}

function overlaps(aNet: number, aLen: number, bNet: number, bLen: number): boolean {
  const len = Math.min(aLen, bLen);
  const mask = len === 0 ? 0 : (~0 << (32 - len)) >>> 0;
  return ((aNet & mask) >>> 0) === ((bNet & mask) >>> 0);
}

/** IPv4 prefixes the root namespace routes or owns (default routes excluded). Read-only. */
function hostPrefixes(): [number, number][] {
  const out: [number, number][] = [];
  const routes = runSync('ip', ['-j', '-4', 'route', 'show', 'table', 'all']);
  if (routes.ok) {
    for (const r of JSON.parse(routes.stdout || '[]') as { dst?: string }[]) {
      if (!r.dst || r.dst === 'default') continue;
      const [net, len] = r.dst.split('/');
      if (net && /^\d+\.\d+\.\d+\.\d+$/.test(net)) out.push([ipToInt(net), len === undefined ? 32 : Number(len)]);
    }
  }
  const addrs = runSync('ip', ['-j', '-4', 'addr']);
  if (addrs.ok) {
    for (const link of JSON.parse(addrs.stdout || '[]') as { addr_info?: { local?: string; prefixlen?: number }[] }[]) {
      for (const a of link.addr_info ?? []) if (a.local) out.push([ipToInt(a.local), a.prefixlen ?? 32]);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// The lab

export interface LossOptions {
  /** Percent of matching packets dropped, 0-100 (0.01 steps). */
  percent: number;
  /** Which hooks drop: `input` (packets arriving) and/or `output` (packets leaving). */
  hooks?: ('input' | 'output')[];
  /** Layer-4 protocol to drop; default `udp` so TCP signaling is unaffected. */
  proto?: 'udp' | 'tcp';
}

export interface LossCounters {
  /** Matching packets seen per hook. */
  seen: Partial<Record<'input' | 'output', number>>;
  /** Matching packets dropped per hook. */
  dropped: Partial<Record<'input' | 'output', number>>;
}

export interface LossRule {
  readonly table: string;
  counters(): Promise<LossCounters>;
  remove(): Promise<void>;
}

export interface NsSpawnOptions extends Omit<SpawnOptions, 'detached'> {
  /** Signal sent by destroy() to a still-running child (default SIGKILL). */
  killSignal?: NodeJS.Signals;
}

/** One network namespace of a lab. */
export class Netns {
  private lossSeq = 0;

  constructor(
    readonly lab: NetLab,
    readonly name: string,
  ) {}

  /** Runs a command inside the namespace. */
  exec(cmd: string, args: readonly string[] = [], input?: string): Promise<ExecResult> {
    return run('ip', ['netns', 'exec', this.name, cmd, ...args], input);
  }

  /** `ip ARGS` inside the namespace. */
  ip(...args: string[]): Promise<ExecResult> {
    return run('ip', ['-n', this.name, ...args]);
  }

  /**
   * Starts a long-running process inside the namespace (`ip netns exec` execs it, so the
   * child's pid is the process itself). The lab kills it on destroy() if still running.
   */
  spawn(cmd: string, args: readonly string[] = [], options: NsSpawnOptions = {}): ChildProcess {
    const { killSignal = 'SIGKILL', ...rest } = options;
    const child = spawn('ip', ['netns', 'exec', this.name, cmd, ...args], { stdio: 'pipe', ...rest });
    this.lab.track(child, killSignal);
    return child;
  }

  /**
   * Drops `percent` of the namespace's packets of one protocol (default UDP) in the given
   * hooks (default input and output), with nftables `numgen random`. Loaded as its own
   * table, so several rules can coexist and each can be removed alone.
   */
  async addLoss(options: LossOptions): Promise<LossRule> {
    const { percent, hooks = ['input', 'output'], proto = 'udp' } = options;
    if (!(percent >= 0 && percent <= 100)) throw new RangeError(`loss percent ${percent} is outside 0-100`);
    const threshold = Math.round(percent * 100); // out of 10,000
    const table = `rp_loss_${++this.lossSeq}`;
    // numgen's value range is 0-9999: 100 % is a plain drop, 0 % no drop rule at all.
    const drop = threshold >= 10000 ? `meta l4proto ${proto} counter drop` : threshold > 0 ? `meta l4proto ${proto} numgen random mod 10000 < ${threshold} counter drop` : '';
    const chains = hooks.map(
      (hook) => `  chain ${hook} {\n    type filter hook ${hook} priority 0; policy accept;\n    meta l4proto ${proto} counter\n    ${drop}\n  }`,
    );
    await this.exec('nft', ['-f', '-'], `table inet ${table} {\n${chains.join('\n')}\n}\n`);
    return {
      table,
      counters: async () => {
        const { stdout } = await this.exec('nft', ['-j', 'list', 'table', 'inet', table]);
        const result: LossCounters = { seen: {}, dropped: Object.fromEntries(hooks.map((h) => [h, 0])) };
        const items = (JSON.parse(stdout) as { nftables: { rule?: { chain: string; expr: Record<string, unknown>[] } }[] }).nftables;
        for (const item of items) {
          const rule = item.rule;
          if (!rule) continue;
          const hook = rule.chain as 'input' | 'output';
          const counter = rule.expr.find((e) => 'counter' in e)?.counter as { packets: number } | undefined;
          const drops = rule.expr.some((e) => 'drop' in e);
          if (counter) (drops ? result.dropped : result.seen)[hook] = counter.packets;
        }
        return result;
      },
      remove: async () => {
        await this.exec('nft', ['delete', 'table', 'inet', table]);
      },
    };
  }
}

/** A bridge inside a namespace, with the subnet's .1 as its (gateway) address. */
export class Switch {
  private nextHost = 2;
  private nextPort = 0;

  constructor(
    readonly ns: Netns,
    readonly ifname: string,
    readonly subnet: Subnet,
  ) {}

  get gateway(): string {
    return this.subnet.host(1);
  }

  /**
   * Plugs a namespace into the switch with a veth pair (`ifname`, default eth0, on its
   * side), gives it the next free address and, unless `defaultRoute: false`, a default
   * route via the switch (Chromium gathers no candidates without one). The switch's
   * namespace does not forward, so that route leads nowhere beyond the lab.
   */
  async attach(ns: Netns, options: { ifname?: string; defaultRoute?: boolean } = {}): Promise<string> {
    const { ifname = 'eth0', defaultRoute = true } = options;
    const address = this.subnet.host(this.nextHost++);
    const port = `${this.ifname}p${this.nextPort++}`;
    await this.ns.ip('link', 'add', port, 'type', 'veth', 'peer', 'name', ifname, 'netns', ns.name);
    await this.ns.ip('link', 'set', port, 'master', this.ifname, 'up');
    await ns.ip('addr', 'add', `${address}/24`, 'dev', ifname);
    await ns.ip('link', 'set', ifname, 'up');
    if (defaultRoute) await ns.ip('route', 'add', 'default', 'via', this.gateway);
    return address;
  }
}

interface Tracked {
  child: ChildProcess;
  signal: NodeJS.Signals;
}

const liveLabs = new Set<NetLab>();
let handlersInstalled = false;

function installProcessHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', () => {
    for (const lab of liveLabs) lab.destroySync();
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      for (const lab of liveLabs) lab.destroySync();
      process.removeListener(sig, onSignal);
      process.kill(process.pid, sig);
    };
    process.on(sig, onSignal);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function deleteNamespaceSync(name: string): void {
  // Processes inside would keep the namespace alive after its name is gone.
  const pids = runSync('ip', ['netns', 'pids', name]);
  for (const pid of pids.stdout.split(/\s+/).filter(Boolean).map(Number)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  runSync('ip', ['netns', 'del', name]);
}

/** Removes namespaces of labs whose owning process is gone (killed before its teardown). */
function reapStaleLabs(): void {
  let files: string[];
  try {
    files = readdirSync(REGISTRY);
  } catch {
    return;
  }
  for (const file of files) {
    if (!file.endsWith('.json')) continue;
    try {
      const entry = JSON.parse(readFileSync(join(REGISTRY, file), 'utf8')) as { pid: number; namespaces: string[] };
      if (alive(entry.pid)) continue;
      for (const ns of entry.namespaces) if (ns.startsWith(NETNS_PREFIX)) deleteNamespaceSync(ns);
      rmSync(join(REGISTRY, file), { force: true });
    } catch {
      // a file being written by another lab; leave it
    }
  }
}

/** The namespaces currently present (`ip netns list`). */
export async function listNamespaces(): Promise<string[]> {
  const { stdout } = await run('ip', ['netns', 'list']);
  return stdout
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter(Boolean);
}

/** A set of namespaces and the processes started in them; destroy() removes all of it. */
export class NetLab {
  /** `rp-` + 6 random hex digits: the prefix of every namespace of this lab. */
  readonly id = `${NETNS_PREFIX}${randomBytes(3).toString('hex')}`;
  private readonly namespaces: Netns[] = [];
  private readonly children: Tracked[] = [];
  private readonly subnets: Subnet[] = [];
  private destroyed = false;

  private constructor() {}

  static create(): NetLab {
    const cap = canUseNetns();
    if (!cap.ok) throw new Error(`network lab unavailable: ${cap.reason}`);
    reapStaleLabs();
    installProcessHandlers();
    const lab = new NetLab();
    liveLabs.add(lab);
    lab.record();
    return lab;
  }

  /** Names of this lab's namespaces. */
  get names(): string[] {
    return this.namespaces.map((n) => n.name);
  }

  /** Creates namespace `<id>-<role>` with loopback up. */
  async namespace(role: string): Promise<Netns> {
    if (this.destroyed) throw new Error('lab destroyed');
    if (!/^[a-z0-9]{1,12}$/.test(role)) throw new Error(`role "${role}" must be 1-12 of [a-z0-9]`);
    const ns = new Netns(this, `${this.id}-${role}`);
    if (this.namespaces.some((n) => n.name === ns.name)) throw new Error(`namespace ${ns.name} exists`);
    // Recorded before it exists so a crash in between still gets it reaped.
    this.namespaces.push(ns);
    this.record();
    await run('ip', ['netns', 'add', ns.name]);
    await ns.ip('link', 'set', 'lo', 'up');
    return ns;
  }

  /** A fresh /24 of 10.213.0.0/16 overlapping neither the host's routes nor this lab's subnets. */
  subnet(): Subnet {
    const taken = hostPrefixes();
    const free: number[] = [];
    for (let third = 0; third < 256; third++) {
      if (this.subnets.some((s) => s.third === third)) continue;
      const net = ipToInt(`10.213.${third}.0`);
      if (!taken.some(([n, len]) => overlaps(net, 24, n, len))) free.push(third);
    }
    const third = free[randomBytes(1)[0]! % Math.max(free.length, 1)];
    if (third === undefined) throw new Error('no free /24 in 10.213.0.0/16');
    const subnet = new Subnet(third);
    this.subnets.push(subnet);
    return subnet;
  }

  /** A bridge `ifname` (default br0) in `ns` on a fresh subnet, addressed .1. */
  async switch(ns: Netns, options: { ifname?: string; subnet?: Subnet } = {}): Promise<Switch> {
    const { ifname = 'br0', subnet = this.subnet() } = options;
    await ns.ip('link', 'add', ifname, 'type', 'bridge');
    await ns.ip('addr', 'add', `${subnet.host(1)}/24`, 'dev', ifname);
    await ns.ip('link', 'set', ifname, 'up');
    return new Switch(ns, ifname, subnet);
  }

  /** A point-to-point veth pair between two namespaces, optionally addressed (CIDR). */
  async veth(a: Netns, aIf: string, b: Netns, bIf: string, addrs: { a?: string; b?: string } = {}): Promise<void> {
    await a.ip('link', 'add', aIf, 'type', 'veth', 'peer', 'name', bIf, 'netns', b.name);
    if (addrs.a) await a.ip('addr', 'add', addrs.a, 'dev', aIf);
    if (addrs.b) await b.ip('addr', 'add', addrs.b, 'dev', bIf);
    await a.ip('link', 'set', aIf, 'up');
    await b.ip('link', 'set', bIf, 'up');
  }

  /** @internal Netns.spawn registers its children here. */
  track(child: ChildProcess, signal: NodeJS.Signals): void {
    this.children.push({ child, signal });
  }

  /** Kills what is still running, deletes every namespace (and so its links and tables). */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    await Promise.all(
      this.children.map(async ({ child, signal }) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        child.kill(signal);
        // A child that does not stop on `signal` within 3 s is killed.
        const force = setTimeout(() => child.kill('SIGKILL'), 3_000);
        await exited;
        clearTimeout(force);
      }),
    );
    for (const ns of this.namespaces) {
      const { stdout } = await run('ip', ['netns', 'pids', ns.name]).catch(() => ({ stdout: '' }));
      for (const pid of stdout.split(/\s+/).filter(Boolean).map(Number)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      await run('ip', ['netns', 'del', ns.name]).catch(() => undefined);
    }
    liveLabs.delete(this);
    rmSync(join(REGISTRY, `${this.id}.json`), { force: true });
  }

  /** @internal The exit/signal handlers' synchronous teardown. */
  destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const { child } of this.children) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    for (const ns of this.namespaces) deleteNamespaceSync(ns.name);
    liveLabs.delete(this);
    rmSync(join(REGISTRY, `${this.id}.json`), { force: true });
  }

  private record(): void {
    mkdirSync(REGISTRY, { recursive: true });
    writeFileSync(join(REGISTRY, `${this.id}.json`), JSON.stringify({ pid: process.pid, namespaces: this.names }));
  }
}

/**
 * A lab for the current test file: created lazily by the returned getter, destroyed in
 * afterAll, which then checks that none of its namespaces is left.
 */
export function useNetLab(): () => NetLab {
  let lab: NetLab | undefined;
  afterAll(async () => {
    if (!lab) return;
    const id = lab.id;
    await lab.destroy();
    const left = (await listNamespaces()).filter((n) => n.startsWith(`${id}-`));
    if (left.length > 0) throw new Error(`namespaces left after teardown: ${left.join(', ')}`);
  });
  return () => (lab ??= NetLab.create());
}
