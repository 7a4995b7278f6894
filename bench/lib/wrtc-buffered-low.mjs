/**
 * @roamhq/wrtc 0.10 never fires `bufferedamountlow` (its RTCDataChannel has no
 * `bufferedAmountLowThreshold` and no such event), so a rallypoint reliable send that waits
 * above the high watermark never resolves: bulk transfers with `rtc: wrtc` stall for good.
 * This runtime wraps wrtc with the missing event, by polling `bufferedAmount` only while it
 * is above the threshold (W3C WebRTC §6.2: fire when it falls from above the threshold to at
 * or below it). The benchmark measures wrtc's throughput through it, and states so; it is a
 * sketch of the fix proposed for peer/ (a runtime adapter for wrtc), not part of the library.
 */
const POLL_MS = 1;

function addBufferedAmountLow(dc) {
  if (dc.__rallypointBench) return dc;
  dc.__rallypointBench = true;
  let timer = null;
  const check = () => {
    const state = dc.readyState;
    if (state === 'closing' || state === 'closed') {
      clearInterval(timer);
      timer = null;
      return;
    }
    if (dc.bufferedAmount <= (dc.bufferedAmountLowThreshold ?? 0)) {
      clearInterval(timer);
      timer = null;
      dc.dispatchEvent({ type: 'bufferedamountlow', target: dc });
    }
  };
  const send = dc.send;
  dc.send = function (data) {
    send.call(this, data);
    if (timer === null && dc.bufferedAmount > (dc.bufferedAmountLowThreshold ?? 0)) timer = setInterval(check, POLL_MS);
  };
  return dc;
}

export function wrtcWithBufferedAmountLow(wrtc) {
  class RTCPeerConnection extends wrtc.RTCPeerConnection {
    constructor(config) {
      super(config);
      // Runs before the `ondatachannel` handler (wrtc calls listeners, then on<event>).
      this.addEventListener('datachannel', (ev) => addBufferedAmountLow(ev.channel));
    }

    createDataChannel(...args) {
      return addBufferedAmountLow(super.createDataChannel(...args));
    }
  }
  return { ...wrtc, RTCPeerConnection };
}
