// @ts-check
/**
 * A small network lab made of Linux network namespaces, for the benchmarks and the tests
 * that need real packet loss between real processes, NAT routers and TURN. One
 * implementation for both: plain JavaScript with JSDoc types, so `bench/` runs it as it is
 * and test/helpers/netns.ts (strict TypeScript) re-exports it with its test-only parts.
 *
 * - Every namespace is named `rp-<6 hex>-<role>`: parallel runs never clash.
 * - Nothing is created in the root namespace: veth pairs are created inside a lab namespace
 *   with their peer end placed directly in the other one, so no interface of the host is
 *   ever added, changed or addressed. Deleting a namespace deletes its interfaces and its
 *   nftables tables with it.
 * - Subnets are /24s of 10.213.0.0/16 that overlap none of the root namespace's routes or
 *   addresses (read with `ip -j route`/`ip -j addr`, never changed).
 * - Teardown always runs: `lab.destroy()`, plus a synchronous teardown on process exit and
 *   on SIGINT/SIGTERM/SIGHUP, plus a reaper that removes namespaces left by a lab whose
 *   process died (SIGKILL): each lab records itself in /run/rallypoint-netlab/<id>.json with
 *   its owner pid.
 *
 * Needs root, iproute2 and nftables; `canUseNetns()` says whether they are usable.
 */
import { execFile, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** @typedef {import('node:child_process').ChildProcess} ChildProcess */
/** @typedef {import('node:child_process').SpawnOptions} SpawnOptions */
/** @typedef {{ stdout: string, stderr: string }} ExecResult */
/** @typedef {{ ok: true } | { ok: false, reason: string }} NetnsCapability */
/** @typedef {'input' | 'output'} Hook */
/**
 * @typedef {object} DropOptions
 * @property {number} percent Percent of matching packets dropped, 0-100 (0.01 steps); 100 drops all.
 * @property {string} [match] nftables match for the packets concerned (e.g. `meta l4proto udp`); '' (default): every packet.
 * @property {Hook[]} [hooks] Which hooks drop: `input` (arriving) and/or `output` (leaving); default both.
 */
/**
 * @typedef {object} LossOptions
 * @property {number} percent Percent of matching packets dropped, 0-100 (0.01 steps).
 * @property {Hook[]} [hooks] Which hooks drop; default both.
 * @property {'udp' | 'tcp'} [proto] Layer-4 protocol to drop; default `udp` so TCP signaling is unaffected.
 */
/**
 * @typedef {object} LossCounters
 * @property {Partial<Record<Hook, number>>} seen Matching packets seen per hook.
 * @property {Partial<Record<Hook, number>>} dropped Matching packets dropped per hook.
 */
/**
 * @typedef {object} LossRule
 * @property {string} table
 * @property {() => Promise<LossCounters>} counters
 * @property {() => Promise<void>} remove
 */
/**
 * @typedef {Omit<SpawnOptions, 'detached'> & { killSignal?: NodeJS.Signals }} NsSpawnOptions
 * `killSignal`: sent by destroy() to a still-running child (default SIGKILL).
 */

const REGISTRY = '/run/rallypoint-netlab';
/** Every lab namespace name starts with this. */
export const NETNS_PREFIX = 'rp-';

// ---------------------------------------------------------------------------------------
// Running commands

/**
 * Runs a command (no shell); rejects with its stderr on a non-zero exit.
 * @param {string} cmd
 * @param {readonly string[]} args
 * @param {string} [input]
 * @returns {Promise<ExecResult>}
 */
export function run(cmd, args, input) {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${stderr.trim() || err.message}`, { cause: err }));
      else resolve({ stdout, stderr });
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

/**
 * @param {string} cmd
 * @param {readonly string[]} args
 * @param {string} [input]
 */
function runSync(cmd, args, input) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', input, timeout: 10_000 });
  return { ok: r.status === 0, stdout: r.stdout ?? '', stderr: r.stderr ?? (r.error ? r.error.message : '') };
}

// ---------------------------------------------------------------------------------------
// Capability check

/** @type {NetnsCapability | undefined} */
let capability;

/**
 * Whether this process can build a lab: root, `ip netns`, veth pairs and nftables inside a
 * namespace. Tried for real once (a throw-away namespace), then cached.
 * @returns {NetnsCapability}
 */
export function canUseNetns() {
  capability ??= probe();
  return capability;
}

/** null when a lab can be built here, else the reason (canUseNetns() for scripts). */
export function netnsUnavailable() {
  const cap = canUseNetns();
  return cap.ok ? null : cap.reason;
}

/** @returns {NetnsCapability} */
function probe() {
  if (process.platform !== 'linux') return { ok: false, reason: `network namespaces need Linux (this is ${process.platform})` };
  if (process.getuid?.() !== 0) return { ok: false, reason: 'network namespaces need root (uid 0)' };
  for (const [cmd, arg] of /** @type {const} */ ([
    ['ip', '-V'],
    ['nft', '--version'],
  ])) {
    const r = spawnSync(cmd, [arg], { encoding: 'utf8' });
    if (r.error || r.status !== 0) return { ok: false, reason: `\`${cmd}\` is not usable: ${r.error?.message ?? r.stderr}` };
  }
  const name = `${NETNS_PREFIX}probe-${randomBytes(3).toString('hex')}`;
  const add = runSync('ip', ['netns', 'add', name]);
  if (!add.ok) return { ok: false, reason: `ip netns add failed: ${add.stderr.trim()}` };
  try {
    const veth = runSync('ip', ['-n', name, 'link', 'add', 'p0', 'type', 'veth', 'peer', 'name', 'p1']);
    if (!veth.ok) return { ok: false, reason: `cannot create a veth pair in a namespace: ${veth.stderr.trim()}` };
    const nft = runSync(
      'ip',
      ['netns', 'exec', name, 'nft', '-f', '-'],
      `table inet probe {\nchain o { type filter hook output priority 0; meta l4proto udp numgen random mod 100 < 5 counter drop; }\n}\n`,
    );
    if (!nft.ok) return { ok: false, reason: `nftables (numgen, counter, drop) unusable in a namespace: ${nft.stderr.trim()}` };
    return { ok: true };
  } finally {
    runSync('ip', ['netns', 'del', name]);
  }
}

/** @type {string[] | undefined} */
let realtime;

/**
 * `['chrt', '-f', '20']` where this process may start SCHED_FIFO processes, else `[]`: a
 * prefix for latency-measuring children, so that other load on the machine delays them less.
 * @returns {string[]}
 */
export function realtimePrefix() {
  realtime ??= spawnSync('chrt', ['-f', '20', 'true']).status === 0 ? ['chrt', '-f', '20'] : [];
  return realtime;
}

// ---------------------------------------------------------------------------------------
// Addresses

/** A /24 in 10.213.0.0/16. */
export class Subnet {
  /** @param {number} third */
  constructor(third) {
    /** @readonly */
    this.third = third;
  }
  get cidr() {
    return `10.213.${this.third}.0/24`;
  }
  /**
   * Host `n` (1-254) of the subnet.
   * @param {number} n
   */
  host(n) {
    if (!Number.isInteger(n) || n < 1 || n > 254) throw new RangeError(`host ${n} is outside 1-254`);
    return `10.213.${this.third}.${n}`;
  }
}

/** @param {string} ip */
function ipToInt(ip) {
  const p = ip.split('.').map(Number);
  return (((p[0] ?? 0) << 24) | ((p[1] ?? 0) << 16) | ((p[2] ?? 0) << 8) | (p[3] ?? 0)) >>> 0;
}

/**
 * @param {number} aNet
 * @param {number} aLen
 * @param {number} bNet
 * @param {number} bLen
 */
function overlaps(aNet, aLen, bNet, bLen) {
  const len = Math.min(aLen, bLen);
  const mask = len === 0 ? 0 : (~0 << (32 - len)) >>> 0;
  return (aNet & mask) >>> 0 === (bNet & mask) >>> 0;
}

/**
 * IPv4 prefixes the root namespace routes or owns (default routes excluded). Read-only.
 * @returns {[number, number][]}
 */
function hostPrefixes() {
  /** @type {[number, number][]} */
  const out = [];
  const routes = runSync('ip', ['-j', '-4', 'route', 'show', 'table', 'all']);
  if (routes.ok) {
    for (const r of /** @type {{ dst?: string }[]} */ (JSON.parse(routes.stdout || '[]'))) {
      if (!r.dst || r.dst === 'default') continue;
      const [net, len] = r.dst.split('/');
      if (net && /^\d+\.\d+\.\d+\.\d+$/.test(net)) out.push([ipToInt(net), len === undefined ? 32 : Number(len)]);
    }
  }
  const addrs = runSync('ip', ['-j', '-4', 'addr']);
  if (addrs.ok) {
    for (const link of /** @type {{ addr_info?: { local?: string, prefixlen?: number }[] }[]} */ (JSON.parse(addrs.stdout || '[]'))) {
      for (const a of link.addr_info ?? []) if (a.local) out.push([ipToInt(a.local), a.prefixlen ?? 32]);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Namespaces, switches

/** One network namespace of a lab. */
export class Netns {
  #seq = 0;

  /**
   * @param {NetLab} lab
   * @param {string} name
   */
  constructor(lab, name) {
    /** @readonly */
    this.lab = lab;
    /** @readonly */
    this.name = name;
  }

  /**
   * Runs a command inside the namespace.
   * @param {string} cmd
   * @param {readonly string[]} [args]
   * @param {string} [input]
   */
  exec(cmd, args = [], input) {
    return run('ip', ['netns', 'exec', this.name, cmd, ...args], input);
  }

  /**
   * `ip ARGS` inside the namespace.
   * @param {...string} args
   */
  ip(...args) {
    return run('ip', ['-n', this.name, ...args]);
  }

  /**
   * Starts a long-running process inside the namespace (`ip netns exec` execs it, so the
   * child's pid is the process itself). The lab kills it on destroy() if still running.
   * @param {string} cmd
   * @param {readonly string[]} [args]
   * @param {NsSpawnOptions} [options]
   * @returns {ChildProcess}
   */
  spawn(cmd, args = [], options = {}) {
    const { killSignal = 'SIGKILL', ...rest } = options;
    const child = spawn('ip', ['netns', 'exec', this.name, cmd, ...args], { stdio: 'pipe', ...rest });
    this.lab.track(child, killSignal);
    return child;
  }

  /**
   * Drops `percent` % of the packets that match `match` (all of them at 100) in the input
   * and/or output hooks of this namespace, with nftables `numgen random`. Loaded as a table
   * of its own, so several rules can coexist and each can be removed alone. Counts the
   * matching packets seen and dropped per hook.
   * @param {DropOptions} options
   * @returns {Promise<LossRule>}
   */
  async addDrop({ percent, match = '', hooks = ['input', 'output'] }) {
    if (!(percent >= 0 && percent <= 100)) throw new RangeError(`loss percent ${percent} is outside 0-100`);
    const threshold = Math.round(percent * 100); // out of 10,000
    const table = `rp_loss_${++this.#seq}`;
    const m = match ? `${match} ` : '';
    // numgen's value range is 0-9999: 100 % is a plain drop, 0 % no drop rule at all.
    const drop = threshold >= 10000 ? `${m}counter drop` : threshold > 0 ? `${m}numgen random mod 10000 < ${threshold} counter drop` : '';
    const chains = hooks.map((hook) => `  chain ${hook} {\n    type filter hook ${hook} priority 0; policy accept;\n    ${m}counter\n    ${drop}\n  }`);
    await this.exec('nft', ['-f', '-'], `table inet ${table} {\n${chains.join('\n')}\n}\n`);
    return {
      table,
      counters: async () => {
        const { stdout } = await this.exec('nft', ['-j', 'list', 'table', 'inet', table]);
        /** @type {LossCounters} */
        const result = { seen: {}, dropped: Object.fromEntries(hooks.map((h) => [h, 0])) };
        const items = /** @type {{ nftables: { rule?: { chain: string, expr: Record<string, unknown>[] } }[] }} */ (JSON.parse(stdout)).nftables;
        for (const item of items) {
          const rule = item.rule;
          if (!rule) continue;
          const hook = /** @type {Hook} */ (rule.chain);
          const counter = /** @type {{ packets: number } | undefined} */ (rule.expr.find((e) => 'counter' in e)?.counter);
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

  /**
   * addDrop() for one protocol (default UDP, so that TCP signaling is unaffected).
   * @param {LossOptions} options
   * @returns {Promise<LossRule>}
   */
  addLoss({ percent, hooks, proto = 'udp' }) {
    return this.addDrop({ percent, match: `meta l4proto ${proto}`, ...(hooks ? { hooks } : {}) });
  }
}

/** A bridge inside a namespace, with the subnet's .1 as its (gateway) address. */
export class Switch {
  #nextHost = 2;
  #nextPort = 0;

  /**
   * @param {Netns} ns
   * @param {string} ifname
   * @param {Subnet} subnet
   */
  constructor(ns, ifname, subnet) {
    /** @readonly */
    this.ns = ns;
    /** @readonly */
    this.ifname = ifname;
    /** @readonly */
    this.subnet = subnet;
  }

  get gateway() {
    return this.subnet.host(1);
  }

  /**
   * Plugs a namespace into the switch with a veth pair (`ifname`, default eth0, on its
   * side), gives it the next free address and, unless `defaultRoute: false`, a default
   * route via the switch (Chromium gathers no candidates without one). The switch's
   * namespace does not forward, so that route leads nowhere beyond the lab.
   * @param {Netns} ns
   * @param {{ ifname?: string, defaultRoute?: boolean }} [options]
   * @returns {Promise<string>} the address
   */
  async attach(ns, options = {}) {
    const { ifname = 'eth0', defaultRoute = true } = options;
    const address = this.subnet.host(this.#nextHost++);
    const port = `${this.ifname}p${this.#nextPort++}`;
    await this.ns.ip('link', 'add', port, 'type', 'veth', 'peer', 'name', ifname, 'netns', ns.name);
    await this.ns.ip('link', 'set', port, 'master', this.ifname, 'up');
    await ns.ip('addr', 'add', `${address}/24`, 'dev', ifname);
    await ns.ip('link', 'set', ifname, 'up');
    if (defaultRoute) await ns.ip('route', 'add', 'default', 'via', this.gateway);
    return address;
  }
}

// ---------------------------------------------------------------------------------------
// Teardown

/** @type {Set<NetLab>} */
const liveLabs = new Set();
let handlersInstalled = false;

function installProcessHandlers() {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', () => {
    for (const lab of liveLabs) lab.destroySync();
  });
  for (const sig of /** @type {const} */ (['SIGINT', 'SIGTERM', 'SIGHUP'])) {
    const onSignal = () => {
      for (const lab of liveLabs) lab.destroySync();
      process.removeListener(sig, onSignal);
      process.kill(process.pid, sig);
    };
    process.on(sig, onSignal);
  }
}

/** @param {number} pid */
function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return /** @type {NodeJS.ErrnoException} */ (err).code === 'EPERM';
  }
}

/** @param {string} stdout */
function killPids(stdout) {
  for (const pid of stdout.split(/\s+/).filter(Boolean).map(Number)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** @param {string} name */
function deleteNamespaceSync(name) {
  // Processes inside would keep the namespace alive after its name is gone.
  killPids(runSync('ip', ['netns', 'pids', name]).stdout);
  runSync('ip', ['netns', 'del', name]);
}

/** Removes namespaces of labs whose owning process is gone (killed before its teardown). */
function reapStaleLabs() {
  /** @type {string[]} */
  let files;
  try {
    files = readdirSync(REGISTRY);
  } catch {
    return;
  }
  for (const file of files) {
    if (!file.endsWith('.json')) continue;
    try {
      const entry = /** @type {{ pid: number, namespaces: string[] }} */ (JSON.parse(readFileSync(join(REGISTRY, file), 'utf8')));
      if (alive(entry.pid)) continue;
      for (const ns of entry.namespaces) if (ns.startsWith(NETNS_PREFIX)) deleteNamespaceSync(ns);
      rmSync(join(REGISTRY, file), { force: true });
    } catch {
      // a file being written by another lab; leave it
    }
  }
}

/**
 * The namespaces currently present (`ip netns list`).
 * @returns {Promise<string[]>}
 */
export async function listNamespaces() {
  const { stdout } = await run('ip', ['netns', 'list']);
  return stdout
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter(Boolean);
}

// ---------------------------------------------------------------------------------------
// The lab

/** A set of namespaces and the processes started in them; destroy() removes all of it. */
export class NetLab {
  /** `rp-` + 6 random hex digits: the prefix of every namespace of this lab. */
  id = `${NETNS_PREFIX}${randomBytes(3).toString('hex')}`;
  /** @type {Netns[]} */
  #namespaces = [];
  /** @type {{ child: ChildProcess, signal: NodeJS.Signals }[]} */
  #children = [];
  /** @type {Subnet[]} */
  #subnets = [];
  #destroyed = false;

  /** @returns {NetLab} */
  static create() {
    const cap = canUseNetns();
    if (!cap.ok) throw new Error(`network lab unavailable: ${cap.reason}`);
    reapStaleLabs();
    installProcessHandlers();
    const lab = new NetLab();
    liveLabs.add(lab);
    lab.#record();
    return lab;
  }

  /** Names of this lab's namespaces. */
  get names() {
    return this.#namespaces.map((n) => n.name);
  }

  /**
   * Creates namespace `<id>-<role>` with loopback up.
   * @param {string} role
   * @returns {Promise<Netns>}
   */
  async namespace(role) {
    if (this.#destroyed) throw new Error('lab destroyed');
    if (!/^[a-z0-9]{1,12}$/.test(role)) throw new Error(`role "${role}" must be 1-12 of [a-z0-9]`);
    const ns = new Netns(this, `${this.id}-${role}`);
    if (this.#namespaces.some((n) => n.name === ns.name)) throw new Error(`namespace ${ns.name} exists`);
    // Recorded before it exists so a crash in between still gets it reaped.
    this.#namespaces.push(ns);
    this.#record();
    await run('ip', ['netns', 'add', ns.name]);
    await ns.ip('link', 'set', 'lo', 'up');
    return ns;
  }

  /**
   * A fresh /24 of 10.213.0.0/16 overlapping neither the host's routes nor this lab's subnets.
   * @returns {Subnet}
   */
  subnet() {
    const taken = hostPrefixes();
    /** @type {number[]} */
    const free = [];
    for (let third = 0; third < 256; third++) {
      if (this.#subnets.some((s) => s.third === third)) continue;
      const net = ipToInt(`10.213.${third}.0`);
      if (!taken.some(([n, len]) => overlaps(net, 24, n, len))) free.push(third);
    }
    const third = free[(randomBytes(1)[0] ?? 0) % Math.max(free.length, 1)];
    if (third === undefined) throw new Error('no free /24 in 10.213.0.0/16');
    const subnet = new Subnet(third);
    this.#subnets.push(subnet);
    return subnet;
  }

  /**
   * A bridge `ifname` (default br0) in `ns` on a fresh subnet, addressed .1.
   * @param {Netns} ns
   * @param {{ ifname?: string, subnet?: Subnet }} [options]
   * @returns {Promise<Switch>}
   */
  async switch(ns, options = {}) {
    const { ifname = 'br0', subnet = this.subnet() } = options;
    await ns.ip('link', 'add', ifname, 'type', 'bridge');
    await ns.ip('addr', 'add', `${subnet.host(1)}/24`, 'dev', ifname);
    await ns.ip('link', 'set', ifname, 'up');
    return new Switch(ns, ifname, subnet);
  }

  /**
   * A point-to-point veth pair between two namespaces, optionally addressed (CIDR).
   * @param {Netns} a
   * @param {string} aIf
   * @param {Netns} b
   * @param {string} bIf
   * @param {{ a?: string, b?: string }} [addrs]
   * @returns {Promise<void>}
   */
  async veth(a, aIf, b, bIf, addrs = {}) {
    await a.ip('link', 'add', aIf, 'type', 'veth', 'peer', 'name', bIf, 'netns', b.name);
    if (addrs.a) await a.ip('addr', 'add', addrs.a, 'dev', aIf);
    if (addrs.b) await b.ip('addr', 'add', addrs.b, 'dev', bIf);
    await a.ip('link', 'set', aIf, 'up');
    await b.ip('link', 'set', bIf, 'up');
  }

  /**
   * Netns.spawn registers its children here.
   * @param {ChildProcess} child
   * @param {NodeJS.Signals} signal
   */
  track(child, signal) {
    this.#children.push({ child, signal });
  }

  /**
   * Kills what is still running, deletes every namespace (and so its links and tables).
   * @returns {Promise<void>}
   */
  async destroy() {
    if (this.#destroyed) return;
    this.#destroyed = true;
    await Promise.all(
      this.#children.map(async ({ child, signal }) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        /** @type {Promise<void>} */
        const exited = new Promise((resolve) => child.once('exit', () => resolve()));
        child.kill(signal);
        // A child that does not stop on `signal` within 3 s is killed.
        const force = setTimeout(() => child.kill('SIGKILL'), 3_000);
        await exited;
        clearTimeout(force);
      }),
    );
    for (const ns of this.#namespaces) {
      const { stdout } = await run('ip', ['netns', 'pids', ns.name]).catch(() => ({ stdout: '' }));
      killPids(stdout);
      await run('ip', ['netns', 'del', ns.name]).catch(() => undefined);
    }
    liveLabs.delete(this);
    rmSync(join(REGISTRY, `${this.id}.json`), { force: true });
  }

  /** The exit/signal handlers' synchronous teardown. */
  destroySync() {
    if (this.#destroyed) return;
    this.#destroyed = true;
    for (const { child } of this.#children) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    for (const ns of this.#namespaces) deleteNamespaceSync(ns.name);
    liveLabs.delete(this);
    rmSync(join(REGISTRY, `${this.id}.json`), { force: true });
  }

  #record() {
    mkdirSync(REGISTRY, { recursive: true });
    writeFileSync(join(REGISTRY, `${this.id}.json`), JSON.stringify({ pid: process.pid, namespaces: this.names }));
  }
}
