/**
 * The broker as a libp2p service (js-libp2p's service pattern): registered on a node with
 * `services: { mq: broker(init) }`, started and stopped with it. It holds the options, accepts
 * producer, consumer and admin streams, and composes the parts that do the work: the queue engine
 * and its journal, the producer registry (relay of results, kept answers, dedup), the scheduler,
 * dead letters, deletions, the admin handler table and the stats.
 */
import { TypedEventEmitter, serviceCapabilities, type ComponentLogger, type Logger, type Startable, type Stream, type Connection, type PeerId } from '@libp2p/interface'
import { ADMIN_PROTOCOL, CONSUMER_PROTOCOL, PRODUCER_PROTOCOL } from '../constants.js'
import { brokerOptions, type BrokerInit, type BrokerOptions } from './options.js'
import { PayloadKind } from '../payload.js'
import { ResultStatus } from '../protocol/frames.js'
import { connectionVia } from '../relay-address.js'
import { QueueEngine, type DueOrder } from './engine.js'
import { Journal } from './journal.js'
import { Scheduler } from './schedules.js'
import type { KeptResult } from './mailbox.js'
import { ConsumerSession, ProducerSession, SessionLimits, type AnySession, type Durability, type SessionParts } from './sessions.js'
import { AdminSession } from './admin-session.js'
import { ProducerRegistry } from './producers.js'
import { LimitLog, PeerLimits } from './peer-limits.js'
import { DeadLetters } from './dead-letters.js'
import { Deletions } from './deletions.js'
import { AdminDispatcher } from './admin-handlers.js'
import { queryMessages } from './message-query.js'
import { RATE_INTERVAL, RateSampler, brokerStats } from './stats.js'
import type { BrokerEvents, BrokerStats, ClientInfo, ClientRole, DeleteOptions, MessageInfo, MessageQuery, ScheduleInfo, ScheduleSpec } from './api.js'
import type { Queue, QueuedMessage } from './queue.js'
import type { ConnectionManager, Registrar } from '@libp2p/interface-internal'
import { AccessControl, connectionRefusal } from './acl-control.js'
import { PermissionDeniedError } from '../errors.js'
import type { AclMode } from './api.js'
import type { Registry } from 'prom-client'

export type { BrokerInit } from './options.js'

export interface BrokerComponents {
  registrar: Registrar
  connectionManager: ConnectionManager
  logger: ComponentLogger
  peerId: PeerId
}

/** ms between two readings of the store's size on disk, for the stats (a walk of its directory). */
const STORE_SIZE_INTERVAL = 10_000
/** ms between sweeps of old completed records. */
const SWEEP_INTERVAL = 5_000
/** Node's longest timer (a longer one fires at once): a farther due time is woken for twice. */
const MAX_TIMER = 2 ** 31 - 1
/** A broker without a store: what it holds is as durable as it gets at once. */
const IN_MEMORY: Durability = { whenDurable: (done) => { done() }, failure: undefined }

export class BrokerService extends TypedEventEmitter<BrokerEvents> implements Startable {
  readonly [Symbol.toStringTag] = 'p2pmq-broker'
  readonly [serviceCapabilities]: string[] = ['@p2pmq/broker']

  private readonly log: Logger
  private readonly engine: QueueEngine<ConsumerSession>
  private readonly journal?: Journal
  private readonly producers: ProducerRegistry
  private readonly scheduler: Scheduler
  private readonly deadLetters: DeadLetters
  private readonly deletions: Deletions
  private readonly rates: RateSampler
  private readonly sessions = new Set<AnySession>()
  /** How each session's peer is connected. */
  private readonly via = new WeakMap<AnySession, ClientInfo['via']>()
  /** The connection each session is on (its remote address decides protected mode's rights). */
  private readonly connectionOf = new WeakMap<AnySession, Connection>()
  /** Who may do what. */
  readonly access: AccessControl
  /** Where its metrics are, when it was given a registry. */
  readonly metrics?: Registry
  private readonly stopWatchingAcl: () => void
  /** What sessions work with. */
  private readonly parts: SessionParts
  private readonly peers: PeerLimits
  private readonly options: BrokerOptions
  /** The timer that wakes the engine when the next delayed message is due, and when. */
  private wake?: { timer: ReturnType<typeof setTimeout>, at: number }
  private timer?: ReturnType<typeof setInterval>
  private sampler?: ReturnType<typeof setInterval>
  private lastSweep = 0
  private version = 'unknown'
  private startedAt = Date.now()
  /** The store's size on disk at its last reading (STORE_SIZE_INTERVAL). */
  private diskBytes?: number
  private sizer?: ReturnType<typeof setInterval>
  private started = false
  private startedOnce = false

  constructor (private readonly components: BrokerComponents, init: BrokerInit = {}) {
    super()
    this.log = components.logger.forComponent('p2pmq:broker')
    this.options = brokerOptions(init)
    this.metrics = init.metrics
    this.access = init.acl instanceof AccessControl ? init.acl : AccessControl.of(init.acl)
    this.access.onDenied = (d) => {
      this.log('refused %s%s: %s%s', d.role != null ? `${d.role} ` : '', d.peer, d.reason, d.suppressed > 0 ? ` (and ${d.suppressed} more refusals in the last minute)` : '')
      this.safeDispatchEvent('client:denied', { detail: d })
    }
    this.stopWatchingAcl = this.access.onChange(() => { this.regrant() })
    this.journal = init.store == null
      ? undefined
      : new Journal(init.store, this.options.completedRetention, { size: this.options.pageSize, bytes: this.options.pageBytes },
        (err) => { this.log.error('writing to the message store failed, publishes are refused until it writes again: %s', err.message) },
        () => { this.log('the message store writes again') })
    const limitLog = new LimitLog((peer, limit, message) => { this.limitReached(peer, limit, message) })
    this.producers = new ProducerRegistry(this.journal, this.options, limitLog)
    this.engine = new QueueEngine<ConsumerSession>({
      deliver: (d) => { d.sub.owner.deliver(d) },
      completed: (m, by, answer) => {
        this.journal?.completed(m, by.peer)
        this.requestLeft(m)
        if (answer == null) return
        const result: KeptResult = { id: m.id, consumer: by.peer, status: ResultStatus.Answered, attempts: m.attempts, kind: answer.kind, payload: answer.payload, keptAt: 0 }
        // Only once the completion is on disk (waiting out a full disk): an answered message never
        // comes back after a restart. (If the broker stops first, it comes back and is answered then.)
        this.relayWhenStored(m, result)
      },
      failed: (m, error, by) => {
        this.log('message %s (%s) failed after %d attempts: %s', m.id, m.command, m.attempts, error)
        this.journal?.failed(m, by?.peer ?? '')
        this.requestLeft(m)
        this.deadLetters.add(m, error)
        // The producer is told, whether it waits for an answer or only published.
        const result: KeptResult = { id: m.id, consumer: by?.peer ?? '', status: ResultStatus.Failed, attempts: m.attempts, kind: PayloadKind.String, payload: new TextEncoder().encode(error), keptAt: 0 }
        this.relayWhenStored(m, result)
      },
      pagedOut: (m) => { this.requestLeft(m) },
      delayedUntil: (at) => { this.wakeAt(at) },
      pageNeeded: (queue) => { this.readPage(queue) },
      delayedPageNeeded: (after, generation) => { this.readDelayedPage(after, generation) },
      ended: (sub, reason) => { sub.owner.ended(sub, reason) },
      expired: (d) => { this.log('delivery of %s to %s expired after attempt %d', d.message.id, d.sub.owner.peer, d.message.attempts) },
      relieved: () => { this.producers.relieved() }
    }, { ...this.options, policies: init.queues }, this.journal)
    this.scheduler = new Scheduler(this.engine, this.journal, (at) => { this.wakeAt(at) }, this.log)
    this.deadLetters = new DeadLetters(this.engine, this.journal, this.options.deadLetter, this.log)
    this.peers = new PeerLimits(this.options, limitLog)
    this.deletions = new Deletions(this.engine, this.journal, this.log, (messages) => { for (const m of messages) this.requestLeft(m) })
    this.rates = new RateSampler(this.engine)
    this.parts = {
      engine: this.engine,
      limits: new SessionLimits(this.options.maxPayload, this.options.maxPartialFrameBytes),
      peers: this.peers,
      producers: this.producers,
      durability: this.journal ?? IN_MEMORY,
      admin: new AdminDispatcher({
        engine: this.engine,
        scheduler: this.scheduler,
        deletions: this.deletions,
        deadLetters: this.deadLetters,
        stats: () => this.stats(),
        messages: async (query) => await this.messages(query),
        acl: () => this.access.acl.info(),
        changeAcl: async (kind, raw, peer) => await this.access.change(kind, raw, peer)
      }),
      denials: { denied: (peer, reason, role) => { this.access.denied(peer, reason, role) } },
      registry: {
        closed: (s, err) => { this.closed(s, err) },
        badFrame: (s, err) => {
          this.log.error('%s %s sent a bad frame, stream ended: %s', s.role, s.peer, err.message)
          this.safeDispatchEvent('client:error', { detail: { peer: s.peer, role: s.role, error: err } })
        }
      }
    }
  }

  /** Opens the store and takes back what it holds, before any client is served. */
  private async recover (journal: Journal): Promise<void> {
    await journal.store.open()
    const recovered = await journal.recover(this.engine, {
      keepAnswer: (producer, answer) => { this.producers.recoveredAnswer(producer, answer) },
      producerSeq: (peer, session, lastSeq) => { this.producers.recoveredSeq(peer, session, lastSeq) },
      seenId: (command, id, until) => { this.producers.recoveredId(command, id, until) },
      schedule: (s) => { this.scheduler.recovered(s) },
      warn: (message) => { this.log.error('store: %s', message) }
    })
    // What came due while the broker was down goes to its queues; the rest of the schedule is read as it runs low.
    this.engine.promote()
    const due = earliest(this.engine.nextDue, this.scheduler.nextDue)
    if (due != null) this.wakeAt(due)
    if (recovered.messages + recovered.answers > 0) this.log('recovered %d messages and %d kept answers from the store', recovered.messages, recovered.answers)
  }

  /**
   * Relays a result once what was written is on disk, waiting while the store cannot write (not
   * at all if it stops first); at once without a store, or for a transient message (nothing of it was written).
   */
  private relayWhenStored (m: QueuedMessage, result: KeptResult): void {
    if (this.journal == null || m.transient === true) this.producers.relay(m, result)
    else this.journal.whenStored((err) => { if (err == null) this.producers.relay(m, result) })
  }

  async start (): Promise<void> {
    if (this.startedOnce) throw new Error('A p2pmq broker service cannot start again after it stopped: build a new node (createBroker)')
    this.startedOnce = true
    // An ACL given at load replaces the kept one (its directory exists now: the node's identity is in it).
    await this.access.keep()
    if (this.journal != null) await this.recover(this.journal)
    this.version = (await import('../package-version.js')).packageVersion()
    if (this.metrics != null) {
      // Loaded only here: prom-client takes ~50 ms to load, which a program of clients need not pay.
      const { registerBrokerMetrics } = await import('./metrics.js')
      registerBrokerMetrics(this.metrics, this, { version: this.version, peerId: this.components.peerId.toString() })
    }
    const storeBytes = this.storeBytes
    if (storeBytes != null) {
      const read = (): void => { storeBytes().then((n) => { this.diskBytes = n }, () => {}) }
      read()
      this.sizer = setInterval(read, STORE_SIZE_INTERVAL)
      this.sizer.unref?.()
    }
    // Relayed (limited) connections too: a broker behind NAT is reached only through its relays.
    const opts = { maxInboundStreams: 8, maxOutboundStreams: 0, runOnLimitedConnection: true }
    await this.components.registrar.handle(PRODUCER_PROTOCOL, (s, c) => { this.accept('producer', s, c) }, opts)
    await this.components.registrar.handle(CONSUMER_PROTOCOL, (s, c) => { this.accept('consumer', s, c) }, opts)
    await this.components.registrar.handle(ADMIN_PROTOCOL, (s, c) => { this.accept('admin', s, c) }, opts)
    this.sampler = setInterval(() => { this.rates.sample() }, RATE_INTERVAL)
    this.sampler.unref?.()
    const tick = Math.max(10, Math.min(1000, Math.floor(this.options.visibilityTimeout / 4)))
    this.timer = setInterval(() => { this.housekeeping() }, tick)
    this.timer.unref?.()
    this.startedAt = Date.now()
    this.started = true
  }

  async stop (): Promise<void> {
    this.started = false
    this.stopWatchingAcl()
    clearInterval(this.timer)
    for (const protocol of [PRODUCER_PROTOCOL, CONSUMER_PROTOCOL, ADMIN_PROTOCOL]) {
      // Unhandling also writes the peer store, which fails on a full disk: the broker stops all the same.
      await this.components.registrar.unhandle(protocol).catch((err: Error) => { this.log.error('unhandling %s failed: %s', protocol, err.message) })
    }
    clearInterval(this.sampler)
    clearInterval(this.sizer)
    clearTimeout(this.wake?.timer)
    for (const s of [...this.sessions]) s.close()
    // An ACL change asked for before the stop is kept on disk (its asker's stream is closed by now).
    await this.access.settled()
    // (It waits for the deletions still being cleared from the store.)
    await this.journal?.close()
  }

  /** A request left the broker's memory (answered, failed, deleted, or stored only): its producer no longer has it in flight. */
  private requestLeft (m: QueuedMessage): void {
    if (m.wantsAnswer) this.peers.releaseInFlight(m.producer, 1, m.payload.byteLength)
  }

  /** Logs that `peer` reached a limit, and tells the `peer:limit` listeners (callers say it at most once a minute). */
  limitReached (peer: string, limit: string, message: string): void {
    this.log('limit reached: peer %s: %s', peer, message)
    this.safeDispatchEvent('peer:limit', { detail: { peer, limit, message } })
  }

  isStarted (): boolean {
    return this.started
  }

  /** Queues (with their rates over the last second), clients and totals, as they are now. */
  stats (): BrokerStats {
    const memory = typeof process !== 'undefined' ? process.memoryUsage() : undefined
    return brokerStats(this.engine, this.rates, (queues) => this.deadLetters.counts(queues), this.clients(), this.producers.keptAnswers, {
      version: this.version,
      startedAt: this.startedAt,
      memory: memory != null ? { rss: memory.rss, heapUsed: memory.heapUsed } : undefined,
      storeBytes: this.diskBytes,
      heldProducers: this.producers.held
    })
  }

  /** Whether messages are kept in a store (not in memory only). */
  get hasStore (): boolean {
    return this.journal != null
  }

  /** Reads the bytes the message store takes on disk; undefined without a store on disk. */
  get storeBytes (): (() => Promise<number>) | undefined {
    const store = this.journal?.store
    return store?.diskBytes?.bind(store)
  }

  /** Why the message store is not writing now (a full disk), or undefined. */
  get storeFailure (): Error | undefined {
    return this.journal?.failure
  }

  /** Calls `observer` with the seconds each of the store's batches took to write and sync (nothing without a store). */
  observeStoreWrites (observer: (seconds: number) => void): void {
    this.journal?.observeWrites(observer)
  }

  private clients (): ClientInfo[] {
    return [...this.sessions].map((s) => s instanceof ConsumerSession
      ? {
          peer: s.peer,
          role: s.role,
          via: this.via.get(s) ?? 'tcp',
          subscriptions: s.subscriptions.map((sub) => ({ group: sub.group, patterns: sub.patterns, prefetch: sub.prefetch, unacked: sub.unacked }))
        }
      : { peer: s.peer, role: s.role, via: this.via.get(s) ?? 'tcp' })
  }

  /**
   * Messages by state, oldest first within each: waiting and in process from memory, completed and
   * failed from the store. At most `limit` (default 100).
   */
  async messages (query: MessageQuery = {}): Promise<MessageInfo[]> {
    return await queryMessages(this.engine, this.journal, this.options.visibilityTimeout, query)
  }

  /**
   * Registers a message to publish every `every` ms or on a `cron` expression, from `producer`;
   * replaces the schedule with the same id. Throws InvalidArgumentError on an invalid command or timing.
   */
  addSchedule (producer: string, spec: ScheduleSpec): ScheduleInfo {
    return this.scheduler.add(producer, spec)
  }

  removeSchedule (id: string): boolean {
    return this.scheduler.remove(id)
  }

  listSchedules (): ScheduleInfo[] {
    return this.scheduler.list()
  }

  /** Removes the waiting (and delayed) messages of `command`, in one group or all; returns how many. */
  purge (command: string, group?: string): number {
    return this.deletions.purge(command, group)
  }

  /**
   * Deletes `group`'s queue of `command` with every message in it; the group keeps its bindings.
   * Throws NotFoundError when there is no such queue, ConflictError when it has consumers and
   * `force` is not set. Returns the messages deleted.
   */
  deleteQueue (command: string, group: string, options: DeleteOptions = {}): number {
    return this.deletions.deleteQueue(command, group, options)
  }

  /**
   * Deletes a group: its bindings, all its queues and their messages. Throws NotFoundError when
   * there is no such group, ConflictError when it has subscriptions and `force` is not set; with
   * `force` they are ended (the consumer gets a SubscriptionError through `subscription:ended`).
   */
  deleteGroup (group: string, options: DeleteOptions = {}): { queues: number, messages: number } {
    return this.deletions.deleteGroup(group, options)
  }

  /**
   * Puts dead letters back: up to `limit` waiting messages of `<command>.dlq` (or of every
   * dead-letter queue when no command is given) are republished to the command they failed in,
   * with their attempts reset. Returns how many.
   */
  replayDeadLetters (command?: string, limit = 1000): number {
    return this.deadLetters.replay(command, limit)
  }

  /** The access control mode: `protected` (no ACL: only this host's peers), `acl` or `open`. */
  get aclMode (): AclMode {
    return this.access.mode
  }

  private accept (role: ClientRole, stream: Stream, connection: Connection): void {
    const peer = connection.remotePeer.toString()
    const rights = this.access.rights(peer, connection.remoteAddr)
    if (rights.none) {
      // Let in before the ACL changed, or by a node without the ACL's gater.
      this.access.denied(peer, connectionRefusal(this.access.mode, rights, connection.remoteAddr), role)
      stream.abort(new PermissionDeniedError('The broker\'s ACL grants this peer nothing'))
      return
    }
    const session = role === 'producer'
      ? new ProducerSession(peer, stream, this.parts, rights)
      : role === 'consumer' ? new ConsumerSession(peer, stream, this.parts, rights) : new AdminSession(peer, stream, this.parts, rights)
    this.sessions.add(session)
    this.connectionOf.set(session, connection)
    this.via.set(session, connectionVia(connection.remoteAddr.toString()))
    this.log('%s %s joined', role, peer)
    this.safeDispatchEvent('client:join', { detail: { peer, role } })
    if (session instanceof ProducerSession) this.producers.opened(session)
  }

  /**
   * The ACL changed: every session gets its peer's new rights (ending what they no longer allow),
   * and every peer left with none is disconnected.
   */
  private regrant (): void {
    for (const s of [...this.sessions]) {
      const connection = this.connectionOf.get(s)
      if (connection == null) continue
      const rights = this.access.rights(s.peer, connection.remoteAddr)
      // What it may no longer do is ended first, so the client is told (then its connection is closed below).
      s.regrant(rights)
      if (rights.none) s.close()
    }
    for (const connection of this.components.connectionManager.getConnections()) {
      if (connection.direction !== 'inbound') continue
      const peer = connection.remotePeer.toString()
      const rights = this.access.rights(peer, connection.remoteAddr)
      if (!rights.none) continue
      this.access.denied(peer, connectionRefusal(this.access.mode, rights, connection.remoteAddr))
      connection.close().catch((err: Error) => { connection.abort(err) })
    }
  }

  private closed (s: AnySession, err?: Error): void {
    if (!this.sessions.delete(s)) return
    if (s instanceof ProducerSession) this.producers.closed(s)
    this.log('%s %s left%s', s.role, s.peer, err != null ? `: ${err.message}` : '')
    this.safeDispatchEvent('client:leave', { detail: { peer: s.peer, role: s.role, error: err } })
  }

  /** Sets the wake-up timer for `at`, unless it is already set for sooner. */
  private wakeAt (at: number): void {
    if (this.wake != null && this.wake.at <= at) return
    clearTimeout(this.wake?.timer)
    const timer = setTimeout(() => {
      this.wake = undefined
      this.scheduler.publishDue()
      this.engine.promote()
      const next = earliest(this.engine.nextDue, this.scheduler.nextDue)
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

  private housekeeping (): void {
    this.engine.expire()
    this.engine.relieveStalled()
    for (const deleted of this.engine.expireGroups()) this.deletions.cleared(deleted)
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
    this.producers.sweep(now)
  }
}

function earliest (a: number | undefined, b: number | undefined): number | undefined {
  return a == null ? b : b == null ? a : Math.min(a, b)
}

/** The broker service factory: `createLibp2p({ services: { mq: broker() } })`. */
export function broker (init: BrokerInit = {}): (components: BrokerComponents) => BrokerService {
  return (components) => new BrokerService(components, init)
}
