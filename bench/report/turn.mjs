/**
 * The "## TURN relay" section of BENCHMARKS.md, from the results of bench/turn.mjs
 * (test-artifacts/bench/turn.json).
 */
import { fmt, fmtInt, pct } from '../lib/format.mjs';
import { headline } from '../lib/results.mjs';
import { median } from '../lib/stats.mjs';

export const HEADING = '## TURN relay';
export const SUMMARY = 'TURN relay';

const NAMES = {
  rallypoint: 'rallypoint (embedded)',
  'rallypoint-public': 'rallypoint, peer judged as public (deny list walked)',
  coturn: 'coturn 4.6.1',
};

/** The section and the summary rows, from a results file of bench/turn.mjs. */
export function render({ machine: m, config: CONFIG, seconds, results }) {
  const NCPU = m.cores;
  const L = [];
  const headlines = [];
  const rounds = Math.max(...results.map((r) => r.round)) + 1;
  L.push(HEADING, '');
  L.push('Command: `npm run bench:turn` (builds, then runs `node bench/turn.mjs`; the script rewrites this section).', '');
  L.push(`Machine: ${m.cpuModel}, ${m.cores} cores (\`nproc\`), Node ${m.node}, coturn ${m.coturn} (Debian \`/usr/bin/turnserver\`), ${m.os}. Run: ${m.date}, ${fmt(seconds, 0)} s.`, '');
  L.push(
    `Setup: each server in a fresh process per run, on 127.0.0.1: the embedded TURN (\`TurnServer\` from \`dist/turn\`, REST credentials via \`restCredentialLookup\`, peers \`allow: ['127.0.0.0/8']\`, default quotas) ` +
      'and coturn started with the config `rallypoint coturn-config --secret S --listening-ip 127.0.0.1 --listening-port P --relay-ip 127.0.0.1 --allow 127.0.0.0/8` prints ' +
      "(use-auth-secret, no-tls, no-dtls, no-cli, fingerprint; coturn's default thread count). " +
      `${CONFIG.workers} load processes (\`bench/lib/turn-load.mjs\`) open ${CONFIG.allocs} allocations each (${CONFIG.workers * CONFIG.allocs} in all, one REST credential and one UDP socket each, minted by \`mintTurnCredentials\`); ` +
      "each allocation binds a channel (ChannelBind) to one UDP echo peer (coturn's `turnutils_peer`, written in C, so the echo costs little) and sends ChannelData, as WebRTC stacks do; " +
      `the "Send indications" rows use CreatePermission + Send indications instead (Data indications come back). Datagrams carry ${200} bytes of application data (its send time inside). ` +
      `Placement: ${CONFIG.pinned ? 'the server process (all its threads) pinned to CPU 0, the load processes and the echo peer to the other CPU(s) (`taskset`)' : CONFIG.placement}. ` +
      `${rounds} rounds, interleaved (${CONFIG.servers.join(', ')}, ${CONFIG.servers.join(', ')}, ...), each method in its own runs. ` +
      '"peer judged as public": the embedded server without the allow list and with the default deny list minus 127.0.0.0/8, so the loopback echo peer goes through the same per-packet policy check as a public peer address does in production (the allow-list setup short-circuits it).',
    '',
  );
  L.push(
    'What is counted: a **round trip** is one datagram client -> TURN -> echo peer -> TURN -> client that came back; it is **2 relayed packets** ' +
      '(the server relayed one to the peer and one back to the client). "relayed packets/s" = 2 x round trips/s, at the clients. ' +
      'For the embedded server the server\'s own relay counters (packets to peers + to clients) agree (column "server count"). ' +
      `**window**: every allocation keeps ${CONFIG.window} datagrams in flight (closed loop, ${CONFIG.workers * CONFIG.allocs * CONFIG.window} in flight in all; a datagram not back within 1 s is counted lost and resent): ` +
      `saturation throughput; ${CONFIG.warmupMs / 1000} s warm-up, ${CONFIG.measureMs / 1000} s measured. ` +
      `**paced**: ${fmtInt(CONFIG.pacedRate)} round trips/s (${fmtInt(2 * CONFIG.pacedRate)} relayed packets/s) offered at a steady pace, ${CONFIG.pacedMs / 1000} s measured: latency below saturation. ` +
      '**server CPU**: user+system CPU time of the server process (all threads: `process.cpuUsage()` for the embedded one, `/proc/<pid>/stat` for coturn) over wall time (100 % = one core), and per relayed packet. ' +
      'Measured in 500 ms slices; slices during which processes other than ours used more than 0.25 cores are left out (a run that could not get enough quiet slices within twice its length counts them all and is marked *).',
    '',
  );
  for (const method of CONFIG.methods) {
    const rows = results.filter((r) => r.method === method);
    if (!rows.length) continue;
    L.push(`### ${method === 'channel' ? 'ChannelData' : 'Send indications'}`, '');
    L.push(
      '| server | relayed packets/s (window) | round trips/s | p50 / p99 ms (window) | server CPU | server CPU µs/packet | packets/s per server core | limited by | server count packets/s | load CPU cores | lost | rounds, packets/s | p50 / p99 ms paced |',
    );
    L.push('|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---|---:|');
    const med = {};
    for (const kind of CONFIG.servers) {
      const rs = rows.filter((r) => r.kind === kind);
      if (!rs.length) continue;
      const s = (f) => median(rs.map((r) => f(r.saturated)));
      const p = (f) => median(rs.map((r) => f(r.paced)));
      med[kind] = { pps: s((x) => x.packetsPerS), us: s((x) => x.cpuUsPerPacket), perCore: s((x) => x.packetsPerS / x.serverCpu), p50: p((x) => x.p50), p99: p((x) => x.p99) };
      const serverCpu = s((x) => x.serverCpu);
      const loadCpu = s((x) => x.loadCpu);
      const serverFull = serverCpu >= 0.95;
      const loadFull = loadCpu >= 0.95 * Math.max(1, NCPU - 1);
      const limit = serverFull && loadFull ? 'both CPUs full' : serverFull ? 'server (its CPU full)' : loadFull ? `load (its CPU full; server at ${pct(serverCpu)})` : 'neither (noise?)';
      L.push(
        `| ${NAMES[kind] ?? kind} | ${fmtInt(med[kind].pps)} | ${fmtInt(s((x) => x.roundTripsPerS))} | ${fmt(
          s((x) => x.p50),
          2,
        )} / ${fmt(
          s((x) => x.p99),
          2,
        )} | ` +
          `${pct(serverCpu)} | ${fmt(med[kind].us, 2)} | ${fmtInt(med[kind].perCore)} | ${limit} | ${kind.startsWith('rallypoint') ? fmtInt(s((x) => x.serverPacketsPerS)) : '-'} | ${fmt(loadCpu, 2)} | ` +
          `${rs.reduce((n, r) => n + r.saturated.lost + r.paced.lost, 0)} | ${rs.map((r) => `${fmtInt(r.saturated.packetsPerS)}${r.saturated.disturbed ? '*' : ''}`).join(', ')} | ` +
          `${fmt(med[kind].p50, 2)} / ${fmt(med[kind].p99, 2)} |`,
      );
    }
    L.push('');
    for (const ours of ['rallypoint', 'rallypoint-public']) {
      const a = med[ours];
      const b = med.coturn;
      if (!a || !b) continue;
      const pairs = [];
      for (let i = 0; i < rounds; i++) {
        const x = rows.find((r) => r.kind === ours && r.round === i);
        const y = rows.find((r) => r.kind === 'coturn' && r.round === i);
        if (x && y) pairs.push(x.saturated.packetsPerS / y.saturated.packetsPerS);
      }
      headlines.push(
        headline(
          SUMMARY,
          `${ours === 'rallypoint' ? 'embedded' : 'embedded, peer judged as public'} / coturn, relayed packets/s, ${method === 'channel' ? 'ChannelData' : 'Send indications'}`,
          `${pct(a.pps / b.pps)} (per server core ${pct(a.perCore / b.perCore)})`,
          '>= 50 %',
          a.pps / b.pps >= 0.5,
          m.date,
        ),
      );
      L.push(
        `- **${ours === 'rallypoint' ? 'embedded' : 'embedded, peer judged as public'} / coturn: ${pct(a.pps / b.pps)} of coturn's relayed packets/s** as measured (medians; target >= 50 %); per round: ${pairs.map(pct).join(', ')}. ` +
          `**Per server core** (packets/s ÷ server CPU; the fair figure when one side is not saturated): **${pct(a.perCore / b.perCore)}**. ` +
          `Server CPU per relayed packet: ${fmt(a.us, 2)} µs vs coturn ${fmt(b.us, 2)} µs (coturn ${fmt(a.us / b.us, 1)}x as efficient). ` +
          `Paced p50 / p99: ${fmt(a.p50, 2)} / ${fmt(a.p99, 2)} ms vs coturn ${fmt(b.p50, 2)} / ${fmt(b.p99, 2)} ms.`,
      );
    }
    L.push('');
  }
  const others = results.map((r) => r.saturated.foreignCores);
  L.push(
    `Other processes during the measured slices (median over runs, includes kernel network work not charged to any process): ${fmt(median(others), 2)} cores; left out ${fmt(
      results.reduce((n, r) => n + r.saturated.leftOutS + r.paced.leftOutS, 0),
      1,
    )} s in all.`,
    '',
  );
  return { section: L.join('\n'), headlines };
}
