import { SERVE_OPTIONS } from './config.js';

export function helpText(): string {
  const rows = Object.values(SERVE_OPTIONS).map((o) => {
    const left = `  --${o.flag}${o.boolean ? '' : ' <value>'}`;
    return `${left.padEnd(36)}${o.description}\n${''.padEnd(36)}env ${o.env}, default ${o.defaultText}`;
  });
  return [
    'Usage: rallypoint <command> [options]',
    '',
    'Commands:',
    '  serve       run the signaling service (what `npm start` runs)',
    '  help        show this help',
    '',
    'Options for serve (every option also reads its environment variable; flags win):',
    ...rows,
    '  -h, --help                        show this help',
    '',
    'Endpoints: the WebSocket path, GET /healthz, GET /metrics (Prometheus).',
    'Protocol: signaling/PROTOCOL.md',
  ].join('\n');
}
