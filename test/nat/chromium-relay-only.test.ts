/**
 * NAT lab scenario 5: relay-only policy with Chromium. Chromium runs in one host
 * namespace behind a cone NAT with `rtcConfig: { iceTransportPolicy: 'relay' }`; a Node
 * (werift) peer with the default policy runs behind another cone NAT. Scenario 2 shows those
 * NATs let a direct pair through: here the policy alone must put the connection on the
 * embedded TURN relay, on both sides, and data must flow both ways.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { chromiumMissing } from '../helpers/browser.js';
import {
  describePair,
  type Host,
  ICE_TIMEOUT_MS,
  type LineProcess,
  launchChromiumIn,
  type NatTopology,
  openLibPage,
  type PeerStatsView,
  type Serve,
  startNodePeer,
  startServeWithTurn,
  twoSites,
  within,
} from '../helpers/nat-lab.js';
import { describeNetns, isCI, useNetLab } from '../helpers/netns.js';
import type { PageStats } from '../helpers/pages.js';

const lab = useNetLab();
const missing = chromiumMissing();
if (missing && !isCI()) console.warn(`[nat] skipping the Chromium scenario: ${missing}`);

describeNetns('NAT lab: Chromium with iceTransportPolicy relay, Node peer', () => {
  let net: NatTopology;
  let chromeHost: Host;
  let nodeHost: Host;
  let serve: Serve;
  let browser: Browser | undefined;
  let node: { proc: LineProcess; id: string } | undefined;

  beforeAll(async () => {
    if (missing && !isCI()) return;
    ({ net, hostA: chromeHost, hostB: nodeHost } = await twoSites(lab(), ['cone', 'cone'], ['chrome', 'node']));
    serve = await startServeWithTurn(net);
    browser = await launchChromiumIn(chromeHost.ns);
  }, 40_000);

  afterAll(async () => {
    if (node) await node.proc.request({ cmd: 'leave' }, 'left');
    await browser?.close();
  });

  it.skipIf(missing !== null && !isCI())(
    'connects through the relay only and carries messages both ways',
    async () => {
      const { page, log } = await openLibPage(browser!, serve.httpUrl, serve.wsUrl);
      // What each side said, for a failure message.
      const diagnosis = (what: string) => async () =>
        `${what}\n--- page console:\n${log.console.join('\n')}\n--- page errors:\n${log.errors.join('\n')}\n--- node peer stderr:\n${node?.proc.stderr ?? ''}\n--- serve stderr:\n${serve.proc.stderr}`;
      const chromeId = await page.evaluate(() => {
        // The page's RTCPeerConnections, for the candidates getStats() lists (see localCandidateTypes).
        const pcs: RTCPeerConnection[] = [];
        (window as unknown as { natLabPcs: RTCPeerConnection[] }).natLabPcs = pcs;
        class Tracked extends RTCPeerConnection {
          constructor(config?: RTCConfiguration) {
            super(config);
            pcs.push(this);
          }
        }
        // fallback: false: this tests the ICE path; the WebSocket fallback has tests of its own.
        const options = { room: 'relay-only', rtcConfig: { iceTransportPolicy: 'relay' }, rtc: { RTCPeerConnection: Tracked }, fallback: false };
        return window.lib.join(options as Parameters<typeof window.lib.join>[0]);
      });
      node = await startNodePeer(nodeHost.ns, { url: serve.wsUrl, room: 'relay-only' });
      const nodeId = node.id;
      await within(
        Promise.all([node.proc.next('connected', (m: { peer: string }) => m.peer === chromeId), page.waitForFunction((id) => window.lib.connectedIds().includes(id), nodeId)]),
        ICE_TIMEOUT_MS,
        diagnosis(`not connected after ${ICE_TIMEOUT_MS} ms`),
      );

      // Both ways on `reliable`.
      const atNode = node.proc.next<{ from: string; channel: string; data: string }>('message', (m) => m.from === chromeId && m.channel === 'reliable');
      await page.evaluate((to) => window.lib.send(to, 'reliable', 'from chromium'), nodeId);
      expect((await within(atNode, 10_000, diagnosis('the Node peer got no message'))).data).toBe('from chromium');
      await node.proc.request({ cmd: 'send', to: chromeId, channel: 'reliable', data: 'from node' }, 'sent');
      await page.waitForFunction(([from]) => window.lib.messages.some((m) => m.from === from && m.channel === 'reliable' && m.data === 'from node'), [nodeId] as const, { timeout: 10_000 });

      const chromeStats: PageStats = await page.evaluate((to) => window.lib.stats(to), nodeId);
      const nodeStats = await node.proc.request<PeerStatsView>({ cmd: 'stats', to: chromeId }, 'stats');
      const chromeLocalTypes = await localCandidateTypes(page);
      console.log(`[chromium] ${describePair(chromeStats.selectedPair)}; local candidates ${chromeLocalTypes.join(',')}\n[node] ${describePair(nodeStats.selectedPair)}`);

      // Chromium gathered relay candidates only, so its end of every pair is on the TURN server.
      expect(chromeLocalTypes.length).toBeGreaterThan(0);
      expect(new Set(chromeLocalTypes)).toEqual(new Set(['relay']));
      expect(chromeStats.path, describePair(chromeStats.selectedPair)).toBe('relay');
      expect(chromeStats.selectedPair?.local).toMatchObject({ type: 'relay', address: serve.turn?.relay });
      expect(nodeStats.path, describePair(nodeStats.selectedPair)).toBe('relay');
      expect(nodeStats.selectedPair?.remote).toMatchObject({ type: 'relay', address: serve.turn?.relay });
      expect(log.errors).toEqual([]);
      expect(await page.evaluate(() => window.lib.errors)).toEqual([]);
    },
    60_000,
  );
});

/** Types of the local candidates of the page's (last) RTCPeerConnection, from getStats(). */
function localCandidateTypes(page: Page): Promise<string[]> {
  return page.evaluate(async () => {
    const pc = (window as unknown as { natLabPcs: RTCPeerConnection[] }).natLabPcs.at(-1);
    const types: string[] = [];
    (await pc!.getStats()).forEach((e: { type: string; candidateType?: string }) => {
      if (e.type === 'local-candidate' && e.candidateType) types.push(e.candidateType);
    });
    return types;
  });
}
