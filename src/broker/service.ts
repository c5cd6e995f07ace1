/**
 * The broker as a libp2p service (js-libp2p's service pattern): registered on a node with
 * `services: { mq: broker(init) }`, started and stopped with it. It accepts producer and consumer
 * streams, runs the queue engine, and relays results to the producers that sent the messages.
 */
import { TypedEventEmitter, serviceCapabilities, type ComponentLogger, type Logger, type Startable, type Stream, type Connection, type PeerId } from '@libp2p/interface'
import {
  ADMIN_PROTOCOL, CONSUMER_PROTOCOL, DEFAULT_ANSWER_RETENTION, DEFAULT_COMPLETED_RETENTION, DEFAULT_DEAD_LETTER_SUFFIX, DEFAULT_DEDUP_WINDOW, DEFAULT_HIGH_WATER, DEFAULT_MAX_ATTEMPTS,
  DEFAULT_MAX_KEPT_ANSWERS, DEFAULT_MAX_MESSAGES, DEFAULT_MAX_STORED_MESSAGES, DEFAULT_PAGE_SIZE, DEFAULT_PAGE_BYTES, DEFAULT_MAX_PAYLOAD, DEFAULT_VISIBILITY_TIMEOUT,
  DEFAULT_RETRY_DELAY, DEFAULT_RETRY_FACTOR, DEFAULT_RETRY_MAX_DELAY, FRAME_OVERHEAD_LIMIT, PRODUCER_PROTOCOL, DEFAULT_MAX_GROUPS, DEFAULT_STALL_TIMEOUT,
  DEFAULT_QUEUE_SWEEP_INTERVAL
} from '../constants.js'
import { PayloadKind } from '../payload.js'
import { ResultStatus } from '../protocol/frames.js'
import { QueueEngine, type Deleted, type DueOrder, type QueuePolicy, type QueueStats, type RetryBackoff } from './engine.js'
import { Journal } from './journal.js'
import { SeenIds } from './seen-ids.js'
import { Schedules, nextRun, timingError, type Schedule } from './schedules.js'
import { MessageState } from './records.js'
import { Mailbox, type KeptResult } from './mailbox.js'
import type { Store } from '../store/store.js'
import { commandError, groupError } from './topic.js'
import { AdminSession, ConsumerSession, ProducerSession, type AnySession, type ProducerSeq, type SessionContext } from './sessions.js'
import type { Queue, QueuedMessage } from './queue.js'
import type { Registrar } from '@libp2p/interface-internal'

export interface BrokerInit {
  /** Largest payload accepted, in bytes. Larger publishes are rejected with a clear error. */
  maxPayload?: number
  /** ms a consumer may hold a delivery before it is given to another consumer. */
  visibilityTimeout?: number
  /** Deliveries of a message before it fails and its producer is told. */
  maxAttempts?: number
  /** Messages held at once; past it, publishes are rejected ("broker full"). */
  maxMessages?: number
  /**
   * Ready messages in a queue with consumers past which producers' confirms are held until the
   * queue is down to half (publisher flow control). Infinity turns it off.
   */
  highWater?: number
  /**
   * ms a congested queue's consumers may complete nothing before it stops holding confirms (it is
   * stalled: one stuck consumer must not stall every producer). Default 2,000.
   */
  stallTimeout?: number
  /** ms an answer waits for its disconnected producer to reconnect. */
  answerRetention?: number
  /** Answers kept per disconnected producer. */
  maxKeptAnswers?: number
  /** ms a disconnected producer session, and a producer-supplied message id, are remembered to drop duplicates. */
  dedupWindow?: number
  /**
   * Where messages, bindings and kept answers are kept; the broker starts from what it holds. A
   * publish is confirmed, and an answer relayed, once the store has synced it. Default: none, the
   * messages live in memory only (nothing survives a restart, finished messages are not listed).
   */
  store?: Store
  /** ms the record of a completed message is kept, to be listed; 0 deletes it at once. */
  completedRetention?: number
  /** Backoff before a nacked message is retried. Default 100 ms doubling to 30 s; `{ delay: 0 }` retries at once. */
  retry?: RetryBackoff
  /** Per-queue settings (retry backoff, TTL) for the commands a pattern matches; the first match applies. */
  queues?: QueuePolicy[]
  /** A failed message is republished to `<command><suffix>` (default '.dlq'); false drops it (its record stays). */
  deadLetter?: string | false
  /**
   * With a store: ready messages a queue keeps in memory; the rest wait only in the store and are
   * read back a page at a time, so a backlog larger than memory fits. Default 5,000. Delayed
   * messages page the same way (the soonest-due page in memory), and so do those no group wants yet.
   */
  pageSize?: number
  /**
   * Groups the broker holds before it refuses a subscription to a new group (default 10,000):
   * every group gets a copy of each message its patterns match, and its bindings are stored.
   */
  maxGroups?: number
  /** With a store: the payload bytes a page holds at most (a queue's ready messages, or the delayed ones in memory). Default 8 MiB. */
  pageBytes?: number
  /**
   * ms between sweeps of idle queues: a queue that holds nothing and did nothing between two
   * sweeps is removed (its counters too), so it goes after one to two intervals. Default 30,000.
   */
  queueSweepInterval?: number
}

export interface BrokerComponents {
  registrar: Registrar
  logger: ComponentLogger
  peerId: PeerId
}

export type ClientRole = 'producer' | 'consumer' | 'admin'

export interface ClientEvent {
  peer: string
  role: ClientRole
  /** Why the stream ended, when it was not an orderly close. */
  error?: Error
}

export interface BrokerEvents {
  'client:join': CustomEvent<ClientEvent>
  'client:leave': CustomEvent<ClientEvent>
  /** A client sent a malformed, unknown or oversized frame; its stream was ended. */
  'client:error': CustomEvent<ClientEvent>
}

export interface ClientInfo {
  peer: string
  role: ClientRole
  /** How it is connected: 'webrtc' (a browser page, usually) or 'tcp'. */
  via: 'webrtc' | 'tcp'
  subscriptions?: Array<{ group: string, patterns: readonly string[], prefetch: number, unacked: number }>
}

/** Messages per second over the last second, per queue. */
export interface QueueRates {
  published: number
  delivered: number
  acked: number
}

export interface BrokerStats {
  /**
   * The queues, with their rates and dead letters (messages waiting in `<command>.dlq`): at most
   * `MAX_STATS_QUEUES` of them, the deepest first (then the most in flight), so the reply fits
   * an admin frame.
   */
  queues: Array<QueueStats & { rates: QueueRates, deadLetters: number }>
  /** Queues the broker holds that `queues` leaves out (the shallowest). */
  moreQueues: number
  clients: ClientInfo[]
  /** Messages held: waiting, unrouted and in flight. */
  messages: number
  /** Answers waiting for their producers to reconnect. */
  keptAnswers: number
}


/** ms between sweeps of old completed records. */
const SWEEP_INTERVAL = 5_000
/** Producer-supplied ids remembered at most (the oldest are forgotten first). */
const MAX_SEEN_IDS = 1_000_000
/** Node's longest timer (a longer one fires at once): a farther due time is woken for twice. */
const MAX_TIMER = 2 ** 31 - 1
/** ms between samples of the queues' counters, for their rates. */
const RATE_INTERVAL = 1_000
/** Queues listed in `stats` at most: each takes up to about 1 KiB of JSON (two 255-byte names), so the reply stays far below the admin client's frame limit. */
export const MAX_STATS_QUEUES = 1_000

export type MessageStateName = 'pending' | 'in process' | 'completed' | 'error'

/** One message as `messages()` lists it. */
export interface MessageInfo {
  id: string
  command: string
  /** The consumer group whose copy this is ('' while no group wants it). */
  group: string
  state: MessageStateName
  producer: string
  /** The consumer that has it (in process) or had it last. */
  consumer?: string
  /** Deliveries so far. */
  attempts: number
  lastError?: string
  /** ms since the epoch. */
  publishedAt: number
  updatedAt: number
}

export interface MessageQuery {
  state?: MessageStateName
  command?: string
  /** Most messages returned (default 100). */
  limit?: number
}

export class BrokerService extends TypedEventEmitter<BrokerEvents> implements Startable {
  readonly [Symbol.toStringTag] = 'p2pmq-broker'
  readonly [serviceCapabilities]: string[] = ['@p2pmq/broker']

  private readonly log: Logger
  private readonly engine: QueueEngine<ConsumerSession>
  private readonly mailbox: Mailbox
  private readonly sessions = new Set<AnySession>()
  /** How each session's peer is connected. */
  private readonly via = new WeakMap<AnySession, 'webrtc' | 'tcp'>()
  /** The open producer sessions of each peer, newest last. */
  private readonly producers = new Map<string, ProducerSession[]>()
  private readonly producerSeqs = new Map<string, ProducerSeq>()
  private readonly schedules = new Schedules()
  private scheduleCounter = 0
  /** Producer-supplied ids seen within the dedup window. */
  private readonly seenIds = new SeenIds(MAX_SEEN_IDS)
  /** Producer sessions holding confirms for congested queues. */
  private readonly blocked = new Set<ProducerSession>()
  /** Command names already validated: publishes reuse a few names, validation costs a split and a regex. */
  private readonly validCommands = new Set<string>()
  private readonly ctx: SessionContext
  private readonly journal?: Journal
  private readonly options: Required<Omit<BrokerInit, 'store' | 'queues'>>
  /** The timer that wakes the engine when the next delayed message is due, and when. */
  private wake?: { timer: ReturnType<typeof setTimeout>, at: number }
  private timer?: ReturnType<typeof setInterval>
  private sampler?: ReturnType<typeof setInterval>
  /** Per queue: counters at the last sample, and the rates since the one before (keyed by the queue, not its name: no string work per queue per second). */
  private readonly counters = new WeakMap<Queue, { at: number, published: number, delivered: number, acked: number }>()
  private readonly rates = new WeakMap<Queue, QueueRates>()
  private lastSweep = 0
  private started = false
  private startedOnce = false

  constructor (private readonly components: BrokerComponents, init: BrokerInit = {}) {
    super()
    this.log = components.logger.forComponent('p2pmq:broker')
    this.options = {
      maxPayload: init.maxPayload ?? DEFAULT_MAX_PAYLOAD,
      visibilityTimeout: init.visibilityTimeout ?? DEFAULT_VISIBILITY_TIMEOUT,
      maxAttempts: init.maxAttempts ?? DEFAULT_MAX_ATTEMPTS,
      maxMessages: init.maxMessages ?? (init.store != null ? DEFAULT_MAX_STORED_MESSAGES : DEFAULT_MAX_MESSAGES),
      pageSize: init.store != null ? init.pageSize ?? DEFAULT_PAGE_SIZE : Infinity,
      pageBytes: init.store != null ? init.pageBytes ?? DEFAULT_PAGE_BYTES : Infinity,
      highWater: init.highWater ?? DEFAULT_HIGH_WATER,
      answerRetention: init.answerRetention ?? DEFAULT_ANSWER_RETENTION,
      maxKeptAnswers: init.maxKeptAnswers ?? DEFAULT_MAX_KEPT_ANSWERS,
      dedupWindow: init.dedupWindow ?? DEFAULT_DEDUP_WINDOW,
      completedRetention: init.completedRetention ?? DEFAULT_COMPLETED_RETENTION,
      retry: init.retry ?? { delay: DEFAULT_RETRY_DELAY, factor: DEFAULT_RETRY_FACTOR, maxDelay: DEFAULT_RETRY_MAX_DELAY },
      deadLetter: init.deadLetter ?? DEFAULT_DEAD_LETTER_SUFFIX,
      maxGroups: init.maxGroups ?? DEFAULT_MAX_GROUPS,
      stallTimeout: init.stallTimeout ?? DEFAULT_STALL_TIMEOUT,
      queueSweepInterval: init.queueSweepInterval ?? DEFAULT_QUEUE_SWEEP_INTERVAL
    }
    this.journal = init.store == null
      ? undefined
      : new Journal(init.store, this.options.completedRetention, { size: this.options.pageSize, bytes: this.options.pageBytes },
        (err) => { this.log.error('writing to the message store failed, publishes are refused until it writes again: %s', err.message) },
        () => { this.log('the message store writes again') })
    this.mailbox = new Mailbox(this.options.answerRetention, this.options.maxKeptAnswers, (r) => { this.journal?.forgetAnswer(r) })
    this.engine = new QueueEngine<ConsumerSession>({
      deliver: (d) => { d.sub.owner.deliver(d) },
      completed: (m, by, answer) => {
        this.journal?.completed(m, by.peer)
        if (answer == null) return
        const result: KeptResult = { id: m.id, consumer: by.peer, status: ResultStatus.Answered, attempts: m.attempts, kind: answer.kind, payload: answer.payload, keptAt: 0 }
        // Only once the completion is on disk (waiting out a full disk): an answered message never
        // comes back after a restart. (If the broker stops first, it comes back and is answered then.)
        this.whenStored((err) => { if (err == null) this.relay(m, result) })
      },
      failed: (m, error, by) => {
        this.log('message %s (%s) failed after %d attempts: %s', m.id, m.command, m.attempts, error)
        this.journal?.failed(m, by?.peer ?? '')
        this.deadLetter(m, error)
        // The producer is told, whether it waits for an answer or only published.
        const result: KeptResult = { id: m.id, consumer: by?.peer ?? '', status: ResultStatus.Failed, attempts: m.attempts, kind: PayloadKind.String, payload: new TextEncoder().encode(error), keptAt: 0 }
        this.whenStored((err) => { if (err == null) this.relay(m, result) })
      },
      delayedUntil: (at) => { this.wakeAt(at) },
      pageNeeded: (queue) => { this.readPage(queue) },
      delayedPageNeeded: (after, generation) => { this.readDelayedPage(after, generation) },
      ended: (sub, reason) => { sub.owner.ended(sub, reason) },
      expired: (d) => { this.log('delivery of %s to %s expired after attempt %d', d.message.id, d.sub.owner.peer, d.message.attempts) },
      relieved: () => {
        for (const s of this.blocked) {
          if (s.unblock()) this.blocked.delete(s)
        }
      }
    }, { ...this.options, policies: init.queues }, this.journal)
    this.ctx = {
      engine: this.engine,
      maxPayload: this.options.maxPayload,
      maxFrameLength: this.options.maxPayload + FRAME_OVERHEAD_LIMIT,
      commandError: (command) => {
        if (this.validCommands.has(command)) return undefined
        const error = commandError(command)
        if (error == null && this.validCommands.size < 10_000) this.validCommands.add(command)
        return error
      },
      producerSession: (peer, session) => {
        const seq = this.producerSeq(peer, session)
        seq.streams++
        return seq
      },
      seenId: (command, id) => this.seenIds.has(command, id, Date.now()),
      rememberId: (command, id) => {
        const until = Date.now() + this.options.dedupWindow
        this.seenIds.add(command, id, until)
        this.journal?.seenId(command, id, until)
      },
      storeSeq: (seq) => {
        seq.storedSeq = seq.lastSeq
        this.journal?.producerSeq(seq.peer, seq.session, seq.lastSeq)
      },
      blocked: (s) => { this.blocked.add(s) },
      whenDurable: (done) => { this.whenDurable(done) },
      storeFailure: () => this.journal?.failure,
      admin: async (peer, method, params) => await this.admin(peer, method, params),
      stats: () => this.stats(),
      closed: (s, err) => { this.closed(s, err) },
      protocolError: (s, err) => {
        this.log.error('%s %s sent a bad frame, stream ended: %s', s.role, s.peer, err.message)
        this.safeDispatchEvent('client:error', { detail: { peer: s.peer, role: s.role, error: err } })
      }
    }
  }

  /** Opens the store and takes back what it holds, before any client is served. */
  private async recover (journal: Journal): Promise<void> {
    await journal.store.open()
    const recovered = await journal.recover(this.engine, {
      keepAnswer: (producer, answer) => { this.mailbox.keep(producer, answer) },
      // As if its streams had just closed: remembered for the dedup window from now.
      producerSeq: (peer, session, lastSeq) => { Object.assign(this.producerSeq(peer, session), { lastSeq, storedSeq: lastSeq, closedAt: Date.now() }) },
      seenId: (command, id, until) => { this.seenIds.add(command, id, until) },
      schedule: (s) => { this.schedules.add(s) },
      warn: (message) => { this.log.error('store: %s', message) }
    })
    // What came due while the broker was down goes to its queues; the rest of the schedule is read as it runs low.
    this.engine.promote()
    const due = earliest(this.engine.nextDue, this.schedules.nextDue)
    if (due != null) this.wakeAt(due)
    if (recovered.messages + recovered.answers > 0) this.log('recovered %d messages and %d kept answers from the store', recovered.messages, recovered.answers)
  }

  /** Calls `done` once what was written is on disk; at once for a broker without a store. */
  private whenDurable (done: (err?: Error) => void): void {
    if (this.journal == null) done()
    else this.journal.whenDurable(done)
  }

  /** Like `whenDurable`, but waits while the store cannot write (an error only if it stops first). */
  private whenStored (done: (err?: Error) => void): void {
    if (this.journal == null) done()
    else this.journal.whenStored(done)
  }

  async start (): Promise<void> {
    if (this.startedOnce) throw new Error('A p2pmq broker service cannot start again after it stopped: build a new node (createBroker)')
    this.startedOnce = true
    if (this.journal != null) await this.recover(this.journal)
    const opts = { maxInboundStreams: 8, maxOutboundStreams: 0 }
    await this.components.registrar.handle(PRODUCER_PROTOCOL, (s, c) => { this.accept('producer', s, c) }, opts)
    await this.components.registrar.handle(CONSUMER_PROTOCOL, (s, c) => { this.accept('consumer', s, c) }, opts)
    await this.components.registrar.handle(ADMIN_PROTOCOL, (s, c) => { this.accept('admin', s, c) }, opts)
    this.sampler = setInterval(() => { this.sampleRates() }, RATE_INTERVAL)
    this.sampler.unref?.()
    const tick = Math.max(10, Math.min(1000, Math.floor(this.options.visibilityTimeout / 4)))
    this.timer = setInterval(() => { this.housekeeping() }, tick)
    this.timer.unref?.()
    this.started = true
  }

  async stop (): Promise<void> {
    this.started = false
    clearInterval(this.timer)
    for (const protocol of [PRODUCER_PROTOCOL, CONSUMER_PROTOCOL, ADMIN_PROTOCOL]) {
      // Unhandling also writes the peer store, which fails on a full disk: the broker stops all the same.
      await this.components.registrar.unhandle(protocol).catch((err: Error) => { this.log.error('unhandling %s failed: %s', protocol, err.message) })
    }
    clearInterval(this.sampler)
    clearTimeout(this.wake?.timer)
    for (const s of [...this.sessions]) s.close()
    // (It waits for the deletions still being cleared from the store.)
    await this.journal?.close()
  }

  isStarted (): boolean {
    return this.started
  }

  /** Queues (with their rates over the last second), clients and totals, as they are now. */
  stats (): BrokerStats {
    const all = this.engine.stats()
    const suffix = this.options.deadLetter
    const deadLetters = new Map<string, number>()
    if (suffix !== false) {
      for (const q of all) {
        if (q.command.endsWith(suffix)) {
          const of = q.command.slice(0, -suffix.length)
          deadLetters.set(of, (deadLetters.get(of) ?? 0) + q.depth)
        }
      }
    }
    const queues = all.length <= MAX_STATS_QUEUES ? all : all.sort((a, b) => b.depth - a.depth || b.inFlight - a.inFlight).slice(0, MAX_STATS_QUEUES)
    return {
      moreQueues: all.length - queues.length,
      queues: queues.map((q) => ({
        ...q,
        rates: this.queueRates(q),
        deadLetters: deadLetters.get(q.command) ?? 0
      })),
      clients: [...this.sessions].map((s) => s instanceof ConsumerSession
        ? {
            peer: s.peer,
            role: s.role,
            via: this.via.get(s) ?? 'tcp',
            subscriptions: s.subscriptions.map((sub) => ({ group: sub.group, patterns: sub.patterns, prefetch: sub.prefetch, unacked: sub.unacked }))
          }
        : { peer: s.peer, role: s.role, via: this.via.get(s) ?? 'tcp' }),
      messages: this.engine.size,
      keptAnswers: this.mailbox.size
    }
  }

  private accept (role: ClientRole, stream: Stream, connection: Connection): void {
    const peer = connection.remotePeer.toString()
    const session = role === 'producer'
      ? new ProducerSession(peer, stream, this.ctx)
      : role === 'consumer' ? new ConsumerSession(peer, stream, this.ctx) : new AdminSession(peer, stream, this.ctx)
    this.sessions.add(session)
    this.via.set(session, connection.remoteAddr.toString().includes('/webrtc') ? 'webrtc' : 'tcp')
    this.log('%s %s joined', role, peer)
    this.safeDispatchEvent('client:join', { detail: { peer, role } })
    if (session instanceof ProducerSession) {
      const list = this.producers.get(peer) ?? []
      list.push(session)
      this.producers.set(peer, list)
      for (const r of this.mailbox.take(peer, Date.now())) session.sendResult(r)
    }
  }

  private closed (s: AnySession, err?: Error): void {
    if (!this.sessions.delete(s)) return
    if (s instanceof ProducerSession) {
      this.blocked.delete(s)
      const list = (this.producers.get(s.peer) ?? []).filter((p) => p !== s)
      if (list.length > 0) this.producers.set(s.peer, list)
      else this.producers.delete(s.peer)
    }
    this.log('%s %s left%s', s.role, s.peer, err != null ? `: ${err.message}` : '')
    this.safeDispatchEvent('client:leave', { detail: { peer: s.peer, role: s.role, error: err } })
  }

  /** The record of a producer session's seqs, made on first use. */
  private producerSeq (peer: string, session: string): ProducerSeq {
    const key = `${peer}/${session}`
    let seq = this.producerSeqs.get(key)
    if (seq == null) {
      seq = { peer, session, lastSeq: 0, storedSeq: 0, streams: 0, closedAt: 0 }
      this.producerSeqs.set(key, seq)
    }
    return seq
  }

  /** Sends a result to the stream the message came on, else to the same peer's newest stream, else keeps it. */
  private relay (m: QueuedMessage, r: KeptResult): void {
    const origin = m.origin as ProducerSession | undefined
    const list = this.producers.get(m.producer)
    const session = origin?.isOpen === true ? origin : list?.[list.length - 1]
    if (session != null) {
      session.sendResult(r)
    } else {
      r.keptAt = Date.now()
      this.journal?.keepAnswer(m.producer, r)
      this.mailbox.keep(m.producer, r)
    }
  }

  /**
   * Messages by state, oldest first within each: waiting and in process from memory, completed and
   * failed from the store. At most `limit` (default 100).
   */
  async messages (query: MessageQuery = {}): Promise<MessageInfo[]> {
    const limit = query.limit ?? 100
    const out: MessageInfo[] = []
    const wanted = (state: MessageStateName, command: string): boolean =>
      (query.state == null || query.state === state) && (query.command == null || query.command === command)
    for (const { message: m, queue, delivery } of this.engine.live()) {
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
        updatedAt: delivery != null ? delivery.deadline - this.options.visibilityTimeout : m.timestamp
      })
      if (out.length >= limit) return out
    }
    // Pending messages paged out to the store, after those in memory.
    if (this.journal != null && (query.state == null || query.state === 'pending')) {
      for (const queue of this.engine.pagedQueues()) {
        if (!wanted('pending', queue.command)) continue
        for (const m of await this.journal.readPage(queue, queue.tail, limit - out.length)) {
          out.push({ id: m.id, command: m.command, group: queue.group, state: 'pending', producer: m.producer, attempts: m.attempts, lastError: m.lastError, publishedAt: m.timestamp, updatedAt: m.timestamp })
        }
        if (out.length >= limit) return out
      }
    }
    for (const [state, stored] of [['completed', MessageState.Completed], ['error', MessageState.Error]] as const) {
      if (query.state != null && query.state !== state) continue
      if (this.journal == null) break
      for await (const r of this.journal.finished(stored)) {
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

  /** Sets the wake-up timer for `at`, unless it is already set for sooner. */
  private wakeAt (at: number): void {
    if (this.wake != null && this.wake.at <= at) return
    clearTimeout(this.wake?.timer)
    const timer = setTimeout(() => {
      this.wake = undefined
      this.publishDueSchedules()
      this.engine.promote()
      const next = earliest(this.engine.nextDue, this.schedules.nextDue)
      if (next != null) this.wakeAt(next)
    }, Math.min(MAX_TIMER, Math.max(0, at - Date.now())))
    timer.unref?.()
    this.wake = { timer, at }
  }

  /** Reads the next page of a paged queue from the store into the engine. */
  private readPage (queue: Queue): void {
    const journal = this.journal
    if (journal == null) return
    const generation = queue.generation
    journal.readPage(queue, queue.tail, this.options.pageSize, this.options.pageBytes).then((page) => {
      this.engine.loadPage(queue, generation, page)
    }, (err: Error) => {
      this.log.error('reading the next page of %s failed, trying again in 1 s: %s', queue.name, err.message)
      const retry = setTimeout(() => {
        if (this.started && generation === queue.generation) this.readPage(queue)
        else this.engine.loadPage(queue, -1, []) // only ends the read: a stale generation
      }, 1000)
      retry.unref?.()
    })
  }

  /** Reads the next page of delayed messages from the store into the engine. */
  private readDelayedPage (after: DueOrder, generation: number): void {
    const journal = this.journal
    if (journal == null) return
    journal.readDelayedPage(after, this.options.pageSize, this.options.pageBytes).then((page) => {
      this.engine.loadDelayedPage(generation, page)
      const due = this.engine.nextDue
      if (due != null) this.wakeAt(due)
    }, (err: Error) => {
      this.log.error('reading the next page of delayed messages failed: %s', err.message)
      // Asked again in a while (a stale generation only clears the read under way).
      setTimeout(() => { if (this.started) this.engine.loadDelayedPage(-1, []) }, 1_000).unref?.()
    })
  }

  /** Publishes a message for every schedule that is due, and stores their next runs. */
  private publishDueSchedules (): void {
    const now = Date.now()
    for (const s of this.schedules.due(now)) {
      const taken = this.engine.publish({
        command: s.command,
        id: `${s.id}@${new Date(now).toISOString()}`,
        headers: { ...s.headers, 'x-schedule': s.id },
        kind: s.kind,
        payload: s.payload,
        producer: s.producer,
        timestamp: now,
        wantsAnswer: false,
        attempts: 0
      })
      if (!taken) this.log.error('scheduled message %s of %s dropped: the broker is full', s.id, s.command)
      if (this.schedules.has(s)) this.journal?.schedule(s)
      else this.journal?.unschedule(s.id)
    }
  }

  /**
   * Registers a message to publish every `every` ms or on a `cron` expression, from `producer`;
   * replaces the schedule with the same id. Throws on an invalid command or timing.
   */
  addSchedule (producer: string, spec: ScheduleSpec): ScheduleInfo {
    const invalid = commandError(spec.command) ?? timingError(spec)
    if (invalid != null) throw new Error(invalid)
    const now = Date.now()
    const nextAt = nextRun(spec, now)
    if (nextAt == null) throw new Error('The cron expression has no run left')
    const s: Schedule = { ...spec, id: spec.id ?? `schedule-${now.toString(36)}-${(++this.scheduleCounter).toString(36)}`, producer, nextAt, createdAt: now }
    this.schedules.add(s)
    this.journal?.schedule(s)
    this.wakeAt(nextAt)
    return scheduleInfo(s)
  }

  removeSchedule (id: string): boolean {
    if (!this.schedules.remove(id)) return false
    this.journal?.unschedule(id)
    return true
  }

  listSchedules (): ScheduleInfo[] {
    return this.schedules.list().map(scheduleInfo)
  }

  /** Republishes a failed message to its dead-letter queue, `<command>.dlq`, with why in its headers. */
  private deadLetter (m: QueuedMessage, error: string): void {
    const suffix = this.options.deadLetter
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
    if (!taken) this.log.error('dead letter %s of %s dropped: the broker is full', m.id, m.command)
  }

  /** Removes the waiting (and delayed) messages of `command`, in one group or all; returns how many. */
  purge (command: string, group?: string): number {
    const held = this.engine.size
    const { messages, paged, delayed } = this.engine.purge(command, group)
    for (const m of messages) this.journal?.purged(m)
    for (const { queue, after } of paged) {
      this.journal?.clearAfter(queue, after).catch((err: Error) => { this.log.error('purging %s from the store failed: %s', queue.name, err.message) })
    }
    if (delayed != null) {
      this.journal?.clearDelayed(delayed.queues, delayed.after).catch((err: Error) => { this.log.error('purging delayed messages of %s from the store failed: %s', command, err.message) })
    }
    const purged = held - this.engine.size
    this.log('purged %d messages of %s%s', purged, command, group != null ? `@${group}` : '')
    return purged
  }

  /**
   * Deletes `group`'s queue of `command` with every message in it (waiting, delayed, paged out,
   * in flight: a consumer's later settle of one does nothing). The group keeps its bindings, so a
   * later message they match makes the queue again; delete the group to stop the copies. Throws
   * when there is no such queue, or it has consumers and `force` is not set. Returns the messages
   * deleted.
   */
  deleteQueue (command: string, group: string, options: { force?: boolean } = {}): number {
    const invalid = commandError(command) ?? groupError(group)
    if (invalid != null) throw new Error(invalid)
    const deleted = this.engine.deleteQueue(command, group, options.force === true)
    if (deleted == null) throw new Error(`No queue of ${command} in group "${group}"`)
    this.cleared(deleted)
    return deleted.messages
  }

  /**
   * Deletes a group: its bindings, all its queues and their messages. Throws when there is no such
   * group, or it has subscriptions and `force` is not set; with `force` they are ended (the
   * consumer gets a SubscriptionError through its `subscription:ended` event).
   */
  deleteGroup (group: string, options: { force?: boolean } = {}): { queues: number, messages: number } {
    const invalid = groupError(group)
    if (invalid != null) throw new Error(invalid)
    const deleted = this.engine.deleteGroup(group, options.force === true)
    if (deleted == null) throw new Error(`No group "${group}"`)
    this.cleared(deleted)
    return { queues: deleted.queues.length, messages: deleted.messages }
  }

  /** Clears from the store what a deletion took out of the engine. */
  private cleared (d: Deleted<ConsumerSession>): void {
    this.journal?.deletedQueues(d.queues).catch((err: Error) => { this.log.error('deleting the queues of group %s from the store failed: %s', d.group, err.message) })
    if (d.wholeGroup) this.journal?.deletedGroup(d.group, d.patterns)
    this.log('deleted %d queue(s) and %d message(s) of group %s', d.queues.length, d.messages, d.group)
  }

  /**
   * Puts dead letters back: up to `limit` waiting messages of `<command>.dlq` (or of every
   * dead-letter queue when no command is given) are republished to the command they failed in,
   * with their attempts reset. Returns how many.
   */
  replayDeadLetters (command?: string, limit = 1000): number {
    const suffix = this.options.deadLetter
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
          for (const h of ['x-dead-letter-command', 'x-dead-letter-error', 'x-dead-letter-attempts']) delete headers[h]
          const copy = { ...m, command: original, headers, timestamp: Date.now(), attempts: 0, key: undefined, pageOrder: undefined, lastError: undefined, dueAt: undefined }
          if (!this.engine.publish(copy)) {
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

  private sampleRates (): void {
    const now = Date.now()
    for (const q of this.engine.queues()) {
      const before = this.counters.get(q)
      if (before != null && now > before.at) {
        const s = (now - before.at) / 1000
        this.rates.set(q, { published: (q.published - before.published) / s, delivered: (q.delivered - before.delivered) / s, acked: (q.acked - before.acked) / s })
      }
      this.counters.set(q, { at: now, published: q.published, delivered: q.delivered, acked: q.acked })
    }
  }

  private queueRates (q: QueueStats): QueueRates {
    const queue = this.engine.queue(q.command, q.group)
    return (queue != null ? this.rates.get(queue) : undefined) ?? { published: 0, delivered: 0, acked: 0 }
  }

  /** The admin protocol's methods. */
  private async admin (peer: string, method: string, params: unknown): Promise<unknown> {
    switch (method) {
      case 'stats': return this.stats()
      case 'messages': return await this.messages(messageQuery(params))
      case 'schedule': return this.addSchedule(peer, scheduleSpec(params))
      case 'schedules': return this.listSchedules()
      case 'unschedule': {
        const id = (params as { id?: unknown } | undefined)?.id
        if (typeof id !== 'string') throw new Error('unschedule needs an id')
        return { removed: this.removeSchedule(id) }
      }
      case 'purge': {
        const p = (params ?? {}) as { command?: unknown, group?: unknown }
        if (typeof p.command !== 'string' || p.command === '') throw new Error('purge needs a command')
        if (p.group != null && typeof p.group !== 'string') throw new Error('group must be a string')
        if (p.group != null) this.engine.touchGroup(p.group as string)
        return { purged: this.purge(p.command, p.group as string | undefined) }
      }
      case 'delete-queue': {
        const p = (params ?? {}) as { command?: unknown, group?: unknown, force?: unknown }
        if (typeof p.command !== 'string' || p.command === '') throw new Error('delete-queue needs a command')
        if (typeof p.group !== 'string' || p.group === '') throw new Error('delete-queue needs a group')
        return { deleted: this.deleteQueue(p.command, p.group, { force: p.force === true }) }
      }
      case 'delete-group': {
        const p = (params ?? {}) as { group?: unknown, force?: unknown }
        if (typeof p.group !== 'string' || p.group === '') throw new Error('delete-group needs a group')
        return this.deleteGroup(p.group, { force: p.force === true })
      }
      case 'replay-dead-letters': {
        const p = (params ?? {}) as { command?: unknown, limit?: unknown }
        if (p.command != null && typeof p.command !== 'string') throw new Error('command must be a string')
        if (p.limit != null && !(Number.isInteger(p.limit) && (p.limit as number) > 0)) throw new Error('limit must be a positive integer')
        return { replayed: this.replayDeadLetters(p.command as string | undefined, p.limit as number | undefined) }
      }
      default: throw new Error(`Unknown admin method "${method}"`)
    }
  }

  private housekeeping (): void {
    this.engine.expire()
    this.engine.relieveStalled()
    for (const deleted of this.engine.expireGroups()) this.cleared(deleted)
    const now = Date.now()
    if (now - this.lastSweep >= SWEEP_INTERVAL) {
      this.lastSweep = now
      this.journal?.sweep(now).catch((err: Error) => { this.log.error('removing old completed records failed: %s', err.message) })
    }
    const removed = this.engine.sweepQueues()
    if (removed.length > 0) {
      this.log('removed %d idle empty queue(s)', removed.length)
      this.journal?.removedQueues(removed).catch((err: Error) => { this.log.error('removing the records of idle queues failed: %s', err.message) })
    }
    this.mailbox.sweep(now)
    this.seenIds.sweep(now, (command, id) => { this.journal?.forgetSeenId(command, id) })
    for (const [key, seq] of this.producerSeqs) {
      if (seq.streams === 0 && now - seq.closedAt > this.options.dedupWindow) {
        this.producerSeqs.delete(key)
        if (seq.storedSeq > 0) this.journal?.forgetProducerSeq(seq.peer, seq.session)
      }
    }
  }
}

const STATES: readonly MessageStateName[] = ['pending', 'in process', 'completed', 'error']

/** A periodic message to register: the payload as `encodePayload` gives it. */
export interface ScheduleSpec {
  /** Replaces the schedule with this id; made up when not given. */
  id?: string
  command: string
  headers?: Record<string, string>
  kind: number
  payload: Uint8Array
  every?: number
  cron?: string
}

/** A schedule as it is listed. */
export interface ScheduleInfo {
  id: string
  command: string
  producer: string
  every?: number
  cron?: string
  /** The next run and when it was registered (ms since the epoch). */
  nextAt: number
  createdAt: number
}

function scheduleInfo (s: Schedule): ScheduleInfo {
  return { id: s.id, command: s.command, producer: s.producer, every: s.every, cron: s.cron, nextAt: s.nextAt, createdAt: s.createdAt }
}

function earliest (a: number | undefined, b: number | undefined): number | undefined {
  return a == null ? b : b == null ? a : Math.min(a, b)
}

/** Checks a `schedule` request: `{ id?, command, every? | cron?, headers?, kind, data }` (data: base64 of the payload bytes). */
function scheduleSpec (params: unknown): ScheduleSpec {
  const p = (params ?? {}) as Record<string, unknown>
  if (typeof p.command !== 'string') throw new Error('schedule needs a command')
  if (p.id != null && (typeof p.id !== 'string' || p.id === '')) throw new Error('id must be a non-empty string')
  if (p.every != null && typeof p.every !== 'number') throw new Error('every must be a number of ms')
  if (p.cron != null && typeof p.cron !== 'string') throw new Error('cron must be a string')
  if (!(Number.isInteger(p.kind) && (p.kind as number) >= 0 && (p.kind as number) <= 3) || typeof p.data !== 'string') throw new Error('schedule needs the payload: kind (0-3) and data (base64)')
  const headers = p.headers as Record<string, string> | undefined
  if (headers != null && (typeof headers !== 'object' || Object.values(headers).some((v) => typeof v !== 'string'))) throw new Error('headers must map strings to strings')
  return { id: p.id as string | undefined, command: p.command, every: p.every as number | undefined, cron: p.cron as string | undefined, headers, kind: p.kind as number, payload: new Uint8Array(Buffer.from(p.data, 'base64')) }
}

/** Checks a `messages` request's parameters. */
function messageQuery (params: unknown): MessageQuery {
  const p = (params ?? {}) as Record<string, unknown>
  if (typeof p !== 'object') throw new Error('messages takes an object')
  if (p.state != null && !STATES.includes(p.state as MessageStateName)) throw new Error(`state must be one of ${STATES.join(', ')}`)
  if (p.command != null && typeof p.command !== 'string') throw new Error('command must be a string')
  if (p.limit != null && !(Number.isInteger(p.limit) && (p.limit as number) > 0)) throw new Error('limit must be a positive integer')
  return { state: p.state as MessageStateName | undefined, command: p.command as string | undefined, limit: p.limit as number | undefined }
}

/** The broker service factory: `createLibp2p({ services: { mq: broker() } })`. */
export function broker (init: BrokerInit = {}): (components: BrokerComponents) => BrokerService {
  return (components) => new BrokerService(components, init)
}
