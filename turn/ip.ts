/**
 * IP addresses as text and bytes. The socket layer reports a datagram's source in libuv's
 * inet_ntop form (IPv6 compressed, IPv4-mapped as `::ffff:a.b.c.d`); node-turn spells IPv6
 * as eight uncompressed groups. Permissions, policy checks and per-IP limits compare one
 * canonical form.
 */
import { isIPv4, SocketAddress } from 'node:net';

/** Parses an IPv4 or IPv6 text address (with optional embedded dotted quad) to 4 or 16 bytes. */
export function ipBytes(address: string): Buffer {
  const a = address.split('%')[0]!;
  if (isIPv4(a)) return Buffer.from(a.split('.').map(Number));
  let text = a;
  const lastColon = text.lastIndexOf(':');
  const last = text.slice(lastColon + 1);
  if (last.includes('.')) {
    if (!isIPv4(last)) throw new Error(`invalid address ${address}`);
    const q = last.split('.').map(Number);
    text = `${text.slice(0, lastColon + 1)}${((q[0]! << 8) | q[1]!).toString(16)}:${((q[2]! << 8) | q[3]!).toString(16)}`;
  }
  const halves = text.split('::');
  if (halves.length > 2) throw new Error(`invalid address ${address}`);
  const parse = (s: string): number[] =>
    s === ''
      ? []
      : s.split(':').map((g) => {
          if (!/^[0-9a-f]{1,4}$/i.test(g)) throw new Error(`invalid address ${address}`);
          return parseInt(g, 16);
        });
  const left = parse(halves[0]!);
  const right = halves.length === 2 ? parse(halves[1]!) : [];
  const fill = 8 - left.length - right.length;
  if (halves.length === 1 ? fill !== 0 : fill < 0) throw new Error(`invalid address ${address}`);
  const groups = [...left, ...new Array<number>(halves.length === 2 ? fill : 0).fill(0), ...right];
  const b = Buffer.alloc(16);
  groups.forEach((g, i) => {
    b.writeUInt16BE(g, i * 2);
  });
  return b;
}

/**
 * An IP address in the text form the socket layer reports in `rinfo.address` (libuv's
 * inet_ntop: IPv6 compressed, IPv4-mapped as `::ffff:a.b.c.d`), so that addresses node-turn
 * parsed from XOR-PEER-ADDRESS (eight uncompressed groups) and datagram sources compare
 * equal. node-turn compared its own forms, and its `Address` expands `::` wrongly when more
 * than one group precedes it (lib/address.js: `2001:db8::1` became seven groups), so datagrams
 * from such IPv6 peers never matched their permission. Undefined if not an IP address.
 */
export function canonicalIp(address: string): string | undefined {
  try {
    return new SocketAddress({ address, family: address.includes(':') ? 'ipv6' : 'ipv4' }).address;
  } catch {
    return undefined;
  }
}
