/**
 * Every frame of the p2pmq wire protocol, in one place: its type byte, its fields in order, how it
 * is written and how it is read. PROTOCOL.md is the prose of this file; keep them together.
 */
import { ErrorCode, FrameError } from '../errors.js'
import type { FrameReader, FrameWriter } from './codec.js'

export const enum FrameType {
  // producer stream
  Publish = 0x01,
  Confirm = 0x02,
  Reject = 0x03,
  Result = 0x04,
  Hello = 0x05,
  // consumer stream
  Subscribe = 0x10,
  Subscribed = 0x11,
  Unsubscribe = 0x12,
  Deliver = 0x13,
  Ack = 0x14,
  Answer = 0x15,
  Nack = 0x16,
  ProducerRef = 0x17,
  // both streams, broker to client, first frame
  Welcome = 0x20,
  // admin stream
  Request = 0x30,
  Response = 0x31
}

export const enum PublishFlags {
  WantsAnswer = 1,
  /** A delay:u32 (ms) follows the flags: deliver no sooner. */
  Delayed = 2,
  /** A ttl:u32 (ms) follows (after the delay, if any): never deliver later. */
  Expires = 4,
  /** The id is the producer's own: drop a message whose id the broker saw within its dedup window. */
  Dedup = 8,
  /** Kept in memory only, even by a broker with a store (AMQP's delivery mode 1): lost if the broker stops. */
  Transient = 16
}

export const enum NackFlags {
  Requeue = 1
}

export const enum ResultStatus {
  Answered = 0,
  Failed = 1
}

export const enum RejectCode {
  TooLarge = 1,
  Full = 2,
  Invalid = 3,
  /** The broker could not store the message (a full or read-only disk). */
  Unavailable = 4,
  /** The broker's access control list does not let this peer publish to the command. */
  Forbidden = 5
}

/** Producer → broker: one message. `seq` is the producer's, echoed in the confirm or reject. */
export interface Publish {
  type: FrameType.Publish
  seq: number
  flags: number
  /** ms from the broker's receipt before it may deliver (0: at once). */
  delay: number
  /** ms from the broker's receipt after which it must not deliver (0: no limit). */
  ttl: number
  command: string
  id: string
  headers: Record<string, string> | undefined
  kind: number
  payload: Uint8Array
}

/**
 * Producer → broker, first frame on each producer stream: names the producer's session (one
 * Producer object), within which `seq` only grows. A resent Publish has a seq already seen.
 */
export interface Hello { type: FrameType.Hello, session: string }

/** Broker → producer: the message with this `seq` is taken. */
export interface Confirm { type: FrameType.Confirm, seq: number }

/** Broker → producer: the message with this `seq` is refused; nothing of it is kept. */
export interface Reject { type: FrameType.Reject, seq: number, code: number, reason: string }

/**
 * What every result of a message names, on the wire, in the broker's mailbox and in the producer's
 * hands (`AnsweredResult`, `FailedResult`): the message, who settled it, after how many attempts.
 */
export interface MessageResult {
  id: string
  /** The consumer of its last delivery ('' if it never had one, e.g. it expired). */
  consumer: string
  /** The delivery attempt that answered or failed (1 unless earlier ones failed). */
  attempts: number
}

/** Broker → producer: the result of message `id`, an answer or a failure (payload = error text). */
export interface Result extends MessageResult {
  type: FrameType.Result
  status: number
  kind: number
  payload: Uint8Array
}

/** Consumer → broker: deliver messages whose command matches one of `patterns`. */
export const enum SubscribeFlags {
  /** Make the queues single-active: one consumer at a time, one message at a time, in order. */
  SingleActive = 1,
  /** An expires:u32 (ms) follows the flags: the group is deleted once idle that long. */
  Expires = 2,
  /** The client reads a code:u8 after the error of the Subscribed frames of its stream (an older client sets no such flag, and gets none). */
  ErrorCodes = 4
}

export interface Subscribe {
  type: FrameType.Subscribe
  subId: number
  prefetch: number
  flags: number
  /** ms the group may stay idle before it is deleted (0: not set by this subscription). */
  expires: number
  group: string
  patterns: string[]
}

/**
 * Broker → consumer: the subscription is active (`error` empty) or refused. `code` is
 * ErrorCode.Unspecified when the broker sent none (an older broker, or a client that did not ask).
 */
export interface Subscribed { type: FrameType.Subscribed, subId: number, error: string, code: ErrorCode }

export interface Unsubscribe { type: FrameType.Unsubscribe, subId: number }

/**
 * Broker → consumer: from now on, `ref` in a Deliver on this stream means producer `peer`. Sent
 * before the first Deliver that needs it; the broker may later reuse a ref for another peer.
 */
export interface ProducerRef { type: FrameType.ProducerRef, ref: number, peer: string }

/**
 * Broker → consumer: one message to process. `tag` names this delivery in the settle frames;
 * `producer` is a ref given by an earlier ProducerRef frame.
 */
export interface Deliver {
  type: FrameType.Deliver
  subId: number
  tag: number
  attempt: number
  flags: number
  timestamp: number
  command: string
  id: string
  producer: number
  headers: Record<string, string> | undefined
  kind: number
  payload: Uint8Array
}

/** Consumer → broker: delivery `tag` processed, no answer wanted. */
export interface Ack { type: FrameType.Ack, tag: number }

/** Consumer → broker: delivery `tag` processed, with its answer. */
export interface Answer { type: FrameType.Answer, tag: number, kind: number, payload: Uint8Array }

/** Consumer → broker: delivery `tag` failed; requeue it for another attempt or fail it now. */
export interface Nack { type: FrameType.Nack, tag: number, flags: number, error: string }

/**
 * Admin client → broker: call `method` with a JSON `body`. Requests are few and small, so their
 * bodies are JSON (UTF-8), not fixed fields.
 */
export interface Request { type: FrameType.Request, reqId: number, method: string, body: Uint8Array }

/** Broker → admin client: the outcome of request `reqId`: JSON of the result (`ok`) or `{ error }`. */
export interface Response { type: FrameType.Response, reqId: number, ok: boolean, body: Uint8Array }

/** Broker → client, first frame on each stream: the broker's limits. */
export interface Welcome { type: FrameType.Welcome, maxPayload: number, version: string }

export type ProducerFrame = Hello | Publish
export type BrokerToProducerFrame = Welcome | Confirm | Reject | Result
export type ConsumerFrame = Subscribe | Unsubscribe | Ack | Answer | Nack
export type BrokerToConsumerFrame = Welcome | Subscribed | ProducerRef | Deliver
export type AdminFrame = Request
export type BrokerToAdminFrame = Welcome | Response

/** The fields of a message the broker relays: structurally shared by Publish and the queue's records. */
export interface MessageFields {
  command: string
  id: string
  headers: Record<string, string> | undefined
  kind: number
  payload: Uint8Array
}

/** `flags` must say which of delay and ttl are there (PublishFlags.Delayed, .Expires). */
export function writePublish (w: FrameWriter, seq: number, flags: number, m: MessageFields, delay = 0, ttl = 0): void {
  w.begin(FrameType.Publish).u32(seq).u8(flags)
  if ((flags & PublishFlags.Delayed) !== 0) w.u32(delay)
  if ((flags & PublishFlags.Expires) !== 0) w.u32(ttl)
  w.name(m.command).str(m.id).headers(m.headers)
    .u8(m.kind).bytes(m.payload).end()
}

export function writeHello (w: FrameWriter, session: string): void {
  w.begin(FrameType.Hello).str(session).end()
}

export function writeConfirm (w: FrameWriter, seq: number): void {
  w.begin(FrameType.Confirm).u32(seq).end()
}

export function writeReject (w: FrameWriter, seq: number, code: RejectCode, reason: string): void {
  w.begin(FrameType.Reject).u32(seq).u8(code).str(reason).end()
}

export function writeResult (w: FrameWriter, id: string, consumer: string, status: ResultStatus, attempts: number, kind: number, payload: Uint8Array): void {
  w.begin(FrameType.Result).str(id).str(consumer).u8(status).u16(attempts).u8(kind).bytes(payload).end()
}

export function writeSubscribe (w: FrameWriter, subId: number, prefetch: number, flags: number, group: string, patterns: readonly string[], expires = 0): void {
  w.begin(FrameType.Subscribe).u32(subId).u32(prefetch)
  if (expires > 0) w.u8(flags | SubscribeFlags.Expires).u32(expires)
  else w.u8(flags & ~SubscribeFlags.Expires)
  w.str(group).strings(patterns).end()
}

/** `code` is written only for a client that asked (SubscribeFlags.ErrorCodes), and only with an error. */
export function writeSubscribed (w: FrameWriter, subId: number, error: string, code?: ErrorCode): void {
  w.begin(FrameType.Subscribed).u32(subId).str(error)
  if (code != null && error !== '') w.u8(code)
  w.end()
}

export function writeUnsubscribe (w: FrameWriter, subId: number): void {
  w.begin(FrameType.Unsubscribe).u32(subId).end()
}

export function writeProducerRef (w: FrameWriter, ref: number, peer: string): void {
  w.begin(FrameType.ProducerRef).u32(ref).str(peer).end()
}

export function writeDeliver (w: FrameWriter, subId: number, tag: number, attempt: number, flags: number, timestamp: number, producer: number, m: MessageFields): void {
  w.begin(FrameType.Deliver).u32(subId).u32(tag).u16(attempt).u8(flags).f64(timestamp)
    .name(m.command).str(m.id).u32(producer).headers(m.headers).u8(m.kind).bytes(m.payload).end()
}

export function writeAck (w: FrameWriter, tag: number): void {
  w.begin(FrameType.Ack).u32(tag).end()
}

export function writeAnswer (w: FrameWriter, tag: number, kind: number, payload: Uint8Array): void {
  w.begin(FrameType.Answer).u32(tag).u8(kind).bytes(payload).end()
}

export function writeNack (w: FrameWriter, tag: number, flags: number, error: string): void {
  w.begin(FrameType.Nack).u32(tag).u8(flags).str(error).end()
}

export function writeRequest (w: FrameWriter, reqId: number, method: string, body: Uint8Array): void {
  w.begin(FrameType.Request).u32(reqId).str(method).bytes(body).end()
}

export function writeResponse (w: FrameWriter, reqId: number, ok: boolean, body: Uint8Array): void {
  w.begin(FrameType.Response).u32(reqId).u8(ok ? 1 : 0).bytes(body).end()
}

export function writeWelcome (w: FrameWriter, maxPayload: number, version: string): void {
  w.begin(FrameType.Welcome).u32(maxPayload).str(version).end()
}

/** Reads a frame the broker receives on a producer stream. */
export function readProducerFrame (type: number, r: FrameReader): ProducerFrame {
  let f: ProducerFrame
  switch (type) {
    case FrameType.Publish: {
      const seq = r.u32()
      const flags = r.u8()
      const delay = (flags & PublishFlags.Delayed) !== 0 ? r.u32() : 0
      const ttl = (flags & PublishFlags.Expires) !== 0 ? r.u32() : 0
      f = { type, seq, flags, delay, ttl, command: r.name(), id: r.str(), headers: r.headers(), kind: r.u8(), payload: r.bytes() }
      break
    }
    case FrameType.Hello: f = { type, session: r.str() }; break
    default: throw unexpected(type, 'producer')
  }
  r.done()
  return f
}

/** Reads a frame the broker receives on a consumer stream. */
export function readConsumerFrame (type: number, r: FrameReader): ConsumerFrame {
  let f: ConsumerFrame
  switch (type) {
    case FrameType.Ack: f = { type, tag: r.u32() }; break
    case FrameType.Answer: f = { type, tag: r.u32(), kind: r.u8(), payload: r.bytes() }; break
    case FrameType.Nack: f = { type, tag: r.u32(), flags: r.u8(), error: r.str() }; break
    case FrameType.Subscribe: {
      const subId = r.u32()
      const prefetch = r.u32()
      const flags = r.u8()
      const expires = (flags & SubscribeFlags.Expires) !== 0 ? r.u32() : 0
      f = { type, subId, prefetch, flags, expires, group: r.str(), patterns: r.strings() }
      break
    }
    case FrameType.Unsubscribe: f = { type, subId: r.u32() }; break
    default: throw unexpected(type, 'consumer')
  }
  r.done()
  return f
}

/** Reads a frame a producer receives from the broker. */
export function readBrokerToProducerFrame (type: number, r: FrameReader): BrokerToProducerFrame {
  let f: BrokerToProducerFrame
  switch (type) {
    case FrameType.Confirm: f = { type, seq: r.u32() }; break
    case FrameType.Result:
      f = { type, id: r.str(), consumer: r.str(), status: r.u8(), attempts: r.u16(), kind: r.u8(), payload: r.bytes() }
      break
    case FrameType.Reject: f = { type, seq: r.u32(), code: r.u8(), reason: r.str() }; break
    case FrameType.Welcome: f = { type, maxPayload: r.u32(), version: r.str() }; break
    default: throw unexpected(type, 'producer')
  }
  r.done()
  return f
}

/** Reads a frame a consumer receives from the broker. */
export function readBrokerToConsumerFrame (type: number, r: FrameReader): BrokerToConsumerFrame {
  let f: BrokerToConsumerFrame
  switch (type) {
    case FrameType.Deliver:
      f = {
        type,
        subId: r.u32(),
        tag: r.u32(),
        attempt: r.u16(),
        flags: r.u8(),
        timestamp: r.f64(),
        command: r.name(),
        id: r.str(),
        producer: r.u32(),
        headers: r.headers(),
        kind: r.u8(),
        payload: r.bytes()
      }
      break
    case FrameType.Subscribed: f = { type, subId: r.u32(), error: r.str(), code: r.remaining > 0 ? r.u8() : ErrorCode.Unspecified }; break
    case FrameType.ProducerRef: f = { type, ref: r.u32(), peer: r.str() }; break
    case FrameType.Welcome: f = { type, maxPayload: r.u32(), version: r.str() }; break
    default: throw unexpected(type, 'consumer')
  }
  r.done()
  return f
}

/** Reads a frame the broker receives on an admin stream. */
export function readAdminFrame (type: number, r: FrameReader): AdminFrame {
  if (type !== FrameType.Request) throw unexpected(type, 'admin')
  const f: AdminFrame = { type, reqId: r.u32(), method: r.str(), body: r.bytes() }
  r.done()
  return f
}

/** Reads a frame an admin client receives from the broker. */
export function readBrokerToAdminFrame (type: number, r: FrameReader): BrokerToAdminFrame {
  let f: BrokerToAdminFrame
  switch (type) {
    case FrameType.Response: f = { type, reqId: r.u32(), ok: r.u8() === 1, body: r.bytes() }; break
    case FrameType.Welcome: f = { type, maxPayload: r.u32(), version: r.str() }; break
    default: throw unexpected(type, 'admin')
  }
  r.done()
  return f
}

function unexpected (type: number, stream: string): FrameError {
  return new FrameError(`Unknown or misplaced frame type 0x${type.toString(16).padStart(2, '0')} on a ${stream} stream`)
}
