/**
 * The admin `messages` query: messages by state, waiting and in process from the engine, paged
 * out and finished ones from the store.
 */
import { MessageState } from './records.js'
import type { MessageInfo, MessageQuery, MessageStateName } from './api.js'
import type { QueueEngine } from './engine.js'
import type { Journal } from './journal.js'

/** Bytes of a payload a `bodies` query gives at most, per message. */
export const PAYLOAD_PREVIEW_BYTES = 4096

/** A stored or live message's body, as a `bodies` query gives it. */
interface Body { headers?: Record<string, string>, kind: number, payload: Uint8Array }

/**
 * Messages by state, oldest first within each: waiting and in process from memory, completed and
 * failed from the store. At most `limit` (default 100), after skipping `offset`.
 */
export async function queryMessages (
  engine: QueueEngine<any>,
  journal: Journal | undefined,
  visibilityTimeout: number,
  query: MessageQuery = {}
): Promise<MessageInfo[]> {
  const limit = query.limit ?? 100
  let skip = query.offset ?? 0
  const out: MessageInfo[] = []
  const wanted = (state: MessageStateName, command: string): boolean =>
    (query.state == null || query.state === state) && (query.command == null || query.command === command)
  /** Lists `info` (past the skipped ones); true once the list is full. */
  const add = (info: MessageInfo, body: Body): boolean => {
    if (skip > 0) {
      skip--
      return false
    }
    if (query.bodies === true) {
      info.headers = body.headers ?? {}
      info.payload = { kind: body.kind, size: body.payload.byteLength, data: Buffer.from(body.payload.subarray(0, PAYLOAD_PREVIEW_BYTES)).toString('base64') }
    }
    out.push(info)
    return out.length >= limit
  }
  for (const { message: m, queue, delivery } of engine.live()) {
    const state = delivery != null ? 'in process' : 'pending'
    if (!wanted(state, m.command)) continue
    const full = add({
      id: m.id,
      command: m.command,
      group: queue?.group ?? '',
      state,
      producer: m.producer,
      consumer: delivery?.sub.owner.peer,
      attempts: m.attempts,
      lastError: m.lastError,
      publishedAt: m.timestamp,
      updatedAt: delivery != null ? delivery.deadline - visibilityTimeout : m.timestamp
    }, m)
    if (full) return out
  }
  // Pending messages paged out to the store, after those in memory.
  if (journal != null && (query.state == null || query.state === 'pending')) {
    for (const queue of engine.pagedQueues()) {
      if (!wanted('pending', queue.command)) continue
      for (const m of await journal.readPage(queue, queue.tail, skip + limit - out.length)) {
        if (add({ id: m.id, command: m.command, group: queue.group, state: 'pending', producer: m.producer, attempts: m.attempts, lastError: m.lastError, publishedAt: m.timestamp, updatedAt: m.timestamp }, m)) return out
      }
    }
  }
  for (const [state, stored] of [['completed', MessageState.Completed], ['error', MessageState.Error]] as const) {
    if (query.state != null && query.state !== state) continue
    if (journal == null) break
    for await (const r of journal.finished(stored)) {
      if (!wanted(state, r.command)) continue
      const full = add({
        id: r.message.id,
        command: r.command,
        group: r.group,
        state,
        producer: r.message.producer,
        consumer: r.consumer === '' ? undefined : r.consumer,
        attempts: r.message.attempts,
        lastError: r.message.lastError,
        publishedAt: r.message.timestamp,
        updatedAt: r.updatedAt
      }, r.message)
      if (full) return out
    }
  }
  return out
}
