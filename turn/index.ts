/** `rallypoint/turn`: the embedded TURN server (node-turn with its defects fixed). */
export { TurnServer, type TurnServerOptions, type CredentialLookup } from './server.js';
export { PeerPolicy, DEFAULT_DENIED_PEERS, type PeerPolicyOptions } from './policy.js';
export { TurnError, type TurnErrorCode, type LegacyTurnErrorCode } from './errors.js';
export { systemClock, type Clock } from './clock.js';
export {
  mintTurnCredentials,
  restCredentialLookup,
  restPassword,
  verifyTurnCredentials,
  type RestCredentialOptions,
  type TurnCredentials,
} from './credentials.js';
export { coturnConfig, cidrToRange, COTURN_MAPPED_RANGE, COTURN_NAT64_RANGE, type CoturnConfigOptions } from './coturn-config.js';
export { DEFAULT_TURN_QUOTAS, type TurnQuotaOptions, type TurnQuotas } from './quotas.js';
export { TurnMetrics, REFUSAL_REASONS, type RefusalReason, type RelayDirection } from './metrics.js';
export { turnIceServers, hostFromHeader, DEFAULT_TURN_TTL, type TurnIceServer, type TurnIceServersOptions } from './ice-servers.js';
