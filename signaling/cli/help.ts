import { COTURN_OPTIONS, type OptionSpec, SERVE_OPTIONS, TURN_OPTIONS } from './config.js';

export function helpText(): string {
  const rowsOf = (specs: Record<string, OptionSpec>): string[] =>
    Object.values(specs).map((o) => {
      const left = `  --${o.flag}${o.boolean ? '' : ' <value>'}`;
      return `${left.length < 36 ? left.padEnd(36) : `${left} `}${o.description}\n${''.padEnd(36)}env ${o.env}, default ${o.defaultText}`;
    });
  const rows = rowsOf(SERVE_OPTIONS);
  return [
    'Usage: rallypoint <command> [options]',
    '',
    'Commands:',
    '  serve       run the signaling service and the embedded TURN server (what',
    '              `npm start` runs); peers get TURN credentials in welcome.iceServers',
    '  turn        run the embedded TURN server alone (needs TURN_SECRET)',
    '  coturn-config',
    '              print a turnserver.conf for coturn: the same TURN secret, deny list,',
    '              quotas, no TCP relay, no admin CLI',
    '  help        show this help',
    '',
    'Options for serve (every option also reads its environment variable; flags win):',
    ...rows,
    '',
    'Options for turn (every option also reads its environment variable; flags win):',
    ...rowsOf(TURN_OPTIONS),
    '',
    'Options for coturn-config (every option also reads its environment variable; flags win):',
    ...rowsOf(COTURN_OPTIONS),
    '',
    '  -h, --help                        show this help',
    '',
    'Endpoints: the WebSocket path, GET /healthz, GET /metrics (Prometheus; behind',
    '--metrics-token and/or on --metrics-port when set).',
    'Protocol: signaling/PROTOCOL.md',
  ].join('\n');
}
