import { createHash } from 'node:crypto';
import { createClient, createCluster } from 'redis';

/** A Lua script with its SHA1, sent with EVALSHA and loaded with EVAL on NOSCRIPT. */
export interface Script {
  readonly source: string;
  readonly sha: string;
}

export function script(source: string): Script {
  return { source, sha: createHash('sha1').update(source).digest('hex') };
}

/** A message on a sharded channel: channel and text. */
export type ChannelListener = (message: string, channel: string) => void;

/**
 * The few Redis operations the cluster store needs, over one standalone server or a Redis
 * Cluster alike. Commands never wait in an offline queue: while Redis is unreachable they
 * fail at once, and the store decides what happens to the frame (PROTOCOL.md, Cluster).
 */
export interface RedisLink {
  /** Runs a script; `keys` must share one hash slot (they do: every key names its tag). */
  run(s: Script, keys: string[], args: (string | number)[]): Promise<unknown>;
  /** SPUBLISH; resolves with the number of subscribers that got the message. */
  publish(channel: string, message: string): Promise<number>;
  /** A raw command whose first key is `key` (routes it in a cluster). */
  command(key: string, args: string[]): Promise<unknown>;
  subscribe(channel: string, listener: ChannelListener): Promise<void>;
  unsubscribe(channel: string): Promise<void>;
  /**
   * Subscribes everything again on a fresh connection and drops the old one: for a
   * subscription that stopped delivering while its TCP connection looks alive (a proxy or
   * middlebox that lost the flow's state, a failover that kept the socket).
   */
  renew(): Promise<void>;
  /** Both the command and the subscriber connections are up. */
  readonly ready: boolean;
  /** Called whenever a connection comes back (after the first connect). */
  onReconnect(listener: () => void): void;
  /** Called with connection errors (logged by the store; never thrown). */
  onError(listener: (err: Error) => void): void;
  connect(): Promise<void>;
  close(): Promise<void>;
}

export type RedisTarget = { url: string } | { cluster: string[] };

type Send = (key: string, args: string[]) => Promise<unknown>;

/** node-redis gives NOSCRIPT as an ErrorReply whose message starts with the code. */
const isNoScript = (err: unknown): boolean => err instanceof Error && err.message.startsWith('NOSCRIPT');

function runner(send: Send): RedisLink['run'] {
  return async (s, keys, args) => {
    const tail = [String(keys.length), ...keys, ...args.map(String)];
    const first = keys[0] ?? '';
    try {
      return await send(first, ['EVALSHA', s.sha, ...tail]);
    } catch (err) {
      if (!isNoScript(err)) throw err;
      // A restarted Redis (or a new cluster master) has an empty script cache.
      return send(first, ['EVAL', s.source, ...tail]);
    }
  };
}

/**
 * Reconnects quickly and forever: the store reports degraded meanwhile (/healthz), and a
 * Redis back within seconds must be used within a second (jittered so nodes do not
 * reconnect in lockstep).
 */
const reconnectStrategy = (retries: number): number => Math.min(50 * 2 ** Math.min(retries, 4), 800) + Math.floor(Math.random() * 100);

export function createLink(target: RedisTarget): RedisLink {
  return 'url' in target ? standaloneLink(target.url) : clusterLink(target.cluster);
}

function standaloneLink(url: string): RedisLink {
  const options = { url, disableOfflineQueue: true, socket: { reconnectStrategy, connectTimeout: 2_000 } };
  const cmd = createClient(options);
  const reconnects: (() => void)[] = [];
  const errors: ((err: Error) => void)[] = [];
  const channels = new Map<string, ChannelListener>();
  let connected = false;
  const watch = (c: typeof cmd): void => {
    c.on('ready', () => {
      if (connected) for (const l of reconnects) l();
    });
    c.on('error', (err: Error) => {
      for (const l of errors) l(err);
    });
  };
  watch(cmd);
  let sub = cmd.duplicate();
  watch(sub);
  const send: Send = (_key, args) => cmd.sendCommand(args);
  return {
    run: runner(send),
    publish: async (channel, message) => Number(await cmd.sendCommand(['SPUBLISH', channel, message])),
    command: send,
    subscribe: async (channel, listener) => {
      channels.set(channel, listener);
      await sub.sSubscribe(channel, listener);
    },
    unsubscribe: async (channel) => {
      channels.delete(channel);
      await sub.sUnsubscribe(channel);
    },
    renew: async () => {
      const fresh = cmd.duplicate();
      watch(fresh);
      await fresh.connect();
      for (const [channel, listener] of channels) await fresh.sSubscribe(channel, listener);
      const old = sub;
      sub = fresh;
      old.destroy();
    },
    get ready() {
      return cmd.isReady && sub.isReady;
    },
    onReconnect: (l) => void reconnects.push(l),
    onError: (l) => void errors.push(l),
    connect: async () => {
      await Promise.all([cmd.connect(), sub.connect()]);
      connected = true;
    },
    close: async () => {
      await Promise.allSettled([cmd.isOpen ? cmd.close() : undefined, sub.isOpen ? sub.close() : undefined]);
    },
  };
}

function clusterLink(urls: string[]): RedisLink {
  const c = createCluster({
    rootNodes: urls.map((url) => ({ url })),
    defaults: { disableOfflineQueue: true, socket: { reconnectStrategy, connectTimeout: 2_000 } },
  });
  const reconnects: (() => void)[] = [];
  const channels = new Map<string, ChannelListener>();
  let ready = false;
  const send: Send = (key, args) => c.sendCommand(key, false, args);
  return {
    run: runner(send),
    publish: async (channel, message) => Number(await c.sendCommand(channel, false, ['SPUBLISH', channel, message])),
    command: send,
    subscribe: async (channel, listener) => {
      channels.set(channel, listener);
      await c.sSubscribe(channel, listener);
    },
    unsubscribe: async (channel) => {
      channels.delete(channel);
      await c.sUnsubscribe(channel);
    },
    // node-redis keeps a cluster's shard subscriptions on connections of its own per
    // master, out of reach: renewal subscribes each channel again on them.
    renew: async () => {
      for (const [channel, listener] of channels) {
        await c.sUnsubscribe(channel).catch(() => undefined);
        await c.sSubscribe(channel, listener);
      }
    },
    get ready() {
      return ready && c.isOpen;
    },
    onReconnect: (l) => void reconnects.push(l),
    onError: (l) => void c.on('error', l),
    connect: async () => {
      await c.connect();
      ready = true;
    },
    close: async () => {
      ready = false;
      if (c.isOpen) await c.close();
    },
  };
}
