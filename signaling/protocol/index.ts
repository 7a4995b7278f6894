/** The rallypoint.v1 protocol: schemas, codec, codes and limits. Browser-safe. */

export * from './codec.js';
export * from './codes.js';
export * from './limits.js';
export * from './schemas.js';
