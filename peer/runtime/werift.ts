import { RTCDataChannel, RTCPeerConnection as WeriftPeerConnection, RTCSctpTransport } from 'werift';
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

let ready = false;

/** werift (pure TypeScript WebRTC), with rallypoint's fixes applied: the Node default. */
export function weriftRuntime(): RtcRuntime {
  if (!ready) {
    applyWeriftFixes(RTCSctpTransport);
    addBufferedAmountLowProperty();
    ready = true;
  }
  return { RTCPeerConnection: WeriftPeerConnection as unknown as RtcRuntime['RTCPeerConnection'], sendGate: weriftSendGate };
}
