/**
 * The tables of "## Loss: unreliable channel vs WebSocket fallback" in
 * BENCHMARKS.md, from the results of bench/loss.mjs (test-artifacts/bench/loss.json). The
 * section itself is written by hand around them (its reading of the figures), so the script
 * prints them and does not rewrite it.
 */
import { fmtMs } from '../lib/format.mjs';
import { quantile } from '../lib/stats.mjs';

export const HEADING = '## Loss: unreliable channel vs WebSocket fallback';
export const SUMMARY = 'Loss';
const fmt = (v) => fmtMs(v, '-');
/** Kernel TCP counters the WebSocket cells report (nstat names). */
export const TCP_COUNTERS = ['TcpRetransSegs', 'TcpExtTCPTimeouts', 'TcpExtTCPLossProbes', 'TcpExtTCPFastRetrans', 'TcpExtTCPSackRecovery', 'TcpExtTCPSpuriousRTOs'];

/** The tables, from a results file; no summary rows (the section's headlines are written by hand). */
export function render({ info, config, cells }) {
  return { section: markdown(summarize(cells, config), info, config), headlines: [] };
}

export function summarize(cells, { losses: LOSSES, paths: PATHS }) {
  const rows = [];
  for (const loss of LOSSES) {
    for (const path of PATHS) {
      const mine = cells.filter((c) => c.loss === loss && c.path === path && !c.error);
      const failed = cells.filter((c) => c.loss === loss && c.path === path && c.error).length;
      const lat = mine.flatMap((c) => c.latencies).sort((x, y) => x - y);
      const perRound = mine.map(
        (c) =>
          fmt(
            quantile(
              [...c.latencies].sort((x, y) => x - y),
              0.99,
            ),
          ) + (c.otherRealtime.length ? '*' : ''),
      );
      const seen = mine.reduce((s, c) => s + c.packets.seen, 0);
      const dropped = mine.reduce((s, c) => s + c.packets.dropped, 0);
      rows.push({
        loss,
        path,
        sent: mine.reduce((s, c) => s + c.sent, 0),
        delivered: mine.reduce((s, c) => s + c.delivered, 0),
        duplicates: mine.reduce((s, c) => s + c.duplicates, 0),
        droppedBySender: mine.reduce((s, c) => s + c.droppedBySender, 0),
        p50: quantile(lat, 0.5),
        p99: quantile(lat, 0.99),
        max: lat.at(-1) ?? NaN,
        over20: lat.filter((l) => l > 20).length,
        over100: lat.filter((l) => l > 100).length,
        tcp: Object.fromEntries(TCP_COUNTERS.map((k) => [k, mine.reduce((sum, c) => sum + (c.tcp?.[k] ?? 0), 0)])),
        perRound,
        packetLoss: seen ? dropped / seen : NaN,
        cpuWait: mine.map((c) => c.cpuWait),
        failed,
        pathChanged: mine.filter((c) => c.pathChanged).length,
        pathChanges: mine.reduce((s, c) => s + c.pathChanges, 0),
        rebuilds: mine.reduce((s, c) => s + c.rebuilds, 0),
      });
    }
  }
  return rows;
}

const PATH_NAME = { direct: 'direct (host candidates, one switch)', turn: 'TURN (embedded, relay only)', websocket: 'WebSocket relay (UDP blocked)' };

function markdown(rows, info, { rounds: ROUNDS, seconds: SECONDS, hz: HZ, size: SIZE, losses: LOSSES, paths: PATHS }) {
  const lines = [];
  lines.push(
    `Machine: ${info.cpu}, ${info.nproc} cores, Node ${info.node}, werift ${info.werift}, Linux ${info.kernel}. Code: ${info.revision} (built, then copied: every process of the run uses that copy). Run: ${info.started}, ${info.durationS} s. Load average at start: ${info.load}. ${info.rt ? 'Peers and server under `chrt -f 20`.' : 'No SCHED_FIFO (chrt unavailable).'}`,
  );
  lines.push('');
  lines.push(`${ROUNDS} round(s) x ${SECONDS} s per cell, ${HZ} Hz x ${SIZE} B, one-way ms (CLOCK_MONOTONIC, shared by both processes).`);
  lines.push('');
  lines.push('| loss each way | path | delivered / sent | p50 ms | p99 ms | max ms | late > 20 ms / > 100 ms | p99 per round | packets dropped (measured) | CPU wait | path changes / rebuilds |');
  lines.push('|---:|---|---:|---:|---:|---:|---:|---|---:|---|---:|');
  for (const r of rows) {
    lines.push(
      `| ${r.loss} % | ${PATH_NAME[r.path] ?? r.path} | ${r.delivered}/${r.sent}${r.duplicates ? ` (+${r.duplicates} dup)` : ''}${r.failed ? `, ${r.failed} cell(s) failed` : ''} | ${fmt(r.p50)} | ${fmt(r.p99)} | ${fmt(r.max)} | ${r.over20} / ${r.over100} | ${r.perRound.join(', ')} | ${(r.packetLoss * 100).toFixed(1)} % | ${r.cpuWait.map((w) => `${Math.round(w * 100)} %`).join(', ')} | ${r.pathChanges} / ${r.rebuilds} |`,
    );
  }
  lines.push('');
  lines.push('\\* another process running SCHED_FIFO/RR (not ours) was seen at the start or end of the cell (the script waits up to 120 s for them to end first).');
  lines.push('');
  lines.push('TCP in the measured windows of the WebSocket cells (kernel counters of the three namespaces, summed over rounds):');
  lines.push('');
  lines.push('| loss each way | retransmitted segments | retransmission timeouts (RTO) | tail loss probes | fast retransmits | SACK recoveries | spurious RTOs |');
  lines.push('|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows.filter((x) => x.path === 'websocket')) {
    const t = r.tcp;
    lines.push(`| ${r.loss} % | ${t.TcpRetransSegs} | ${t.TcpExtTCPTimeouts} | ${t.TcpExtTCPLossProbes} | ${t.TcpExtTCPFastRetrans} | ${t.TcpExtTCPSackRecovery} | ${t.TcpExtTCPSpuriousRTOs} |`);
  }
  lines.push('');
  const get = (loss, path) => rows.find((r) => r.loss === loss && r.path === path);
  const top = Math.max(...LOSSES);
  const low = Math.min(...LOSSES);
  const d = get(top, 'direct');
  for (const path of PATHS) {
    const r = get(top, path);
    const z = get(low, path);
    if (!r || !z) continue;
    const vsDirect = d && path !== 'direct' ? `; **${path} p99 / direct p99 at ${top} %: ${(r.p99 / d.p99).toFixed(1)}x** (${fmt(r.p99)} / ${fmt(d.p99)} ms)` : '';
    lines.push(`- ${path}: p99 at ${top} % / at ${low} %: ${(r.p99 / z.p99).toFixed(1)}x (${fmt(r.p99)} / ${fmt(z.p99)} ms)${vsDirect}.`);
  }
  return lines.join('\n');
}
