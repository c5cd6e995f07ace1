/**
 * What the broker keeps in its store, and the keys it keeps it under. Keys sort as bytes, so a
 * prefix reads one kind, and a queue's messages come back in publish order:
 *
 *   M queueId:u32 n:u64   a message copy waiting or in process in a queue, in the queue's order (a
 *                         queue of group '' holds a command's messages no group wants yet); n is
 *                         the place the engine gave it (pageOrder; dueOrder in D below); its value
 *                         ends with the producer session it came from (absent before issue 12)
 *   D dueAt:f64 n:u64 queueId:u32
 *                         a message waiting for its due time (delayed, or a retry's backoff), in due
 *                         order (a positive f64 sorts as its big-endian bytes). Before delayed
 *                         messages paged it was D queueId:u32 n:u64, and queue 0 held every
 *                         unrouted message: the journal rewrites such records when it starts.
 *   C at:u64 n:u64        the messages completed in one group commit (CompletedLog), kept for
 *                         the completed retention
 *   E at:u64 queueId n    a failed message, with its payload and last error
 *   Q queueId:u32         a queue's command and group
 *   B group pattern       a group's binding (strings length-prefixed), empty value
 *   A n:u64               an answer kept for a disconnected producer (and its session)
 *   P peer session        the highest seq taken from a producer session (strings length-prefixed)
 *   I command id          a producer-supplied message id seen, until when it is remembered (u64)
 *   S id                  a periodic message (Schedule)
 *   G group               a group's settings: its expiry, ms idle before it is deleted (u64)
 *   N                     the next queue id (u32), kept once a queue record was removed, so a
 *                         removed queue's id is never given again (finished records name it)
 *
 * Values use the wire protocol's field encoding (PROTOCOL.md), each in one frame whose type says
 * what it is, so a record is read with the same checked reader as a frame. (One concept, the
 * store's formats, kept whole past 400 lines: every codec sits under the layout above.)
 */
import { FrameReader, FrameWriter, join } from '../protocol/codec.js'
import { FrameError } from '../errors.js'
import type { KeptResult } from './mailbox.js'
import type { QueuedMessage } from './queue.js'
import type { Schedule } from './schedules.js'

export const enum MessageState {
  Pending = 0,
  InProcess = 1,
  Completed = 2,
  Error = 3
}

const enum Kind {
  Message = 0x4d, // M
  DelayedMessage = 0x44, // D
  Queue = 0x51, // Q
  Binding = 0x42, // B
  Answer = 0x41, // A
  Completed = 0x43, // C
  Failed = 0x45, // E
  ProducerSeq = 0x50, // P
  SeenId = 0x49, // I
  Schedule = 0x53, // S
  Group = 0x47, // G
  NextQueueId = 0x4e // N
}

export const MESSAGE_PREFIX = new Uint8Array([Kind.Message])
export const DELAYED_PREFIX = new Uint8Array([Kind.DelayedMessage])

export const QUEUE_PREFIX = new Uint8Array([Kind.Queue])
export const BINDING_PREFIX = new Uint8Array([Kind.Binding])
export const ANSWER_PREFIX = new Uint8Array([Kind.Answer])
export const PRODUCER_SEQ_PREFIX = new Uint8Array([Kind.ProducerSeq])
export const COMPLETED_PREFIX = new Uint8Array([Kind.Completed])
export const SEEN_ID_PREFIX = new Uint8Array([Kind.SeenId])
export const SCHEDULE_PREFIX = new Uint8Array([Kind.Schedule])
export const GROUP_PREFIX = new Uint8Array([Kind.Group])
export const NEXT_QUEUE_ID_KEY = new Uint8Array([Kind.NextQueueId])

export function encodeQueueId (id: number): Uint8Array {
  const value = new Uint8Array(4)
  new DataView(value.buffer).setUint32(0, id)
  return value
}

export function decodeQueueId (value: Uint8Array): number {
  if (value.byteLength !== 4) throw new FrameError('A stored queue id is 4 bytes')
  return new DataView(value.buffer, value.byteOffset, value.byteLength).getUint32(0)
}

/** A key made of one kind byte and a string. */
function stringKey (kind: Kind, s: string): Uint8Array {
  const bytes = new TextEncoder().encode(s)
  const key = new Uint8Array(1 + bytes.byteLength)
  key[0] = kind
  key.set(bytes, 1)
  return key
}

export function groupKey (group: string): Uint8Array {
  return stringKey(Kind.Group, group)
}

export function parseGroupKey (key: Uint8Array): string {
  return new TextDecoder().decode(key.subarray(1))
}

/** The first and the end key of a queue's stored messages in its order (delayed ones are stored in due order, apart). */
export function queueRange (queueId: number): [Uint8Array, Uint8Array] {
  return [messageKey(queueId, 0), messageKey(queueId + 1, 0)]
}

export function scheduleKey (id: string): Uint8Array {
  return stringKey(Kind.Schedule, id)
}

export function encodeSchedule (s: Schedule): Uint8Array {
  return encode(Kind.Schedule, (w) => w.str(s.id).str(s.command).str(s.producer).f64(s.every ?? 0).str(s.cron ?? '')
    .f64(s.nextAt).f64(s.createdAt).headers(s.headers).u8(s.kind).bytes(s.payload))
}

export function decodeSchedule (value: Uint8Array): Schedule {
  const r = open(value, Kind.Schedule)
  const id = r.str()
  const command = r.str()
  const producer = r.str()
  const every = r.f64()
  const cron = r.str()
  const s: Schedule = {
    id,
    command,
    producer,
    every: every === 0 ? undefined : every,
    cron: cron === '' ? undefined : cron,
    nextAt: r.f64(),
    createdAt: r.f64(),
    headers: r.headers(),
    kind: r.u8(),
    payload: r.bytes()
  }
  r.done()
  return s
}

export function seenIdKey (command: string, id: string): Uint8Array {
  return pairKey(Kind.SeenId, command, id)
}

export function encodeTime (at: number): Uint8Array {
  const value = new Uint8Array(8)
  setU64(new DataView(value.buffer), 0, at)
  return value
}

export function decodeTime (value: Uint8Array): number {
  if (value.byteLength !== 8) throw new FrameError('A stored time is not 8 bytes')
  return getU64(new DataView(value.buffer, value.byteOffset, 8), 0)
}
export const FAILED_PREFIX = new Uint8Array([Kind.Failed])

/** A message's key in its queue's order. */
export function messageKey (queueId: number, n: number): Uint8Array {
  const key = new Uint8Array(13)
  const v = new DataView(key.buffer)
  key[0] = Kind.Message
  v.setUint32(1, queueId)
  setU64(v, 5, n)
  return key
}

/** A delayed message's key, in due order. */
export function delayedKey (dueAt: number, n: number, queueId: number): Uint8Array {
  const key = new Uint8Array(DELAYED_KEY_LENGTH)
  const v = new DataView(key.buffer)
  key[0] = Kind.DelayedMessage
  v.setFloat64(1, dueAt)
  setU64(v, 9, n)
  v.setUint32(17, queueId)
  return key
}

export const DELAYED_KEY_LENGTH = 21

/** The due time, sequence number and queue id in a delayed message's key. */
export function parseDelayedKey (key: Uint8Array): { dueAt: number, n: number, queueId: number } {
  const v = new DataView(key.buffer, key.byteOffset, key.byteLength)
  return { dueAt: v.getFloat64(1), n: getU64(v, 9), queueId: v.getUint32(17) }
}

/** A key after every delayed message key up to (dueAt, n), and before those after it. */
export function delayedKeyAfter (dueAt: number, n: number): Uint8Array {
  return delayedKey(dueAt, n, 0xffffffff)
}

/** A failed message's key: ordered by when it failed, then by its queue id and sequence number. */
export function failedKey (at: number, messageKey: Uint8Array): Uint8Array {
  const key = new Uint8Array(9 + 12)
  const v = new DataView(key.buffer)
  key[0] = Kind.Failed
  setU64(v, 1, at)
  const { queueId, n } = parseMessageKey(messageKey)
  v.setUint32(9, queueId)
  setU64(v, 13, n)
  return key
}

/** The queue id in a failed message's key. */
export function failedQueueId (key: Uint8Array): number {
  return new DataView(key.buffer, key.byteOffset, key.byteLength).getUint32(9)
}

export function completedLogKey (at: number, n: number): Uint8Array {
  const key = new Uint8Array(17)
  const v = new DataView(key.buffer)
  key[0] = Kind.Completed
  setU64(v, 1, at)
  setU64(v, 9, n)
  return key
}

/** The first key of completed logs written at or after `at` (to clear those before it). */
export function completedBound (at: number): Uint8Array {
  const key = new Uint8Array(9)
  key[0] = Kind.Completed
  setU64(new DataView(key.buffer), 1, Math.max(0, at))
  return key
}

export function queueKey (queueId: number): Uint8Array {
  const key = new Uint8Array(5)
  key[0] = Kind.Queue
  new DataView(key.buffer).setUint32(1, queueId)
  return key
}

export function answerKey (n: number): Uint8Array {
  const key = new Uint8Array(9)
  key[0] = Kind.Answer
  setU64(new DataView(key.buffer), 1, n)
  return key
}

export function bindingKey (group: string, pattern: string): Uint8Array {
  return pairKey(Kind.Binding, group, pattern)
}

export function producerSeqKey (peer: string, session: string): Uint8Array {
  return pairKey(Kind.ProducerSeq, peer, session)
}

/** The two strings of a binding, producer-seq or seen-id key. */
export function parsePairKey (key: Uint8Array): [string, string] {
  const r = reader.reset(key, 1, key.byteLength)
  const pair: [string, string] = [r.str(), r.str()]
  r.done()
  return pair
}

export function encodeSeq (seq: number): Uint8Array {
  const value = new Uint8Array(4)
  new DataView(value.buffer).setUint32(0, seq)
  return value
}

export function decodeSeq (value: Uint8Array): number {
  if (value.byteLength !== 4) throw new FrameError('A stored producer seq is not 4 bytes')
  return new DataView(value.buffer, value.byteOffset, 4).getUint32(0)
}

/** A key of the kind byte and two length-prefixed strings. */
function pairKey (kind: Kind, a: string, b: string): Uint8Array {
  // A frame without its length field: the kind byte, then the strings.
  return encode(kind, (w) => w.str(a).str(b)).slice(4)
}

/** The queue id and sequence number in a message key (of either kind). */
export function parseMessageKey (key: Uint8Array): { queueId: number, n: number } {
  if (key[0] === Kind.DelayedMessage && key.byteLength === DELAYED_KEY_LENGTH) return parseDelayedKey(key)
  const v = new DataView(key.buffer, key.byteOffset, key.byteLength)
  return { queueId: v.getUint32(1), n: getU64(v, 5) }
}

export function parseAnswerKey (key: Uint8Array): number {
  return getU64(new DataView(key.buffer, key.byteOffset, key.byteLength), 1)
}

const NO_PAYLOAD = new Uint8Array(0)

export function encodeMessage (m: QueuedMessage, state: MessageState, updatedAt: number, consumer = ''): Uint8Array {
  return encode(Kind.Message, (w) => w.u8(state).u16(Math.min(m.attempts, 0xffff)).u8(m.wantsAnswer ? 1 : 0)
    .f64(m.timestamp).f64(updatedAt).f64(m.dueAt ?? 0).f64(m.expiresAt ?? 0).name(m.command).str(m.id).str(m.producer).str(consumer).str(m.lastError ?? '')
    .headers(m.headers).u8(m.kind).bytes(m.payload).str(m.session ?? ''))
}

export interface MessageRecord {
  message: QueuedMessage
  state: MessageState
  updatedAt: number
  /** The consumer of the last delivery, '' if none. */
  consumer: string
}

export function decodeMessage (value: Uint8Array): MessageRecord {
  const r = open(value, Kind.Message)
  const state = r.u8() as MessageState
  const attempts = r.u16()
  const wantsAnswer = r.u8() === 1
  const timestamp = r.f64()
  const updatedAt = r.f64()
  const dueAt = r.f64()
  const expiresAt = r.f64()
  const command = r.name()
  const id = r.str()
  const producer = r.str()
  const consumer = r.str()
  const lastError = r.str()
  const message: QueuedMessage = {
    command,
    id,
    producer,
    timestamp,
    wantsAnswer,
    attempts,
    lastError: lastError === '' ? undefined : lastError,
    dueAt: dueAt === 0 ? undefined : dueAt,
    expiresAt: expiresAt === 0 ? undefined : expiresAt,
    headers: r.headers(),
    kind: r.u8(),
    payload: r.bytes()
  }
  // The producer session, last (absent in records of older versions).
  const session = r.remaining > 0 ? r.str() : ''
  if (session !== '') message.session = session
  r.done()
  return { message, state, updatedAt, consumer }
}

/**
 * The messages completed while one group commit gathered: one store entry for all of them, not one
 * per message (a record per message cost a third of the durable throughput). Each entry is a frame:
 * queueId:u32 attempts:u16 timestamp:f64 completedAt:f64 command id producer consumer.
 */
export class CompletedLog {
  private parts: Uint8Array[] = []
  private readonly writer = new FrameWriter((bytes) => { this.parts.push(bytes) })

  add (queueId: number, m: QueuedMessage, at: number, consumer: string): void {
    this.writer.begin(Kind.Completed).u32(queueId).u16(Math.min(m.attempts, 0xffff)).f64(m.timestamp).f64(at)
      .name(m.command).str(m.id).str(m.producer).str(consumer).end()
  }

  /** Everything added since the last take, as one value; undefined when nothing was. */
  take (): Uint8Array | undefined {
    this.writer.flush()
    const parts = this.parts
    if (parts.length === 0) return undefined
    this.parts = []
    return join(parts)
  }
}

/** The entries of a CompletedLog value, as records in state Completed. */
export function * readCompletedLog (value: Uint8Array): Iterable<MessageRecord & { queueId: number }> {
  const v = new DataView(value.buffer, value.byteOffset, value.byteLength)
  let pos = 0
  while (pos < value.byteLength) {
    if (value.byteLength - pos < 5) throw new FrameError('A completed log ends in the middle of an entry')
    const end = pos + 4 + v.getUint32(pos)
    if (end > value.byteLength || value[pos + 4] !== Kind.Completed) throw new FrameError('A completed log entry is damaged')
    const r = reader.reset(value, pos + 5, end)
    const queueId = r.u32()
    const attempts = r.u16()
    const timestamp = r.f64()
    const updatedAt = r.f64()
    const message: QueuedMessage = { command: r.name(), id: r.str(), producer: r.str(), attempts, timestamp, wantsAnswer: false, headers: undefined, kind: 0, payload: NO_PAYLOAD }
    const consumer = r.str()
    r.done()
    pos = end
    yield { queueId, message, state: MessageState.Completed, updatedAt, consumer }
  }
}

export function encodeQueue (command: string, group: string): Uint8Array {
  return encode(Kind.Queue, (w) => w.str(command).str(group))
}

export function decodeQueue (value: Uint8Array): { command: string, group: string } {
  const r = open(value, Kind.Queue)
  const q = { command: r.str(), group: r.str() }
  r.done()
  return q
}

/** A kept answer: its producer, the answer, and last the producer session it is for ('' or absent in older records: any of the peer's). */
export function encodeAnswer (producer: string, a: KeptResult): Uint8Array {
  return encode(Kind.Answer, (w) => w.str(producer).str(a.id).str(a.consumer).u8(a.status).u16(a.attempts)
    .u8(a.kind).f64(a.keptAt).bytes(a.payload).str(a.session ?? ''))
}

export function decodeAnswer (value: Uint8Array): { producer: string, answer: KeptResult } {
  const r = open(value, Kind.Answer)
  const producer = r.str()
  const answer: KeptResult = { id: r.str(), consumer: r.str(), status: r.u8(), attempts: r.u16(), kind: r.u8(), keptAt: r.f64(), payload: r.bytes() }
  const session = r.remaining > 0 ? r.str() : ''
  if (session !== '') answer.session = session
  r.done()
  return { producer, answer }
}

// One writer and one reader serve every record: the writer hands each record over whole.
let encoded: Uint8Array | undefined
const writer = new FrameWriter((bytes) => { encoded = bytes })
const reader = new FrameReader()

function encode (kind: Kind, fields: (w: FrameWriter) => unknown): Uint8Array {
  fields(writer.begin(kind))
  writer.end()
  writer.flush()
  const out = encoded as Uint8Array
  encoded = undefined
  return out
}

function open (value: Uint8Array, kind: Kind): FrameReader {
  if (value.byteLength < 5 || value[4] !== kind) throw new FrameError(`A stored record is not of kind ${String.fromCharCode(kind)}`)
  return reader.reset(value, 5, value.byteLength)
}

function setU64 (v: DataView, at: number, n: number): void {
  v.setUint32(at, Math.floor(n / 2 ** 32))
  v.setUint32(at + 4, n >>> 0)
}

function getU64 (v: DataView, at: number): number {
  return v.getUint32(at) * 2 ** 32 + v.getUint32(at + 4)
}
