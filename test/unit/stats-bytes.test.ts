import { describe, expect, it } from 'vitest';
import { readTransportStats } from '../../peer/stats.js';

const report = (entries: Record<string, unknown>[]): RTCStatsReport => new Map(entries.map((e) => [e.id as string, e])) as unknown as RTCStatsReport;

describe('stats: bytes of the whole connection', () => {
  it('adds up every candidate pair: a newly selected pair alone would show 0 after real traffic', () => {
    // As Chromium reports it right after switching pairs: the traffic so far went over A.
    const s = readTransportStats(
      report([
        { id: 'T', type: 'transport', selectedCandidatePairId: 'B', bytesSent: 0, bytesReceived: 0 },
        { id: 'A', type: 'candidate-pair', state: 'succeeded', nominated: false, localCandidateId: 'L1', remoteCandidateId: 'R1', bytesSent: 2315, bytesReceived: 2103 },
        { id: 'B', type: 'candidate-pair', state: 'succeeded', nominated: true, localCandidateId: 'L2', remoteCandidateId: 'R2', bytesSent: 0, bytesReceived: 0, currentRoundTripTime: 0.001 },
        { id: 'C', type: 'candidate-pair', state: 'waiting', localCandidateId: 'L1', remoteCandidateId: 'R2' },
        { id: 'L1', type: 'local-candidate', candidateType: 'host' },
        { id: 'L2', type: 'local-candidate', candidateType: 'host' },
        { id: 'R1', type: 'remote-candidate', candidateType: 'host' },
        { id: 'R2', type: 'remote-candidate', candidateType: 'prflx' },
      ]),
    );
    expect(s).toMatchObject({ bytesSent: 2315, bytesReceived: 2103, rttMs: 1, path: 'direct' });
    expect(s.selectedPair?.remote.type).toBe('prflx');
  });

  it('keeps the bytes when no pair is selected any more', () => {
    const s = readTransportStats(report([{ id: 'A', type: 'candidate-pair', state: 'failed', bytesSent: 7, bytesReceived: 9 }]));
    expect(s).toMatchObject({ bytesSent: 7, bytesReceived: 9, selectedPair: null, path: null });
  });
});
