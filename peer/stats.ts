/**
 * Where a peer's messages go: straight between the peers, through a TURN relay, or (after
 * ICE failed) through the signaling service's WebSocket fallback.
 */
export type PeerPath = 'direct' | 'relay' | 'websocket';

export interface CandidateInfo {
  type: string | undefined;
  address: string | undefined;
  port: number | undefined;
  protocol: string | undefined;
}

export interface PeerStats {
  /** Current round-trip time of the selected candidate pair, ms (undefined if unknown). */
  rttMs: number | undefined;
  /** Bytes sent and received on this connection, over every candidate pair it used. */
  bytesSent: number;
  bytesReceived: number;
  /** Messages known lost: gaps in the sequence numbers of `latest`-mode channels. */
  packetsLost: number;
  /** Messages dropped by the sender because an unreliable channel was congested. */
  messagesDropped: number;
  selectedPair: { local: CandidateInfo; remote: CandidateInfo } | null;
  path: PeerPath | null;
}

type StatsEntry = Record<string, unknown> & { type: string; id: string };

function candidate(entry: StatsEntry | undefined): CandidateInfo {
  const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
  return {
    type: str(entry?.candidateType),
    address: str(entry?.address) ?? str(entry?.ip),
    port: typeof entry?.port === 'number' ? entry.port : undefined,
    protocol: str(entry?.protocol),
  };
}

/**
 * Reads the selected candidate pair from a W3C RTCStatsReport: the transport's
 * `selectedCandidatePairId` (webrtc-stats §7.x), else a nominated succeeded pair (werift
 * and older stacks do not fill the transport entry).
 */
export function readTransportStats(report: RTCStatsReport): Omit<PeerStats, 'packetsLost' | 'messagesDropped'> {
  const entries = new Map<string, StatsEntry>();
  report.forEach((value: StatsEntry) => {
    entries.set(value.id, value);
  });
  let pair: StatsEntry | undefined;
  for (const e of entries.values()) {
    if (e.type === 'transport' && typeof e.selectedCandidatePairId === 'string') pair = entries.get(e.selectedCandidatePairId);
  }
  if (!pair) {
    for (const e of entries.values()) {
      if (e.type === 'candidate-pair' && e.state === 'succeeded' && (e.nominated === true || e.selected === true)) pair = e;
    }
  }
  // Bytes of the whole connection: the sum over every candidate pair. The selected pair can
  // change (Chromium moves from one host pair to another after connecting) and each pair
  // counts only its own traffic, so the selected pair alone may show 0 after real traffic.
  let bytesSent = 0;
  let bytesReceived = 0;
  for (const e of entries.values()) {
    if (e.type !== 'candidate-pair') continue;
    if (typeof e.bytesSent === 'number') bytesSent += e.bytesSent;
    if (typeof e.bytesReceived === 'number') bytesReceived += e.bytesReceived;
  }
  if (!pair) return { rttMs: undefined, bytesSent, bytesReceived, selectedPair: null, path: null };
  const local = candidate(entries.get(pair.localCandidateId as string));
  const remote = candidate(entries.get(pair.remoteCandidateId as string));
  const rtt = typeof pair.currentRoundTripTime === 'number' ? pair.currentRoundTripTime * 1000 : undefined;
  return {
    rttMs: rtt,
    bytesSent,
    bytesReceived,
    selectedPair: { local, remote },
    path: local.type === 'relay' || remote.type === 'relay' ? 'relay' : 'direct',
  };
}
