import { describe, expect, it } from 'vitest';
import { Negotiator, type SignalPayload } from '../../peer/negotiation.js';
import { weriftRuntime } from '../../peer/runtime/werift.js';

/** Two real werift connections whose negotiators talk through async queues. */
function pair(): { a: RTCPeerConnection; b: RTCPeerConnection; na: Negotiator; nb: Negotiator; errors: Error[] } {
  const { RTCPeerConnection: PC } = weriftRuntime();
  const a = new PC();
  const b = new PC();
  const errors: Error[] = [];
  let na: Negotiator | null = null;
  let nb: Negotiator | null = null;
  // Deliver on a later tick, as a network would, so both sides can be mid-offer at once.
  const toB = (p: SignalPayload): void => void setImmediate(() => void nb?.receive(p));
  const toA = (p: SignalPayload): void => void setImmediate(() => void na?.receive(p));
  na = new Negotiator(a, { polite: true, send: toB, onError: (e) => errors.push(e) });
  nb = new Negotiator(b, { polite: false, send: toA, onError: (e) => errors.push(e) });
  return { a, b, na, nb, errors };
}

function stable(pc: RTCPeerConnection): Promise<void> {
  return new Promise((resolve) => {
    if (pc.signalingState === 'stable') return resolve();
    pc.onsignalingstatechange = () => {
      if (pc.signalingState === 'stable') resolve();
    };
  });
}

function opened(dc: RTCDataChannel): Promise<void> {
  return new Promise((resolve) => {
    if (dc.readyState === 'open') resolve();
    else dc.onopen = () => resolve();
  });
}

describe('perfect negotiation', () => {
  it('settles an offer collision: both sides offer at once and still connect', async () => {
    const { a, b, na, nb, errors } = pair();
    try {
      const localTypes: string[] = [];
      const setLocal = a.setLocalDescription.bind(a);
      a.setLocalDescription = (d?: RTCLocalSessionDescriptionInit) => {
        localTypes.push(d?.type ?? 'implicit');
        return setLocal(d);
      };
      const dcA = a.createDataChannel('from-a');
      const dcB = b.createDataChannel('from-b');
      await Promise.all([na.offer(), nb.offer()]);
      // The impolite side's offer wins; the polite side rolled back and answered. The polite
      // side's own channel rides on the next negotiation.
      await opened(dcB);
      await na.offer();
      await opened(dcA);
      await Promise.all([stable(a), stable(b)]);
      // The collision really happened: the polite side rolled its offer back.
      expect(localTypes.slice(0, 3)).toEqual(['offer', 'rollback', 'answer']);
      expect(errors).toEqual([]);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('queues candidates that arrive before the remote description', async () => {
    const { a, b, na, nb, errors } = pair();
    try {
      // Feed b a candidate before any description: it must wait, not fail.
      await nb.receive({ candidate: { candidate: 'candidate:1 1 udp 2130706431 127.0.0.1 9 typ host', sdpMid: '0', sdpMLineIndex: 0 } });
      expect(errors).toEqual([]);
      const dc = a.createDataChannel('x');
      await na.offer();
      await opened(dc);
      expect(errors).toEqual([]);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });
});
