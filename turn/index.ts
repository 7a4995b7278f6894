/** `rallypoint/turn`: the embedded TURN server (node-turn with its defects fixed). */

export { type Clock, systemClock } from './clock.js';
export { COTURN_MAPPED_RANGE, COTURN_NAT64_RANGE, type CoturnConfigOptions, cidrToRange, coturnConfig } from './coturn-config.js';
export {
  mintTurnCredentials,
  type RestCredentialOptions,
  restCredentialLookup,
  restPassword,
  type TurnCredentials,
  verifyTurnCredentials,
} from './credentials.js';
export { type LegacyTurnErrorCode, TurnError, type TurnErrorCode } from './errors.js';
export { DEFAULT_TURN_TTL, hostFromHeader, type TurnIceServer, type TurnIceServersOptions, turnIceServers } from './ice-servers.js';
export { REFUSAL_REASONS, type RefusalReason, type RelayDirection, TurnMetrics } from './metrics.js';
export { DEFAULT_DENIED_PEERS, PeerPolicy, type PeerPolicyOptions } from './policy.js';
export { DEFAULT_TURN_QUOTAS, type TurnQuotaOptions, type TurnQuotas } from './quotas.js';
export { type CredentialLookup, TurnServer, type TurnServerOptions } from './server.js';
