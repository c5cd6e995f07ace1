/**
 * Payloads are bytes, strings or JSON values; the kind travels with the bytes so the receiver gets
 * the same type the sender gave. The broker never decodes a payload: it relays kind and bytes.
 */

export type Payload = Uint8Array | string | JsonValue | undefined
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue }

export const enum PayloadKind {
  None = 0,
  Bytes = 1,
  String = 2,
  Json = 3
}

export interface EncodedPayload {
  kind: PayloadKind
  bytes: Uint8Array
}

const EMPTY = new Uint8Array(0)
const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { ignoreBOM: true })

export function encodePayload (value: unknown): EncodedPayload {
  if (value === undefined) return { kind: PayloadKind.None, bytes: EMPTY }
  if (value instanceof Uint8Array) return { kind: PayloadKind.Bytes, bytes: value }
  if (typeof value === 'string') return { kind: PayloadKind.String, bytes: encoder.encode(value) }
  const json = JSON.stringify(value)
  if (json === undefined) throw new TypeError(`A payload of type ${typeof value} cannot be sent`)
  return { kind: PayloadKind.Json, bytes: encoder.encode(json) }
}

export function decodePayload (kind: number, bytes: Uint8Array): Payload {
  switch (kind) {
    case PayloadKind.None: return undefined
    case PayloadKind.Bytes: return bytes
    case PayloadKind.String: return decoder.decode(bytes)
    case PayloadKind.Json: return JSON.parse(decoder.decode(bytes)) as JsonValue
    default: throw new TypeError(`Unknown payload kind ${kind}`)
  }
}

/** A payload as one line of text, for logs and the CLI. */
export function payloadToText (value: Payload): string {
  if (value === undefined) return ''
  if (typeof value === 'string') return value
  if (value instanceof Uint8Array) return decoder.decode(value)
  return JSON.stringify(value)
}
