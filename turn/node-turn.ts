/**
 * Minimal types for the parts of node-turn 0.0.6 (plain JS, no types) that the embedded
 * server uses, and the loader for its internal modules.
 */
import { createRequire } from 'node:module';
import type { Socket } from 'node:dgram';
import type { EventEmitter } from 'node:events';

export interface NtAddress {
  family: number;
  address: string;
  port: number;
}

export interface NtTransport {
  protocol: number;
  src: NtAddress;
  dst: NtAddress;
  socket: Socket;
  get5Tuple(): string;
  revert(): NtTransport;
}

export interface NtUser {
  username: string;
  password: string;
}

export interface NtAttribute {
  type: number;
  name: string | null;
  length: number;
  padding: number;
  value: unknown;
  /** Set by our patched reader for attribute types node-turn does not know. */
  unknown?: boolean;
  read(data: Buffer): void;
}

export interface NtMessage {
  server: NtServer;
  transport: NtTransport;
  allocation: NtAllocation | null;
  class: number;
  method: number;
  transactionID: string;
  attributes: NtAttribute[];
  useFingerprint: boolean;
  user: NtUser | null;
  read(buf: Buffer): boolean;
  reply(): NtMessage;
  getAttribute(name: string): unknown;
  getAttributes(name: string): unknown[];
  addAttribute(name: string, value?: unknown): void;
  resolve(): void;
  reject(code: number, reason: string): void;
  discard(): void;
  data(payload: Buffer): void;
}

export interface NtAllocation {
  transactionID: string;
  transport: NtTransport;
  fiveTuple: string;
  user: NtUser;
  sockets: Socket[];
  relayedTransportAddress: NtAddress;
  lifetime: number;
  mappedAddress: NtAddress;
  permissions: Record<string, number | undefined>;
  channelBindings: Record<string, NtAddress | undefined>;
  timeToExpiry: number;
  timer: NodeJS.Timeout | undefined;
  update(lifetime?: number): void;
  permit(address: string): void;
  getPeerChannelNumber(peer: NtAddress): number | undefined;
}

export interface NtAuthentification {
  credentials: Record<string, string | undefined>;
  nonces: Record<string, { ttl: number } | undefined>;
  generateNonce(): string;
  checkNonce(nonce: string): boolean;
}

export interface NtAllocateHandler {
  allocate(msg: NtMessage, reply: NtMessage): void;
}

export type NtHandler = (msg: NtMessage, reply: NtMessage) => void;

export interface NtServer extends EventEmitter {
  software: string;
  realm: string;
  authMech: string;
  defaultAllocatetLifetime: number;
  maxAllocateLifetime: number;
  allocations: Record<string, NtAllocation | undefined>;
  authentification: NtAuthentification;
  allocate: NtAllocateHandler;
  refresh: { refresh: NtHandler };
  createPermission: { createPermission: NtHandler };
  send: { send: NtHandler };
  channelBind: { channelBind: NtHandler };
}

export interface NtServerConfig {
  listeningIps: string[];
  listeningPort: number;
  relayIps: string[];
  externalIps: string | null;
  minPort: number;
  maxPort: number;
  maxAllocateLifetime: number;
  defaultAllocatetLifetime: number;
  authMech: 'long-term';
  realm: string;
  debugLevel: string;
  log: (...args: unknown[]) => void;
}

const require = createRequire(import.meta.url);

export const NodeTurnServer = require('node-turn') as new (config: NtServerConfig) => NtServer;
export const NtMessageCtor = require('node-turn/lib/message.js') as new (server: NtServer, transport: NtTransport) => NtMessage;
export const NtTransportCtor = require('node-turn/lib/transport.js') as new (
  protocol: number,
  src: NtAddress,
  dst: NtAddress,
  socket: Socket,
) => NtTransport;
export const NtAddressCtor = require('node-turn/lib/address.js') as new (address: string, port: number) => NtAddress;
export const NtAllocationCtor = require('node-turn/lib/allocation.js') as new (
  msg: NtMessage,
  sockets: Socket[],
  lifetime: number,
) => NtAllocation;
export const NtAttributeCtor = require('node-turn/lib/attribute.js') as { prototype: NtAttribute };
export const UDP_PROTOCOL = 0x11;
