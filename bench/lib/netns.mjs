/**
 * A small network-namespace lab for benchmarks (plain .mjs; the same ideas as
 * test/helpers/netns.ts, which a benchmark cannot import).
 *
 * - Namespaces are named `rp-<6 hex>-<role>`; subnets are /24s of 10.213.0.0/16 that
 *   overlap none of the root namespace's routes or addresses (read, never changed).
 * - Nothing is created in the root namespace: veth pairs are made inside a lab namespace
 *   with the other end moved straight into the other lab namespace. Deleting a namespace
 *   deletes its links and nftables tables.
 * - Teardown always runs: `destroy()`, plus a synchronous teardown on exit and on
 *   SIGINT/SIGTERM/SIGHUP. Each lab records itself in /run/rallypoint-netlab/<id>.json with
 *   its pid (the test helper's registry and format), so a lab whose process was SIGKILLed is
 *   reaped by the next lab, from either side.
 */
import { execFile, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const REGISTRY = '/run/rallypoint-netlab';
export const NETNS_PREFIX = 'rp-';

/** Runs a command (no shell); rejects with its stderr on a non-zero exit. */
export function run(cmd, args, input) {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${stderr.trim() || err.message}`));
      else resolve({ stdout, stderr });
    });
    if (input !== undefined) child.stdin.end(input);
  });
}

function runSync(cmd, args, input) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', input, timeout: 10_000 });
  return { ok: r.status === 0, stdout: r.stdout ?? '', stderr: r.stderr ?? (r.error ? r.error.message : '') };
}

/** null when a lab can be built here (root, ip, nft, veth in a namespace), else the reason. */
export function netnsUnavailable() {
  if (process.platform !== 'linux') return `network namespaces need Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  for (const [cmd, arg] of [
    ['ip', '-V'],
    ['nft', '--version'],
  ]) {
    const r = spawnSync(cmd, [arg], { encoding: 'utf8' });
    if (r.error || r.status !== 0) return `\`${cmd}\` is not usable: ${r.error?.message ?? r.stderr}`;
  }
  return null;
}

/** ['chrt', '-f', '20'] where SCHED_FIFO children are allowed, else []. */
export function realtimePrefix() {
  return spawnSync('chrt', ['-f', '20', 'true']).status === 0 ? ['chrt', '-f', '20'] : [];
}

const ipToInt = (ip) => ip.split('.').map(Number).reduce((a, b) => ((a << 8) | b) >>> 0, 0);
function overlaps(aNet, aLen, bNet, bLen) {
  const len = Math.min(aLen, bLen);
  const mask = len === 0 ? 0 : (~0 << (32 - len)) >>> 0;
  return ((aNet & mask) >>> 0) === ((bNet & mask) >>> 0);
}
function hostPrefixes() {
  const out = [];
  const routes = runSync('ip', ['-j', '-4', 'route', 'show', 'table', 'all']);
  if (routes.ok) {
    for (const r of JSON.parse(routes.stdout || '[]')) {
      if (!r.dst || r.dst === 'default') continue;
      const [net, len] = r.dst.split('/');
      if (/^\d+\.\d+\.\d+\.\d+$/.test(net)) out.push([ipToInt(net), len === undefined ? 32 : Number(len)]);
    }
  }
  const addrs = runSync('ip', ['-j', '-4', 'addr']);
  if (addrs.ok) for (const link of JSON.parse(addrs.stdout || '[]')) for (const a of link.addr_info ?? []) if (a.local) out.push([ipToInt(a.local), a.prefixlen ?? 32]);
  return out;
}

/** A /24 of 10.213.0.0/16. */
export class Subnet {
  constructor(third) {
    this.third = third;
  }
  get cidr() {
    return `10.213.${this.third}.0/24`;
  }
  host(n) {
    return `10.213.${this.third}.${n}`;
  }
}

/** nftables table text: `rule` in a filter chain on each hook. */
function tableText(table, hooks, rule) {
  const chains = hooks.map((hook) => `  chain ${hook} {\n    type filter hook ${hook} priority 0; policy accept;\n    counter\n    ${rule}\n  }`);
  return `table inet ${table} {\n${chains.join('\n')}\n}\n`;
}

export class Netns {
  #seq = 0;
  constructor(lab, name) {
    this.lab = lab;
    this.name = name;
  }
  exec(cmd, args = [], input) {
    return run('ip', ['netns', 'exec', this.name, cmd, ...args], input);
  }
  ip(...args) {
    return run('ip', ['-n', this.name, ...args]);
  }
  /** A long-running process in the namespace; killed by destroy() if still running. */
  spawn(cmd, args = [], options = {}) {
    const { killSignal = 'SIGKILL', ...rest } = options;
    const child = spawn('ip', ['netns', 'exec', this.name, cmd, ...args], { stdio: 'pipe', ...rest });
    this.lab.track(child, killSignal);
    return child;
  }

  /**
   * An nftables table of its own (removable alone) that applies `match` (e.g. `meta l4proto
   * udp`, or '' for every packet) in the input and output hooks of this namespace: dropping
   * `percent` % of the matching packets at random (numgen), or all of them at 100. Counts the
   * packets seen and dropped per hook.
   */
  async addDrop({ percent, match = '', hooks = ['input', 'output'] }) {
    if (!(percent >= 0 && percent <= 100)) throw new RangeError(`percent ${percent} outside 0-100`);
    const threshold = Math.round(percent * 100); // out of 10,000
    const table = `rp_drop_${++this.#seq}`;
    const m = match ? `${match} ` : '';
    const rule = threshold >= 10000 ? `${m}counter drop` : threshold > 0 ? `${m}numgen random mod 10000 < ${threshold} counter drop` : '';
    await this.exec('nft', ['-f', '-'], tableText(table, hooks, rule));
    const ns = this;
    return {
      table,
      /** {seen: {input, output}, dropped: {input, output}} packets. */
      async counters() {
        const { stdout } = await ns.exec('nft', ['-j', 'list', 'table', 'inet', table]);
        const result = { seen: {}, dropped: Object.fromEntries(hooks.map((h) => [h, 0])) };
        for (const item of JSON.parse(stdout).nftables) {
          const r = item.rule;
          if (!r) continue;
          const counter = r.expr.find((e) => 'counter' in e)?.counter;
          if (counter) (r.expr.some((e) => 'drop' in e) ? result.dropped : result.seen)[r.chain] = counter.packets;
        }
        return result;
      },
      remove: () => ns.exec('nft', ['delete', 'table', 'inet', table]).then(() => undefined),
    };
  }
}

/** A bridge in a namespace, addressed .1 of its subnet. */
export class Switch {
  #nextHost = 2;
  #nextPort = 0;
  constructor(ns, ifname, subnet) {
    this.ns = ns;
    this.ifname = ifname;
    this.subnet = subnet;
  }
  get gateway() {
    return this.subnet.host(1);
  }
  /** Plugs `ns` in with a veth pair (its side `eth0`), the next address and a default route via .1. */
  async attach(ns, { ifname = 'eth0' } = {}) {
    const address = this.subnet.host(this.#nextHost++);
    const port = `${this.ifname}p${this.#nextPort++}`;
    await this.ns.ip('link', 'add', port, 'type', 'veth', 'peer', 'name', ifname, 'netns', ns.name);
    await this.ns.ip('link', 'set', port, 'master', this.ifname, 'up');
    await ns.ip('addr', 'add', `${address}/24`, 'dev', ifname);
    await ns.ip('link', 'set', ifname, 'up');
    await ns.ip('route', 'add', 'default', 'via', this.gateway);
    return address;
  }
}

const liveLabs = new Set();
let handlersInstalled = false;
function installHandlers() {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', () => {
    for (const lab of liveLabs) lab.destroySync();
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    const onSignal = () => {
      for (const lab of liveLabs) lab.destroySync();
      process.removeListener(sig, onSignal);
      process.kill(process.pid, sig);
    };
    process.on(sig, onSignal);
  }
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === 'EPERM';
  }
}

function deleteNamespaceSync(name) {
  for (const pid of runSync('ip', ['netns', 'pids', name]).stdout.split(/\s+/).filter(Boolean).map(Number)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  runSync('ip', ['netns', 'del', name]);
}

function reapStaleLabs() {
  let files;
  try {
    files = readdirSync(REGISTRY);
  } catch {
    return;
  }
  for (const file of files) {
    if (!file.endsWith('.json')) continue;
    try {
      const entry = JSON.parse(readFileSync(join(REGISTRY, file), 'utf8'));
      if (alive(entry.pid)) continue;
      for (const ns of entry.namespaces) if (ns.startsWith(NETNS_PREFIX)) deleteNamespaceSync(ns);
      rmSync(join(REGISTRY, file), { force: true });
    } catch {
      // being written by another lab
    }
  }
}

export async function listNamespaces() {
  const { stdout } = await run('ip', ['netns', 'list']);
  return stdout
    .split('\n')
    .map((l) => l.split(' ')[0])
    .filter(Boolean);
}

export class NetLab {
  id = `${NETNS_PREFIX}${randomBytes(3).toString('hex')}`;
  #namespaces = [];
  #children = [];
  #subnets = [];
  #destroyed = false;

  static create() {
    const why = netnsUnavailable();
    if (why) throw new Error(`network lab unavailable: ${why}`);
    reapStaleLabs();
    installHandlers();
    const lab = new NetLab();
    liveLabs.add(lab);
    lab.#record();
    return lab;
  }

  get names() {
    return this.#namespaces.map((n) => n.name);
  }

  async namespace(role) {
    if (this.#destroyed) throw new Error('lab destroyed');
    const ns = new Netns(this, `${this.id}-${role}`);
    this.#namespaces.push(ns);
    this.#record(); // before it exists: a crash in between still gets it reaped
    await run('ip', ['netns', 'add', ns.name]);
    await ns.ip('link', 'set', 'lo', 'up');
    return ns;
  }

  subnet() {
    const taken = hostPrefixes();
    const free = [];
    for (let third = 0; third < 256; third++) {
      if (this.#subnets.some((s) => s.third === third)) continue;
      if (!taken.some(([n, len]) => overlaps(ipToInt(`10.213.${third}.0`), 24, n, len))) free.push(third);
    }
    if (free.length === 0) throw new Error('no free /24 in 10.213.0.0/16');
    const subnet = new Subnet(free[randomBytes(1)[0] % free.length]);
    this.#subnets.push(subnet);
    return subnet;
  }

  async switch(ns, { ifname = 'br0', subnet = this.subnet() } = {}) {
    await ns.ip('link', 'add', ifname, 'type', 'bridge');
    await ns.ip('addr', 'add', `${subnet.host(1)}/24`, 'dev', ifname);
    await ns.ip('link', 'set', ifname, 'up');
    return new Switch(ns, ifname, subnet);
  }

  track(child, signal) {
    this.#children.push({ child, signal });
  }

  async destroy() {
    if (this.#destroyed) return;
    this.#destroyed = true;
    await Promise.all(
      this.#children.map(async ({ child, signal }) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill(signal);
        const force = setTimeout(() => child.kill('SIGKILL'), 3_000);
        await exited;
        clearTimeout(force);
      }),
    );
    for (const ns of this.#namespaces) {
      const { stdout } = await run('ip', ['netns', 'pids', ns.name]).catch(() => ({ stdout: '' }));
      for (const pid of stdout.split(/\s+/).filter(Boolean).map(Number)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
      await run('ip', ['netns', 'del', ns.name]).catch(() => undefined);
    }
    liveLabs.delete(this);
    rmSync(join(REGISTRY, `${this.id}.json`), { force: true });
  }

  destroySync() {
    if (this.#destroyed) return;
    this.#destroyed = true;
    for (const { child } of this.#children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    for (const ns of this.#namespaces) deleteNamespaceSync(ns.name);
    liveLabs.delete(this);
    rmSync(join(REGISTRY, `${this.id}.json`), { force: true });
  }

  #record() {
    mkdirSync(REGISTRY, { recursive: true });
    writeFileSync(join(REGISTRY, `${this.id}.json`), JSON.stringify({ pid: process.pid, namespaces: this.names }));
  }
}
