/**
 * The admin `messages` query: messages by state, waiting and in process from the engine, paged
 * out and finished ones from the store.
 */
import { MessageState } from './records.js'
import type { MessageInfo, MessageQuery, MessageStateName } from './api.js'
import type { QueueEngine } from './engine.js'
import type { Journal } from './journal.js'

/**
 * Messages by state, oldest first within each: waiting and in process from memory, completed and
 * failed from the store. At most `limit` (default 100).
 */
export async function queryMessages (
  engine: QueueEngine<any>,
  journal: Journal | undefined,
  visibilityTimeout: number,
  query: MessageQuery = {}
): Promise<MessageInfo[]> {
  const limit = query.limit ?? 100
  const out: MessageInfo[] = []
  const wanted = (state: MessageStateName, command: string): boolean =>
    (query.state == null || query.state === state) && (query.command == null || query.command === command)
  for (const { message: m, queue, delivery } of engine.live()) {
    const state = delivery != null ? 'in process' : 'pending'
    if (!wanted(state, m.command)) continue
    out.push({
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
    })
    if (out.length >= limit) return out
  }
  // Pending messages paged out to the store, after those in memory.
  if (journal != null && (query.state == null || query.state === 'pending')) {
    for (const queue of engine.pagedQueues()) {
      if (!wanted('pending', queue.command)) continue
      for (const m of await journal.readPage(queue, queue.tail, limit - out.length)) {
        out.push({ id: m.id, command: m.command, group: queue.group, state: 'pending', producer: m.producer, attempts: m.attempts, lastError: m.lastError, publishedAt: m.timestamp, updatedAt: m.timestamp })
      }
      if (out.length >= limit) return out
    }
  }
  for (const [state, stored] of [['completed', MessageState.Completed], ['error', MessageState.Error]] as const) {
    if (query.state != null && query.state !== state) continue
    if (journal == null) break
    for await (const r of journal.finished(stored)) {
      if (!wanted(state, r.command)) continue
      out.push({
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
      })
      if (out.length >= limit) return out
    }
  }
  return out
}
