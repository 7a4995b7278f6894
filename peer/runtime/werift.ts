import { RTCDataChannel, RTCSctpTransport, RTCPeerConnection as WeriftPeerConnection } from 'werift';
import type { RtcRuntime, SendGate } from './types.js';
import { applyWeriftFixes } from './werift-fixes.js';

const LOW = Symbol('rallypoint.onbufferedamountlow');

/**
 * werift emits `bufferedamountlow` as an EventEmitter event but has no
 * `onbufferedamountlow` property (W3C WebRTC §6.2); add one so one code path serves all runtimes.
 */
function addBufferedAmountLowProperty(): void {
  const proto = RTCDataChannel.prototype as unknown as Record<PropertyKey, unknown>;
  if (Object.getOwnPropertyDescriptor(proto, 'onbufferedamountlow')) return;
  Object.defineProperty(proto, 'onbufferedamountlow', {
    configurable: true,
    get(this: { [LOW]?: (() => void) | null }) {
      return this[LOW] ?? null;
    },
    set(this: { [LOW]?: (() => void) | null; on(e: string, f: () => void): void; off(e: string, f: () => void): void }, fn: (() => void) | null) {
      const prev = this[LOW];
      if (prev) this.off('bufferedamountlow', prev);
      this[LOW] = typeof fn === 'function' ? fn : null;
      if (this[LOW]) this.on('bufferedamountlow', this[LOW]);
    },
  });
}

/**
 * werift's SCTP association stalls for good once a few hundred DATA chunks are queued or
 * unacknowledged (measured here: 2,000 x 100 B sent at once stop after about 600 and never
 * resume; kept under 64 chunks the same burst goes through at about 3,000 messages/s, and
 * 16 KB messages at about 10 MB/s). Its `bufferedAmount` drops as soon as a message is
 * handed to SCTP, so the watermarks cannot see this queue: the gate below does.
 */
export const WERIFT_MAX_QUEUED_CHUNKS = 64;

interface WeriftSctp {
  outboundQueue: unknown[];
  sentQueue: unknown[];
  flush: { subscribe(cb: () => void): { unSubscribe(): void } };
}

function weriftSendGate(pc: RTCPeerConnection): SendGate | null {
  const sctp = (pc as unknown as { sctpTransport?: { sctp?: WeriftSctp } }).sctpTransport?.sctp;
  if (!sctp) return null;
  const blocked = (): boolean => sctp.outboundQueue.length + sctp.sentQueue.length >= WERIFT_MAX_QUEUED_CHUNKS;
  return {
    blocked,
    onDrain(cb) {
      // `flush` fires after every transmit round, i.e. after each SACK that freed room.
      const sub = sctp.flush.subscribe(() => {
        if (!blocked()) cb();
      });
      return () => sub.unSubscribe();
    },
  };
}

/**
 * werift's ICE agent falls back to stun.l.google.com:19302 when no STUN server is configured
 * (`Connection` in its ice package: `validateAddress(stunServer) ?? ["stun.l.google.com",
 * 19302]`), even for `iceServers: []`: it contacts a third party nobody configured, and where
 * that host is unreachable every setLocalDescription waits ~5 s for it. The subclass removes
 * the fallback: no STUN server configured means no server-reflexive gathering, as in browsers.
 */
function hasStun(iceServers: readonly { urls: string | string[] }[] | undefined): boolean {
  return (iceServers ?? []).some((s) => (Array.isArray(s.urls) ? s.urls : [s.urls]).some((u) => /^stuns?:/i.test(u)));
}

interface WeriftDtlsTransport {
  iceTransport?: { connection?: { stunServer?: unknown } };
}
type WeriftConfig = ConstructorParameters<typeof WeriftPeerConnection>[0];

class RallypointWeriftPeerConnection extends WeriftPeerConnection {
  constructor(config: WeriftConfig = {}) {
    // werift's default configuration also names Google's STUN server: start from none.
    super({ ...config, iceServers: config.iceServers ?? [] });
    if (hasStun(this.config.iceServers as { urls: string | string[] }[])) return;
    // The ICE transports are made by werift's (private) SecureTransportManager.
    const manager = (this as unknown as { secureManager?: { createTransport(): unknown } }).secureManager;
    if (!manager) throw new Error('werift RTCPeerConnection has no secureManager: check peer/runtime/werift.ts against this werift version');
    const create = manager.createTransport.bind(manager);
    manager.createTransport = () => {
      const transport = create();
      const connection = (transport as WeriftDtlsTransport).iceTransport?.connection;
      if (connection) connection.stunServer = undefined;
      return transport;
    };
  }
}

let ready = false;

/**
 * `RALLYPOINT_WERIFT_FIXES=0` in the environment (read at the first `weriftRuntime()` call)
 * leaves werift's SCTP/DCEP code as shipped: unreliable channels are then announced as
 * ordered and retransmit until delivered (see werift-fixes.ts). It exists so tests can show
 * the upstream defects; do not set it otherwise. The fixes patch werift's prototypes, so
 * once applied in a process they stay applied.
 */
export const WERIFT_FIXES_ENV = 'RALLYPOINT_WERIFT_FIXES';

/** werift (pure TypeScript WebRTC), with rallypoint's fixes applied: the Node default. */
export function weriftRuntime(): RtcRuntime {
  if (!ready) {
    if (process.env[WERIFT_FIXES_ENV] === '0') {
      process.emitWarning(`${WERIFT_FIXES_ENV}=0: werift's partial reliability and DCEP bugs are NOT fixed in this process`, { code: 'RALLYPOINT_WERIFT_UNFIXED' });
    } else {
      applyWeriftFixes(RTCSctpTransport);
    }
    addBufferedAmountLowProperty();
    ready = true;
  }
  // `iceRestart: false`: werift 0.24's ICE restart does not bring data back (after a restart
  // offer/answer the candidates of the new generation are refused, "No media section matched
  // the ICE usernameFragment", and nothing flows), so rallypoint rebuilds the connection
  // instead when a werift peer is on either side.
  return { RTCPeerConnection: RallypointWeriftPeerConnection as unknown as RtcRuntime['RTCPeerConnection'], sendGate: weriftSendGate, iceRestart: false };
}
