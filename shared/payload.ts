/**
 * The payload: the value of a message or state as it travels inside the engine. It lives here,
 * below api/, because the frames and links of shared/ carry payloads; api/types.ts re-exports it
 * for applications and holds the functions that make and read payloads.
 */

/**
 * A message or state value as it travels inside the engine: a typename plus either a native
 * value (built-in types only) or the serialized bytes.
 */
export type Payload = string | number | boolean | Uint8Array;
