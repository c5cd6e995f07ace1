/**
 * The answers a producer session was sent last, by message id, so a resend can get its answer
 * again. A producer that moves to another connection (a relayed one dropped for a direct one)
 * resends every request still unanswered on its new stream; an answer the broker had written to
 * the old stream just before, while that stream still looked open here, never arrived, and the
 * resend is a duplicate of a message the broker no longer holds. Only the resends' ids are looked
 * up, so an answer the producer did get is never sent twice.
 *
 * Bounded in count, bytes and age: a connection move is noticed within milliseconds, so the last
 * few seconds of answers cover it.
 */
import type { KeptResult } from './mailbox.js'

/** Answers kept per producer session, at most. */
const MAX_ANSWERS = 1024
/** Payload bytes kept per producer session, at most (a larger answer is not kept). */
const MAX_BYTES = 4 * 1024 * 1024
/** ms an answer is kept. */
const MAX_AGE = 10_000

export class RecentAnswers {
  /** By message id, oldest first, each with when it was sent. */
  private readonly answers = new Map<string, { result: KeptResult, sentAt: number }>()
  private bytes = 0

  add (result: KeptResult, now: number): void {
    const size = result.payload.byteLength
    if (size > MAX_BYTES) return
    this.delete(result.id)
    this.answers.set(result.id, { result, sentAt: now })
    this.bytes += size
    this.prune(now)
  }

  /** Forgets the answers past MAX_AGE, and the oldest beyond the count and byte bounds. */
  prune (now: number): void {
    for (const [id, a] of this.answers) {
      if (this.answers.size <= MAX_ANSWERS && this.bytes <= MAX_BYTES && now - a.sentAt <= MAX_AGE) break
      this.delete(id)
    }
  }

  /** The answer sent for message `id` within the last MAX_AGE ms. */
  get (id: string, now: number): KeptResult | undefined {
    const a = this.answers.get(id)
    return a != null && now - a.sentAt <= MAX_AGE ? a.result : undefined
  }

  private delete (id: string): void {
    const a = this.answers.get(id)
    if (a == null) return
    this.answers.delete(id)
    this.bytes -= a.result.payload.byteLength
  }
}
