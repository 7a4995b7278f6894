/** UTF-8 and byte views, shared by the channel code (one encoder and decoder for all). */
export const encoder = new TextEncoder();
export const decoder = new TextDecoder();

/** A Uint8Array view of bytes (no copy). */
export function toBytes(data: ArrayBuffer | ArrayBufferView): Uint8Array {
  return data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}
