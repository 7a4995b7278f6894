/** Protocol constants (no dependencies, browser-safe). */
export const SUBPROTOCOL = 'rallypoint.v1';
export const DEFAULT_PATH = '/ws';
