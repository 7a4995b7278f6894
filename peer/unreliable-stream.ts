/**
 * The unreliable stream of a partially reliable channel: messages are written or dropped at
 * once, never queued, because a late game-state message is worth less than none. With
 * `latest`, messages are numbered and the receiver drops any older than the newest
 * (peer/latest.ts); on the WebSocket fallback the newest message per channel replaces an unsent
 * older one.
 */

import { encoder } from './bytes.js';
import { Channel } from './channel.js';
import type { RelayFrameIn, RelayFrameOut } from './fallback-link.js';
import { decodeFrame, fallbackPayload, plainTextFits, withKind } from './framing.js';
import { encodeLatest, LatestFilter } from './latest.js';

export class UnreliableChannel extends Channel {
  #seq = 0;
  readonly #filter = new LatestFilter();

  override get lost(): number {
    return this.#filter.lost;
  }

  protected push(payload: string | Uint8Array): Promise<void> {
    if (this.hooks.route() === 'websocket') {
      const link = this.hooks.fallback();
      const frame = link ? this.#fallbackFrame(payload, link.fragmentBytes) : null;
      if (link && frame) link.sendLatest(this.config.name, frame);
      else this.dropped++;
    } else {
      const dc = this.dc;
      const wire = this.config.latest ? encodeLatest(this.#seq++, payload) : payload;
      if (dc && dc.readyState === 'open' && dc.bufferedAmount <= this.flow.dropAbove && !this.gated()) this.write(dc, wire);
      else this.dropped++;
    }
    return Promise.resolve();
  }

  /** A relay frame for an unreliable message; null if too big for one. */
  #fallbackFrame(payload: string | Uint8Array, fragmentBytes: number): RelayFrameOut | null {
    const frame: RelayFrameOut = { unreliable: true };
    if (this.config.latest) frame.seq = this.#seq++ >>> 0;
    if (typeof payload === 'string' && plainTextFits(payload, fragmentBytes)) frame.data = payload;
    else {
      const bytes = typeof payload === 'string' ? encoder.encode(payload) : payload;
      if (bytes.byteLength > fragmentBytes) return null;
      frame.data = withKind(typeof payload === 'string', bytes);
    }
    return frame;
  }

  protected take(data: string | Uint8Array): void {
    if (!this.config.latest) return this.deliver(data);
    // Framed [flags][seq][payload] (peer/framing.ts), never fragments or acks.
    const frame = typeof data === 'string' ? null : decodeFrame(data);
    if (!frame || 'ack' in frame || frame.fragment.more) return this.malformed('frame');
    const f = frame.fragment;
    if (this.#filter.accept(f.seq)) this.deliver(f.bytes, f.text);
  }

  receiveRelay(frame: RelayFrameIn): void {
    if (this.closed) return;
    const body = fallbackPayload(frame.data);
    // A latest-mode frame needs its number.
    if (!body || (this.config.latest && frame.seq === undefined)) return this.malformed('relay frame');
    if (this.config.latest && !this.#filter.accept(frame.seq as number)) return;
    this.deliver(body.bytes, body.text);
  }
}
