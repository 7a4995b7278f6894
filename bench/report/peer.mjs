/**
 * The "## Peer library" section of BENCHMARKS.md, from the results of
 * bench/peer.mjs (test-artifacts/bench/peer.json).
 */
import { fmt, fmtMs, pct } from '../lib/format.mjs';
import { headline } from '../lib/results.mjs';
import { summary } from '../lib/stats.mjs';

export const HEADING = '## Peer library';
export const SUMMARY = 'Peer library';

/** Medians here are nearest-rank p50s, as the section has always reported them. */
const median = (xs) => summary(xs).p50;

export const PAIRS = [
  { key: 'werift', name: 'Node <-> Node, werift', a: 'werift', b: 'werift', sharedClock: true },
  { key: 'wrtc', name: 'Node <-> Node, @roamhq/wrtc', a: 'wrtc', b: 'wrtc', sharedClock: true },
  { key: 'werift-chromium', name: 'Node (werift) <-> Chromium', a: 'chromium', b: 'werift', sharedClock: false, bothWays: true },
  { key: 'wrtc-chromium', name: 'Node (@roamhq/wrtc) <-> Chromium', a: 'chromium', b: 'wrtc', sharedClock: false, bothWays: true },
  { key: 'chromium', name: 'Chromium <-> Chromium', a: 'chromium', b: 'chromium', sharedClock: false },
  // Latency only: the machine's own floor (two Node processes, plain UDP, no WebRTC).
  { key: 'udp', name: 'baseline: Node <-> Node, plain UDP (no WebRTC)', a: 'udp', b: 'udp', sharedClock: true, baseline: true },
];

const label = (kind) => ({ werift: 'Node (werift)', wrtc: 'Node (wrtc)', chromium: 'Chromium', udp: 'Node (UDP)' })[kind];

/**
 * The section and the summary rows, from a results file of bench/peer.mjs: the raw
 * connection runs and steady-state rounds are analysed here, so a change to the analysis
 * re-renders without measuring again.
 */
export function render({ machine: m, config, pairs: keys, connect, rounds, seconds, notes: early, pageErrors, check }) {
  const pairs = PAIRS.filter((p) => keys.includes(p.key));
  const res = analyse(pairs, connect, rounds);
  const notes = [...early];
  for (const r of Object.values(res)) {
    if (r.connect.failures.length) notes.push(`${r.pair.name}: ${r.connect.failures.length} connection run(s) failed: ${[...new Set(r.connect.failures)].join('; ')}`);
    if (r.errors.length) notes.push(`${r.pair.name}: ${[...new Set(r.errors)].join('; ')}`);
    if (r.paths.length) notes.push(`${r.pair.name}: selected candidate pair (joining side's view, when connected) ${r.paths.join('; ')}.`);
    if (r.state.late) notes.push(`${r.pair.name}: the sender's 60 Hz timer fired more than a period late ${r.state.late} time(s) (the process did not get a CPU in time).`);
  }
  notes.push(...pageErrors);
  if (check) notes.push(check);
  const headlines = [];
  return { section: buildReport(res, m, { seconds, notes }, config, headlines), headlines };
}

function analyse(pairs, connect, rounds) {
  const res = {};
  for (const p of pairs) {
    const runs = connect.filter((r) => r.pair === p.key && !r.warmup);
    const ok = runs.filter((r) => !r.error);
    const rs = rounds.filter((r) => r.pair === p.key);
    const states = rs.filter((r) => r.state).map((r) => r.state);
    const all = (f) => states.flatMap(f);
    const bulkDirs = {};
    for (const r of rs) {
      for (const b of r.bulk ?? []) {
        const k = `${b.from}->${b.to}`;
        bulkDirs[k] ??= { from: b.from, to: b.to, runs: [] };
        bulkDirs[k].runs.push(b);
      }
    }
    res[p.key] = {
      pair: p,
      connect: {
        total: summary(ok.map((r) => r.totalMs)),
        self: summary(ok.map((r) => r.selfMs)),
        notice: summary(ok.map((r) => r.noticeMs)),
        signaling: summary(ok.map((r) => r.signalingMs)),
        failures: runs.filter((r) => r.error).map((r) => r.error),
        runs: runs.length,
      },
      state: {
        rounds: states.length,
        sent: states.reduce((a, s) => a + s.sent, 0),
        echoed: p.baseline ? null : states.reduce((a, s) => a + s.echoed, 0),
        pongs: states.reduce((a, s) => a + s.pongs, 0),
        late: states.reduce((a, s) => a + s.late, 0),
        oneWay: summary(all((s) => s.oneWay)),
        /** p99 of each round alone (one-way where the clock is shared, else RTT/2). */
        roundP99: states.map((s) => summary(p.sharedClock ? s.oneWay : s.rtt.map((x) => x / 2)).p99),
        ...attribution(states, p.sharedClock),
        back: summary(all((s) => s.backWay)),
        halfRtt: summary(all((s) => s.rtt.map((x) => x / 2))),
        rtt: summary(all((s) => s.rtt)),
        others: median(states.map((s) => s.cpu.others)),
        ours: median(states.map((s) => s.cpu.ours)),
        pressure: median(states.map((s) => s.cpu.pressure)),
      },
      bulk: Object.values(bulkDirs).map((d) => ({
        from: d.from,
        to: d.to,
        mbps: median(d.runs.map((b) => b.mbps)),
        all: d.runs.map((b) => b.mbps),
        cold: median(d.runs.map((b) => b.coldMbps)),
        coldAll: d.runs.map((b) => b.coldMbps),
        ok: d.runs.every((b) => b.ok && b.coldOk),
        bad: d.runs.flatMap((b) => [
          ...(b.ok ? [] : [`${b.got.count}/${b.sent.count} msgs, ${b.got.orderErrors} out of order, ${b.got.sizeErrors} bad size${b.sent.stalled ? ', a send waited > 10 s' : ''}`]),
          ...(b.coldOk
            ? []
            : [
                `first transfer: ${b.coldGot.count}/${b.coldSent.count} msgs within 20 s, ${b.coldGot.orderErrors} out of order, ${b.coldGot.sizeErrors} bad size${b.coldSent.stalled ? ', a send waited > 10 s' : ''}`,
              ]),
        ]),
        ours: median(d.runs.map((b) => b.cpu.ours)),
        others: median(d.runs.map((b) => b.cpu.others)),
        pressure: median(d.runs.map((b) => b.cpu.pressure)),
      })),
      paths: [
        ...new Set(
          rs
            .filter((r) => r.path)
            .map((r) => `${r.path.path || '?'}, ${r.path.local?.type || '?'} ${r.path.local?.address || '(no address)'} -> ${r.path.remote?.type || '?'} ${r.path.remote?.address || '(no address)'}`),
        ),
      ],
      errors: [...rs.filter((r) => r.error).map((r) => r.error), ...rs.flatMap((r) => r.peerErrors ?? [])],
    };
  }
  return res;
}

/** Samples over 5 ms, how many overlapped a machine stall, and the p99 of the others. */
function attribution(states, sharedClock) {
  const marked = states.filter((s) => s.inStall);
  const values = marked.flatMap((s) => (sharedClock ? s.oneWay : s.rtt.map((x) => x / 2)));
  const flags = marked.flatMap((s) => s.inStall);
  const over = values.map((v, i) => [v, flags[i]]).filter(([v]) => v > 5);
  return {
    marked: marked.length === states.length && states.length > 0,
    over5: over.length,
    over5InStall: over.filter(([, f]) => f).length,
    samplesInStall: flags.filter(Boolean).length,
    outside: summary(values.filter((_, i) => !flags[i])),
    stallCount: marked.reduce((a, s) => a + s.stalls.count, 0),
    stallMs: marked.reduce((a, s) => a + s.stalls.ms, 0),
    stallLongest: Math.max(0, ...marked.map((s) => s.stalls.longest)),
  };
}

/** The latency figure used for the target: one-way on a shared clock, else RTT/2. */
const latencyOf = (r) => (r.pair.sharedClock ? r.state.oneWay : r.state.halfRtt);
const pctOf = pct;

function buildReport(res, m, meta, CONFIG, headlines) {
  const L = [];
  const rows = Object.values(res);
  const rtcRows = rows.filter((r) => !r.pair.baseline);
  L.push(HEADING, '');
  L.push('Command: `npm run bench:peer` (builds, then runs `node bench/peer.mjs`; the script rewrites this section).', '');
  L.push(
    `Machine: ${m.cpuModel}, ${m.cores} cores, ${fmt(m.ramGiB, 0)} GiB RAM, Node ${m.node}, ${m.chromium} (Debian, headless), werift ${m.werift}, @roamhq/wrtc ${m.wrtc}, ${m.os}. Run: ${m.date}, ${fmt(meta.seconds, 0)} s.`,
    '',
  );
  L.push(
    `Load: other jobs shared the machine during the run (load average ${m.loadavg.map((x) => fmt(x, 1)).join(' / ')} at the start). Each table gives, per phase (median), the cores our processes used, the cores everything else used, and "CPU wait": the share of the time during which some runnable task waited for a CPU (Linux PSI \`/proc/pressure/cpu\`, "some"). ` +
      'Latency tails follow that load (with two busy loops of other jobs on both cores, every pair here, the plain-UDP baseline included, has had a p99 of tens of ms): the baseline row shows what the machine alone adds in the same run.',
    '',
  );
  L.push(
    "Setup: one machine. The signaling service (`listenSignaling`) runs in the benchmark process on 127.0.0.1; the peers connect directly through their host candidates, i.e. this machine's own addresses (see the notes; WebRTC stacks do not offer loopback candidates), so no packet leaves the machine. Every peer is a process of its own: a Node child running the built `rallypoint/node` " +
      '(`joinRoom`; werift by default, or `rtc: wrtc`), or a Chromium page (its own browser context, so its own renderer) running the browser bundle `dist/web/rallypoint.min.js`; ' +
      'both run the same agent code (`bench/lib/peer-agent.mjs`) with the default channels (`reliable`: ordered; `unreliable`: unordered, maxRetransmits 0) and default flow limits. ' +
      'Chromium runs with IP host candidates (no mDNS names, as in the browser tests). Runs are interleaved across pairs (run 1 of every pair, then run 2, ...). ' +
      '"Node (wrtc)" is `rtc: wrtc` exactly as documented (`import wrtc from \'@roamhq/wrtc\'`, nothing added).',
    '',
  );

  // 1. connection setup
  L.push(`### Connection setup (${CONFIG.connectRuns} runs per pair, after ${CONFIG.connectWarmup} warm-up runs)`, '');
  L.push(
    'From the call of `joinRoom` by the second peer (the one that offers) to both sides having emitted `peer-connected` (every channel open), in ms. Timed on the joining peer\'s clock: its own `peer-connected`, and a notice the other side sends on its `peer-connected` (so the figure includes one extra one-way trip, about 1 ms here). "signaling" is the part until `joinRoom` resolved (WebSocket + welcome).',
    '',
  );
  L.push('| pair (first <-> joining) | p50 | p90 | min | max | signaling p50 | failed |', '|---|---:|---:|---:|---:|---:|---:|');
  for (const r of rtcRows) {
    const c = r.connect;
    L.push(
      `| ${label(r.pair.a)} <-> ${label(r.pair.b)} | ${fmtMs(c.total.p50)} | ${fmtMs(c.total.p90)} | ${fmtMs(c.total.min)} | ${fmtMs(c.total.max)} | ${fmtMs(c.signaling.p50)} | ${c.failures.length}/${c.runs} |`,
    );
  }
  L.push('');

  // 2. latency
  const n = rows.find((r) => r.state.rounds)?.state.rounds ?? 0;
  L.push(`### Game-state latency (${CONFIG.stateHz} Hz x ${CONFIG.stateBytes} B on \`unreliable\`, ${n} x ${CONFIG.stateSeconds} s per pair)`, '');
  L.push(
    'The joining peer sends; each message carries its sequence number and send time; the other side echoes it at once (so both directions carry 60 Hz state). ' +
      '**one-way**: receive time minus send time, both read from CLOCK_MONOTONIC (`process.hrtime`), which every process on the machine shares: exact for Node <-> Node. ' +
      "A Chromium page has no clock shared with another process, so for every pair **RTT/2** is given too (round trip on the sender's clock, halved; it includes the echoing side's turnaround). ms. " +
      '"delivered": messages that arrived there / echoes that arrived back. "p99 per round": the p99 of each round alone (one-way where the clock is shared, else RTT/2); other jobs\' load differs from round to round, and the pooled p99 is set by the worst round.',
    '',
  );
  L.push('| pair | delivered | one-way p50 | one-way p99 | one-way max | RTT/2 p50 | RTT/2 p99 | RTT/2 max | p99 per round |', '|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) {
    const s = r.state;
    const ow = r.pair.sharedClock;
    const delivered = s.echoed === null ? `${s.pongs}/${s.sent} (round trips)` : `${s.echoed}/${s.sent}, ${s.pongs}/${s.echoed}`;
    L.push(
      `| ${r.pair.name} | ${delivered} | ${ow ? fmtMs(s.oneWay.p50) : '-'} | ${ow ? fmtMs(s.oneWay.p99) : '-'} | ${ow ? fmtMs(s.oneWay.max) : '-'} | ${fmtMs(s.halfRtt.p50)} | ${fmtMs(s.halfRtt.p99)} | ${fmtMs(s.halfRtt.max)} | ${s.roundP99.map(fmtMs).join(', ')} |`,
    );
  }
  L.push('');
  L.push(
    'Where the tail comes from. A canary process (`bench/lib/canary.mjs`, a bare 1 ms timer) runs through the whole benchmark and records every moment it did not get a CPU for more than 3 ms ("machine stall": other jobs, the VM, reclaim). ' +
      "A sample that overlaps such a stall (from its send to its arrival; for RTT/2 pairs to the echo's return, with the page clock mapped onto CLOCK_MONOTONIC to within about 1 ms) was delayed, at least partly, by the machine. " +
      '"p99 outside machine stalls" is the p99 of the other samples: the figure the code under test answers for. Latency figure as above (one-way where the clock is shared, else RTT/2).',
    '',
  );
  L.push(
    '| pair | samples > 5 ms | of which during a machine stall | p99 outside machine stalls | machine stalls (count, total, longest) | our CPU / others (cores) | CPU wait |',
    '|---|---:|---:|---:|---|---:|---:|',
  );
  for (const r of rows) {
    const s = r.state;
    L.push(
      s.marked
        ? `| ${r.pair.name} | ${s.over5} | ${s.over5InStall} | ${fmtMs(s.outside.p99)} (${s.outside.n} samples) | ${s.stallCount}, ${fmtMs(s.stallMs)} ms, ${fmtMs(s.stallLongest)} ms | ${fmt(s.ours, 2)} / ${fmt(s.others, 2)} | ${pctOf(s.pressure)} |`
        : `| ${r.pair.name} | - | - | - | no canary data | ${fmt(s.ours, 2)} / ${fmt(s.others, 2)} | ${pctOf(s.pressure)} |`,
    );
  }
  L.push('');

  // 3. throughput
  L.push(`### Bulk throughput (\`reliable\`, ${CONFIG.bulkBytes / 1024} KiB messages, each \`send()\` awaited, ${CONFIG.bulkSeconds} s of sending, ${n} rounds)`, '');
  L.push(
    'MB/s (10^6 bytes) at the receiver, from the first to the last message received (the sender stops after the fixed time; the rest drains). Every message arrived, in order and whole, unless marked. Median of the rounds; each round listed. ' +
      `Each round uses a fresh connection, and each direction first sends for ${CONFIG.bulkWarmupSeconds} s unmeasured ("first transfer" column, until drained): a Chromium sender's first transfer on a new connection collapses after its first ~2 MB for several seconds (seen with plain RTCPeerConnections in two pages too, whatever the watermarks; the next transfers run at full speed).`,
    '',
  );
  L.push('| sender -> receiver | MB/s (median) | rounds MB/s | first transfer MB/s (median; rounds) | complete, in order | our CPU / others (cores) | CPU wait |', '|---|---:|---|---|---|---:|---:|');
  for (const r of rtcRows) {
    for (const b of r.bulk) {
      L.push(
        `| ${label(b.from)} -> ${label(b.to)} | ${fmt(b.mbps, 1)} | ${b.all.map((x) => fmt(x, 1)).join(', ')} | ${fmt(b.cold, 1)}; ${b.coldAll.map((x) => fmt(x, 1)).join(', ')} | ${b.ok ? 'yes' : `NO: ${b.bad.join('; ')}`} | ${fmt(b.ours, 2)} / ${fmt(b.others, 2)} | ${pctOf(b.pressure)} |`,
      );
    }
  }
  L.push('');

  // targets
  const lat = rtcRows.map((r) => ({ name: r.pair.name, p99: latencyOf(r).p99, how: r.pair.sharedClock ? 'one-way' : 'RTT/2' }));
  const base = res.udp;
  const bulkOf = (key) => res[key]?.bulk[0]?.mbps ?? NaN;
  const cc = bulkOf('chromium');
  const wr = bulkOf('wrtc');
  const we = bulkOf('werift');
  const nodeBest = Math.max(Number.isFinite(wr) ? wr : -1, Number.isFinite(we) ? we : -1);
  const fasterNode = !(we > wr) ? '@roamhq/wrtc' : 'werift';
  L.push('### Targets', '');
  const openOk = rtcRows.length > 0 && rtcRows.every((r) => r.connect.total.p50 < 300 && r.connect.failures.length === 0);
  headlines.push(headline(SUMMARY, 'connection setup p50, slowest pair', `${fmtMs(Math.max(...rtcRows.map((r) => r.connect.total.p50)))} ms`, '< 300 ms, every pair', openOk, m.date));
  L.push(
    `- Connection setup (\`joinRoom\` to \`peer-connected\` on both sides) under 300 ms at p50: **${openOk ? 'met' : 'NOT met'}** ` +
      `(${rtcRows.map((r) => `${label(r.pair.a)} <-> ${label(r.pair.b)} ${fmtMs(r.connect.total.p50)} ms${r.connect.failures.length ? `, ${r.connect.failures.length}/${r.connect.runs} failed` : ''}`).join('; ')}).`,
  );
  const latOk = lat.every((x) => x.p99 < 5);
  headlines.push(headline(SUMMARY, 'game-state p99 (60 Hz x 200 B, unreliable), worst pair', `${fmtMs(Math.max(...lat.map((x) => x.p99)))} ms`, '< 5 ms, every pair', latOk, m.date));
  L.push(
    `- Game-state p99 under 5 ms (pooled over the rounds): **${latOk ? 'met' : 'NOT met'}** (${lat.map((x) => `${x.name} ${fmtMs(x.p99)} ms ${x.how}`).join('; ')})` +
      `${base ? `; the plain-UDP baseline without WebRTC, same run: ${fmtMs(base.state.oneWay.p99)} ms one-way${base.state.oneWay.p99 >= 5 ? ', so the machine alone misses it' : ''}` : ''}. ` +
      `Rounds under 5 ms: ${rtcRows.map((r) => `${r.pair.name} ${r.state.roundP99.filter((x) => x < 5).length}/${r.state.roundP99.length}`).join(', ')}${base ? `; baseline ${base.state.roundP99.filter((x) => x < 5).length}/${base.state.roundP99.length}` : ''}.`,
  );
  if (rtcRows.every((r) => r.state.marked)) {
    const cleanOk = rtcRows.every((r) => r.state.outside.p99 < 5);
    L.push(
      `- The same target on the samples outside machine stalls: **${cleanOk ? 'met' : 'NOT met'}** (${rtcRows.map((r) => `${r.pair.name} ${fmtMs(r.state.outside.p99)} ms`).join('; ')}); ` +
        `samples over 5 ms that overlapped no machine stall: ${rtcRows.map((r) => `${r.pair.name} ${r.state.over5 - r.state.over5InStall}/${r.state.outside.n}`).join(', ')}.`,
    );
  }
  const ratio = nodeBest / cc;
  headlines.push(headline(SUMMARY, `Node <-> Node (${fasterNode}) / Chromium <-> Chromium, bulk MB/s`, pct(ratio), '>= 50 %', ratio >= 0.5, m.date));
  L.push(
    `- Node <-> Node throughput at least half of Chromium <-> Chromium with the faster runtime (${fasterNode}): **${ratio >= 0.5 ? 'met' : 'NOT met'}** ` +
      `(${fmt(nodeBest, 1)} vs ${fmt(cc, 1)} MB/s = ${fmt(ratio * 100, 0)} %; werift ${fmt(we, 1)} MB/s = ${fmt((we / cc) * 100, 0)} %).`,
  );
  L.push('');
  if (meta.notes.length) {
    L.push('### Notes', '');
    for (const x of meta.notes) L.push(`- ${x}`);
    L.push('');
  }
  return L.join('\n').trimEnd();
}
