import { RTCDataChannel, RTCPeerConnection, RTCSctpTransport } from 'werift';
import type { RtcRuntime } from './types.js';
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

let ready = false;

/** werift (pure TypeScript WebRTC), with rallypoint's fixes applied: the Node default. */
export function weriftRuntime(): RtcRuntime {
  if (!ready) {
    applyWeriftFixes(RTCSctpTransport);
    addBufferedAmountLowProperty();
    ready = true;
  }
  return { RTCPeerConnection: RTCPeerConnection as unknown as RtcRuntime['RTCPeerConnection'] };
}
