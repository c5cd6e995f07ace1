/**
 * What the broker knows of its producers: their open streams (to relay results to), each
 * session's highest seq (to drop resends), the ids they supplied (to drop duplicates), the
 * sessions holding confirms for congested queues, and the answers kept for those not connected
 * or not reading them.
 */
import { MAX_PRODUCER_WINDOW } from '../constants.js'
import { Mailbox, type KeptResult } from './mailbox.js'
import { RecentAnswers } from './recent-answers.js'
import { SeenIds } from './seen-ids.js'
import type { Journal } from './journal.js'
import type { QueuedMessage } from './queue.js'
import type { ProducerSession } from './sessions.js'
import type { LimitLog } from './peer-limits.js'

/** Producer-supplied ids remembered at most (the oldest are forgotten first). */
const MAX_SEEN_IDS = 1_000_000
/**
 * Unsent bytes past which a producer stream waiting for `drain` is behind: its answers are kept
 * in the mailbox (bounded per peer) until it drains, not in memory without bound.
 */
const MAX_UNREAD_ANSWER_BYTES = 16 * 1024 * 1024

/**
 * A producer session's highest seq taken. A producer resends its unconfirmed messages in seq
 * order on a new stream, so a Publish whose seq is not above this one is a resent duplicate.
 */
export interface ProducerSeq {
  readonly peer: string
  readonly session: string
  lastSeq: number
  /** The lastSeq the store has (so resends are dropped after a broker restart too). */
  storedSeq: number
  /** The lastSeq read back from the store at the start (0: none): transient messages up to it were lost with the broker. */
  restoredSeq: number
  /** Transient seqs up to `restoredSeq` taken again since the start. */
  retaken?: Set<number>
  /** Producer streams of this session open now; the record is kept while any is. */
  streams: number
  /** When the last of them closed. */
  closedAt: number
  /** The answers sent to its streams last, for resends of requests whose answer was lost on the way. */
  readonly answered: RecentAnswers
}

export interface ProducerLimits {
  /** ms a disconnected producer session, and a producer-supplied message id, are remembered. */
  dedupWindow: number
  /** ms an answer waits for its disconnected producer to reconnect. */
  answerRetention: number
  /** Answers kept per producer away or behind. */
  maxKeptAnswers: number
  /** Payload bytes of the answers kept per producer away or behind. */
  maxKeptAnswerBytes: number
}

export class ProducerRegistry {
  /** The open producer sessions of each peer, newest last. */
  private readonly streams = new Map<string, ProducerSession[]>()
  private readonly seqs = new Map<string, ProducerSeq>()
  /** Producer-supplied ids seen within the dedup window. */
  private readonly seenIds = new SeenIds(MAX_SEEN_IDS)
  /** Producer sessions holding confirms for congested queues. */
  private readonly blocked = new Set<ProducerSession>()
  private readonly mailbox: Mailbox

  /** Producer streams that did not take their answers: theirs wait in the mailbox until they drain. */
  private readonly behind = new Set<ProducerSession>()

  constructor (private readonly journal: Journal | undefined, private readonly limits: ProducerLimits, private readonly limitLog: LimitLog) {
    this.mailbox = new Mailbox(limits.answerRetention, limits.maxKeptAnswers, (r) => { this.journal?.forgetAnswer(r) }, limits.maxKeptAnswerBytes, (producer) => {
      this.limitLog.reached(producer, 'kept-answers', `more than ${limits.maxKeptAnswers} answers or ${limits.maxKeptAnswerBytes} bytes kept for it (maxKeptAnswers, maxKeptAnswerBytes): the oldest are dropped`)
    })
  }

  /** Answers waiting for their producers to reconnect. */
  get keptAnswers (): number {
    return this.mailbox.size
  }

  /** A producer stream opened (its answers come once it says Hello). */
  opened (session: ProducerSession): void {
    const list = this.streams.get(session.peer) ?? []
    list.push(session)
    this.streams.set(session.peer, list)
  }

  /**
   * A producer stream said Hello: it is a stream of producer session `name` (counted as one), and
   * gets the answers kept for that session, those kept for any session of its peer, and those of
   * its peer's sessions that have no stream open (a producer restarted on a kept identity gets them
   * as `result` events). Another process sharing the peer ID and connected now keeps its own.
   */
  hello (stream: ProducerSession, name: string): ProducerSeq {
    const seq = this.session(stream.peer, name)
    const wanted = (r: KeptResult): boolean => forSession(name)(r) || (this.seqs.get(`${stream.peer}/${r.session as string}`)?.streams ?? 0) === 0
    for (const r of this.mailbox.take(stream.peer, Date.now(), wanted)) stream.sendResult(r)
    return seq
  }

  closed (session: ProducerSession): void {
    this.blocked.delete(session)
    this.behind.delete(session)
    const list = (this.streams.get(session.peer) ?? []).filter((p) => p !== session)
    if (list.length > 0) this.streams.set(session.peer, list)
    else this.streams.delete(session.peer)
  }

  /** The record of a producer session's highest seq, shared by its streams over reconnects; counts the caller as one of them. */
  session (peer: string, session: string): ProducerSeq {
    const seq = this.seq(peer, session)
    seq.streams++
    return seq
  }

  /** Writes `seq.lastSeq` to the store. */
  storeSeq (seq: ProducerSeq): void {
    seq.storedSeq = seq.lastSeq
    this.journal?.producerSeq(seq.peer, seq.session, seq.lastSeq)
  }

  /** True when this producer-supplied id was seen for this command within the dedup window. */
  seenId (command: string, id: string): boolean {
    return this.seenIds.has(command, id, Date.now())
  }

  /** Remembers a producer-supplied id of a message the broker took (in the store too unless the message is transient). */
  rememberId (command: string, id: string, transient: boolean): void {
    const until = Date.now() + this.limits.dedupWindow
    this.seenIds.add(command, id, until)
    if (!transient) this.journal?.seenId(command, id, until)
  }

  /** Producer streams holding confirms for congested queues now. */
  get held (): number {
    return this.blocked.size
  }

  /** The session holds confirms for congested queues; its `unblock()` is called when one is relieved. */
  block (session: ProducerSession): void {
    this.blocked.add(session)
  }

  /** A congested queue was relieved: the sessions no longer held send their confirms. */
  relieved (): void {
    for (const s of this.blocked) {
      if (s.unblock()) this.blocked.delete(s)
    }
  }

  /**
   * Sends a result to the newest stream of the producer session the message came from (after a
   * reconnect the older one is dead to the producer, even while it still looks open here), unless
   * that stream is behind; else keeps it for that session: other processes may share the peer ID,
   * and would drop it. Only a message whose session is unknown (stored by an older version, or
   * published by the broker itself) goes to the peer's newest stream that said Hello, or is kept
   * for any of its sessions.
   */
  relay (m: QueuedMessage, r: KeptResult): void {
    const origin = m.session
    const list = this.streams.get(m.producer)
    const stream = list?.findLast(origin != null ? (s) => s.producerSeq?.session === origin : (s) => s.producerSeq != null)
    if (stream != null && !this.isBehind(stream)) {
      stream.sendResult(r)
      stream.producerSeq?.answered.add(r, Date.now())
    } else {
      r.keptAt = Date.now()
      if (origin != null) r.session = origin
      if (m.transient !== true) this.journal?.keepAnswer(m.producer, r)
      this.mailbox.keep(m.producer, r)
    }
  }

  /** A kept answer read back from the store. */
  recoveredAnswer (producer: string, answer: KeptResult): void {
    this.mailbox.keep(producer, answer)
  }

  /** A session's seq read back from the store: as if its streams had just closed, remembered for the dedup window from now. */
  recoveredSeq (peer: string, session: string, lastSeq: number): void {
    Object.assign(this.seq(peer, session), { lastSeq, storedSeq: lastSeq, restoredSeq: lastSeq, closedAt: Date.now() })
  }

  /**
   * True when `session` does not take its answers: it waits for `drain` with more than
   * MAX_UNREAD_ANSWER_BYTES unsent (from then until `drained`, its answers go to the mailbox).
   */
  private isBehind (session: ProducerSession): boolean {
    if (this.behind.has(session)) return true
    const channel = session.channel
    if (!channel.congested || channel.buffered <= MAX_UNREAD_ANSWER_BYTES) return false
    this.behind.add(session)
    this.limitLog.reached(session.peer, 'unread-answers', `its producer stream left ${channel.buffered} bytes of answers unread: the next wait in its mailbox until it reads`)
    return true
  }

  /** A producer stream took what was sent to it: the answers kept meanwhile follow. */
  drained (session: ProducerSession): void {
    if (!this.behind.delete(session)) return
    const now = Date.now()
    for (const r of this.mailbox.take(session.peer, now, forSession(session.producerSeq?.session))) {
      session.sendResult(r)
      session.producerSeq?.answered.add(r, now)
    }
  }

  /** A producer-supplied id read back from the store. */
  recoveredId (command: string, id: string, until: number): void {
    this.seenIds.add(command, id, until)
  }

  /** Forgets expired kept answers, ids past the dedup window, sessions closed longer than it, and their answers sent more than 10 s ago. */
  sweep (now: number): void {
    this.mailbox.sweep(now)
    this.seenIds.sweep(now, (command, id) => { this.journal?.forgetSeenId(command, id) })
    for (const [key, seq] of this.seqs) {
      // (A session's answers are otherwise pruned only as it gets new ones.)
      seq.answered.prune(now)
      if (seq.streams === 0 && now - seq.closedAt > this.limits.dedupWindow) {
        this.seqs.delete(key)
        if (seq.storedSeq > 0) this.journal?.forgetProducerSeq(seq.peer, seq.session)
      }
    }
  }

  /** The record of a producer session's seqs, made on first use. */
  private seq (peer: string, session: string): ProducerSeq {
    const key = `${peer}/${session}`
    let seq = this.seqs.get(key)
    if (seq == null) {
      seq = { peer, session, lastSeq: 0, storedSeq: 0, restoredSeq: 0, streams: 0, closedAt: 0, answered: new RecentAnswers() }
      this.seqs.set(key, seq)
    }
    return seq
  }
}

/** Kept answers a stream of producer session `name` takes: its own, and those whose session is unknown. */
function forSession (name: string | undefined): (r: KeptResult) => boolean {
  return (r) => r.session == null || r.session === name
}

/**
 * True when publish `n` of session `seq` is a resend of one the broker took, which it keeps no
 * second copy of. A transient one at or below the seq read back at the start was lost with the
 * broker: it is taken again, once (recorded here). Within a producer's window of that seq only:
 * a seq further back was confirmed or answered long ago.
 */
export function isResend (seq: ProducerSeq, n: number, transient: boolean): boolean {
  if (n > seq.lastSeq) return false
  if (!transient || n > seq.restoredSeq || n <= seq.restoredSeq - MAX_PRODUCER_WINDOW) return true
  seq.retaken ??= new Set()
  if (seq.retaken.has(n)) return true
  seq.retaken.add(n)
  return false
}
