/**
 * Dead letters: a message that failed every attempt is republished to `<command><suffix>` (default
 * '.dlq') with why in its headers, and can be replayed to the command it failed in.
 */
import type { Logger } from '@libp2p/interface'
import type { QueueEngine, QueueStats } from './engine.js'
import type { Journal } from './journal.js'
import type { QueuedMessage } from './queue.js'

const DEAD_LETTER_HEADERS = ['x-dead-letter-command', 'x-dead-letter-error', 'x-dead-letter-attempts']

export class DeadLetters {
  constructor (
    private readonly engine: QueueEngine<any>,
    private readonly journal: Journal | undefined,
    /** The dead-letter queues' suffix, or false: failed messages are dropped (their records stay). */
    private readonly suffix: string | false,
    private readonly log: Logger
  ) {}

  /** Republishes a failed message to its dead-letter queue, `<command>.dlq`, with why in its headers. */
  add (m: QueuedMessage, error: string): void {
    const suffix = this.suffix
    if (suffix === false || m.command.endsWith(suffix)) return
    const taken = this.engine.publish({
      command: m.command + suffix,
      id: m.id,
      headers: { ...m.headers, 'x-dead-letter-command': m.command, 'x-dead-letter-error': error, 'x-dead-letter-attempts': String(m.attempts) },
      kind: m.kind,
      payload: m.payload,
      producer: m.producer,
      timestamp: Date.now(),
      wantsAnswer: false,
      attempts: 0
    })
    if (taken === 0) this.log.error('dead letter %s of %s dropped: the broker is full', m.id, m.command)
  }

  /** Messages waiting in each command's dead-letter queue(s), by the command they failed in. */
  counts (queues: QueueStats[]): Map<string, number> {
    const suffix = this.suffix
    const counts = new Map<string, number>()
    if (suffix === false) return counts
    for (const q of queues) {
      if (q.command.endsWith(suffix)) {
        const of = q.command.slice(0, -suffix.length)
        counts.set(of, (counts.get(of) ?? 0) + q.depth)
      }
    }
    return counts
  }

  /**
   * Puts dead letters back: up to `limit` waiting messages of `<command>.dlq` (or of every
   * dead-letter queue when no command is given) are republished to the command they failed in,
   * with their attempts reset. Returns how many.
   */
  replay (command?: string, limit = 1000): number {
    const suffix = this.suffix
    if (suffix === false) return 0
    const dlqs = command != null
      ? [command.endsWith(suffix) ? command : command + suffix]
      : [...new Set(this.engine.stats().map((q) => q.command).filter((c) => c.endsWith(suffix)))]
    let replayed = 0
    for (const dlq of dlqs) {
      const seen = new Set<string>()
      for (const m of this.engine.withdraw(dlq, limit - replayed)) {
        // One copy per message, not one per group that read the DLQ.
        if (!seen.has(m.id)) {
          seen.add(m.id)
          const headers = { ...m.headers }
          const original = headers['x-dead-letter-command'] ?? dlq.slice(0, -suffix.length)
          for (const h of DEAD_LETTER_HEADERS) delete headers[h]
          const copy = { ...m, command: original, headers, timestamp: Date.now(), attempts: 0, key: undefined, pageOrder: undefined, lastError: undefined, dueAt: undefined }
          if (this.engine.publish(copy) === 0) {
            // The broker is full (fan-out to several groups): the dead letter's record stays, so a
            // restart brings it back.
            this.log.error('replay of dead letter %s refused: the broker is full', m.id)
            continue
          }
          replayed++
        }
        this.journal?.completed(m, '')
      }
    }
    return replayed
  }
}
