/**
 * The broker's queue logic, pure: routing commands to one queue per (command, group), credit-based
 * round-robin dispatch, in-flight deliveries with deadlines, and settling them (ack, answer, nack,
 * lost consumer, expired deadline). No I/O: the owner of the engine is told what to send through
 * `EngineEvents`, what to keep through `Persistence`, and time comes from an injectable clock, so
 * all of it is unit-tested without a network.
 *
 * Semantics:
 * - A message is copied to every group that has a subscription matching its command; inside a
 *   group, subscriptions compete. A group keeps receiving copies while none of its consumers is
 *   connected (its queue waits for them).
 * - A message whose command no group has subscribed to yet waits, unrouted, in a queue of group ''
 *   for its command; the first group that subscribes to a matching pattern takes that queue whole.
 * - Publisher flow control: a queue with consumers whose ready messages reach `highWater` is
 *   congested until they fall to half of that (or its consumers leave); the owner holds its
 *   producers' confirms meanwhile, so producers cannot outrun the consumers without bound. A queue
 *   without consumers is never congested: messages wait for them, up to `maxMessages`. Nor is a
 *   stalled one, whose consumers completed nothing for `stallTimeout` (a stuck consumer must not
 *   stall every producer): its backlog pages to the store, or counts towards `maxMessages`.
 * - A message with a due time (a delayed publish, or a nacked one backing off before its retry)
 *   waits among the delayed messages and joins the tail of its queue when due (`promote`). One
 *   past its expiry time fails as "expired" when it would be delivered.
 * - Order (with persistence): the engine gives each message its place as it enters a queue
 *   (`pageOrder`) or the delayed messages (`dueOrder`), from one counter; the store keys it by that place.
 * - Paging (with a store): a queue keeps a page of its ready messages in memory, bounded by count
 *   (`pageSize`) and payload bytes (`pageBytes`), and the soonest-due page of delayed messages is
 *   in memory; the rest are only in the store, counted, and read back in order
 *   (`pageNeeded`/`loadPage`, `delayedPageNeeded`/`loadDelayedPage`).
 * - Attempts count deliveries. A nack with requeue, a lost consumer or an expired deadline puts the
 *   message back at the head of its queue; once `maxAttempts` deliveries have failed it fails.
 * - A subscription whose delivery passed its deadline has timed out: it gets nothing new until its
 *   consumer settles something (`resume`), so a stuck or half-open one does not burn messages.
 *
 * Its parts: `Topology` (groups, bindings, routes, unrouted queues, policies), `DelayedMessages`,
 * `Deliveries` (in flight), `Queue`. This file is what ties them together: each operation
 * (publish, settle, expire, page in, purge, delete, sweep) moves a message or a queue between
 * parts and keeps the count of messages held, so it reads better whole than split further.
 */
import { Deliveries } from './deliveries.js'
import { DelayedMessages, type DueOrder } from './delayed-messages.js'
import type { Deleted, EngineEvents, EngineOptions, InFlight, QueueStats } from './engine-types.js'
import { attach, type Queue, type QueuedMessage, type Subscription } from './queue.js'
import { Topology, type Group } from './topology.js'
import type { Persistence } from './persistence.js'
import { groupError, patternError } from '../names.js'
import { compilePattern } from './topic.js'
import { DEFAULT_MAX_GROUPS, DEFAULT_QUEUE_SWEEP_INTERVAL, DEFAULT_STALL_TIMEOUT, MAX_BINDINGS_PER_GROUP, MAX_PATTERNS_PER_SUBSCRIPTION, MAX_PREFETCH } from '../constants.js'
import { LimitReachedError } from '../errors.js'

export type { DueOrder } from './delayed-messages.js'
export type { Deleted, EngineEvents, EngineOptions, InFlight, QueuePolicy, QueueStats, RetryBackoff } from './engine-types.js'

export class QueueEngine<Owner> {
  /** The groups, their bindings and queues, the unrouted queues, and the routes between them. */
  private readonly topology: Topology
  /** Deliveries in flight, by tag and in deadline order. */
  private readonly deliveries = new Deliveries<Owner>()
  /** Congested queues, watched for stalls (`relieveStalled`). */
  private readonly congestedQueues = new Set<Queue>()
  /** Messages waiting for their due time, soonest first (with a store, a page of them in memory). */
  private readonly delayed: DelayedMessages
  private readonly clock: () => number
  /** The next place a message gets in its queue's order (`pageOrder`), or among the delayed ones (`dueOrder`). */
  private nextOrder = 1
  private held = 0
  private lastQueueSweep: number

  private readonly pageSize: number
  private readonly pageBytes: number
  private readonly transientPolicies: boolean

  /** `persistence` keeps the engine's state across a restart (the journal); without it nothing is paged out. */
  constructor (private readonly events: EngineEvents<Owner>, private readonly options: EngineOptions, private readonly persistence?: Persistence) {
    this.clock = options.clock ?? Date.now
    this.lastQueueSweep = this.clock()
    this.pageSize = persistence == null ? Infinity : options.pageSize ?? Infinity
    this.pageBytes = persistence == null ? Infinity : options.pageBytes ?? Infinity
    this.delayed = new DelayedMessages(this.pageSize, this.pageBytes, events)
    this.topology = new Topology(options.policies ?? [], this.clock)
    this.transientPolicies = (options.policies ?? []).some((p) => p.transient === true)
  }

  /** Messages held: waiting (unrouted ones too), delayed, paged out and in flight. */
  get size (): number {
    return this.held
  }

  /**
   * Takes a message and routes it: returns the copies made (one per group whose queue takes it,
   * or one unrouted), or 0, keeping nothing, when the broker is full. `message.attempts` should be 0.
   */
  publish (message: QueuedMessage): number {
    if (this.held >= this.options.maxMessages) return 0
    const queues = this.topology.route(message.command)
    // Every group's copy is made before any is delivered (delivering raises the attempt count)
    // and before any is stored (storing gives the message its own key).
    const copies = queues.length === 1 ? undefined : queues.map((_, i) => i === 0 ? message : { ...message })
    for (let i = 0; i < queues.length; i++) {
      const copy = copies?.[i] ?? message
      queues[i].published++
      this.held++
      this.admit(queues[i], copy)
    }
    for (const queue of queues) {
      this.dispatch(queue)
      if (!queue.congested && queue.ready.length + queue.onDisk >= this.options.highWater && queue.consumers.length > 0 && !queue.stalled) this.congest(queue)
    }
    return queues.length
  }

  /** True when every queue a message with this command goes to keeps it transient by policy (QueuePolicy.transient). */
  transientByPolicy (command: string): boolean {
    return this.transientPolicies && this.topology.route(command).every((q) => q.policy?.transient === true)
  }

  /** True when a message with this command would go to a congested queue. */
  congested (command: string): boolean {
    const queues = this.topology.route(command)
    for (let i = 0; i < queues.length; i++) {
      if (queues[i].congested) return true
    }
    return false
  }

  /**
   * Adds a competing consumer. Throws on an invalid group or pattern, or past a limit (patterns,
   * groups, bindings). `singleActive` makes the queues it takes from single-active (and they stay so).
   */
  subscribe (owner: Owner, subId: number, group: string, patterns: readonly string[], prefetch: number, singleActive = false, expires?: number): Subscription<Owner> {
    if (patterns.length === 0) throw new TypeError('Subscribe to at least one command')
    if (patterns.length > MAX_PATTERNS_PER_SUBSCRIPTION) throw new LimitReachedError(`A subscription names at most ${MAX_PATTERNS_PER_SUBSCRIPTION} patterns; this one names ${patterns.length}`)
    const invalidGroup = groupError(group)
    if (invalidGroup != null) throw new TypeError(invalidGroup)
    for (const p of patterns) {
      const error = patternError(p)
      if (error != null) throw new TypeError(error)
    }
    if (!(prefetch >= 1)) throw new TypeError('Prefetch must be at least 1')
    prefetch = Math.min(prefetch, MAX_PREFETCH)
    if (expires != null && !(Number.isInteger(expires) && expires > 0)) throw new TypeError('A group\'s expiry is a positive number of ms')
    const existing = this.topology.findGroup(group)
    const maxGroups = this.options.maxGroups ?? DEFAULT_MAX_GROUPS
    if (existing == null && this.topology.groupCount >= maxGroups) throw new LimitReachedError(`The broker holds ${maxGroups} groups, its limit: delete unused groups, or subscribe to an existing one`)
    const newBindings = new Set(patterns.filter((p) => existing?.bindings.has(p) !== true)).size
    if ((existing?.bindings.size ?? 0) + newBindings > MAX_BINDINGS_PER_GROUP) throw new LimitReachedError(`Group "${group}" would bind more than ${MAX_BINDINGS_PER_GROUP} patterns`)
    const matchers = patterns.map(compilePattern)
    const sub: Subscription<Owner> = {
      owner,
      subId,
      group,
      patterns,
      matches: (command) => matchers.some((m) => m(command)),
      prefetch,
      unacked: 0,
      queues: [],
      nextQueue: 0,
      singleActive,
      timedOut: false,
      paused: false
    }
    const g = this.topology.group(group)
    for (let i = 0; i < patterns.length; i++) {
      if (this.topology.bind(g, patterns[i], matchers[i])) this.persistence?.bound(group, patterns[i])
    }
    g.subs.add(sub)
    // A subscription sets the expiry of a group it makes, or lengthens one; it never arms expiry on
    // a group that has none (a page opened with `&group=workers` must not doom the real workers).
    if (expires != null && (existing == null || (g.expires != null && expires > g.expires))) {
      g.expires = expires
      this.persistence?.groupExpiry(group, expires)
    }
    for (const queue of g.queues.values()) {
      if (sub.matches(queue.command)) attach(sub, queue)
    }
    // Messages that were waiting for any group to want them now belong to this one.
    for (const queue of this.topology.adoptUnrouted(g, sub)) {
      this.persistence?.adopted(queue)
      this.dispatch(queue)
    }
    this.fill(sub)
    return sub
  }

  /** Removes a subscription; its unsettled deliveries go back to their queues for others. */
  unsubscribe (sub: Subscription<Owner>): void {
    const g = this.topology.findGroup(sub.group)
    if (g?.subs.delete(sub) !== true) return
    if (g.subs.size === 0) g.idleSince = this.clock()
    const queues = [...sub.queues]
    for (const queue of queues) {
      queue.removeConsumer(sub)
      if (queue.consumers.length === 0) this.relieve(queue)
    }
    sub.queues.length = 0
    const taken = this.deliveries.where((d) => d.sub === sub)
    // Back to the head in reverse, so they keep their order.
    for (let i = taken.length - 1; i >= 0; i--) this.takeBack(taken[i], 'consumer disconnected')
    // Every queue it took from: a single-active one now has a new active consumer.
    for (const queue of new Set([...queues, ...taken.map((d) => d.queue)])) this.dispatch(queue)
  }

  /** Settles a delivery without an answer. False when the tag is unknown or not the owner's. */
  ack (owner: Owner, tag: number): boolean {
    const d = this.deliveries.settle(owner, tag)
    if (d == null) return false
    d.queue.completed()
    this.held--
    this.events.completed(d.message, owner)
    this.fill(d.sub)
    return true
  }

  /** Settles a delivery with the consumer's answer. */
  answer (owner: Owner, tag: number, kind: number, payload: Uint8Array): boolean {
    const d = this.deliveries.settle(owner, tag)
    if (d == null) return false
    d.queue.completed()
    this.held--
    this.events.completed(d.message, owner, d.message.wantsAnswer ? { kind, payload } : undefined)
    this.fill(d.sub)
    return true
  }

  /** The consumer failed the delivery: requeue it for another attempt, or fail it now. */
  nack (owner: Owner, tag: number, requeue: boolean, error: string): boolean {
    const d = this.deliveries.settle(owner, tag)
    if (d == null) return false
    d.queue.nacked++
    d.message.lastError = error
    if (requeue && d.message.attempts < this.options.maxAttempts) {
      // A single-active queue keeps its order: its retry goes first, at once.
      const backoff = d.queue.singleActive ? 0 : this.backoff(d.queue, d.message.attempts)
      if (backoff > 0) {
        d.message.dueAt = this.clock() + backoff
        this.delayInOrder(d.queue, d.message)
      } else {
        d.queue.unshift(d.message)
        this.persistence?.requeued(d.message, d.queue)
      }
      this.dispatch(d.queue)
    } else {
      this.fail(d.queue, d.message, error, owner)
    }
    this.fill(d.sub)
    return true
  }

  /** The consumer settled something after a delivery to `sub` timed out: it takes messages again. */
  resume (sub: Subscription<Owner>): void {
    if (!sub.timedOut || this.topology.findGroup(sub.group)?.subs.has(sub) !== true) return
    sub.timedOut = false
    this.fill(sub)
  }

  /** The stream of `sub`'s consumer is not taking bytes: `sub` gets nothing new until `unpause`. */
  pause (sub: Subscription<Owner>): void {
    sub.paused = true
  }

  /** The stream of `sub`'s consumer drained: it takes messages again. */
  unpause (sub: Subscription<Owner>): void {
    if (!sub.paused) return
    sub.paused = false
    if (this.topology.findGroup(sub.group)?.subs.has(sub) === true) this.fill(sub)
  }

  /** Binds a pattern to a group that has no subscription now: a binding kept from an earlier run, so no `bound` event. */
  bind (group: string, pattern: string): void {
    const error = groupError(group) ?? patternError(pattern)
    if (error != null) throw new TypeError(error)
    this.topology.bind(this.topology.group(group), pattern, compilePattern(pattern))
  }

  /** The queue of `command` in `group` (or its unrouted queue when `group` is ''), if it exists. */
  queue (command: string, group: string): Queue | undefined {
    return this.topology.queue(command, group)
  }

  /** The names of the groups whose bindings match `command` (at a start, to hand them unrouted queues). */
  boundGroups (command: string): string[] {
    return this.topology.route(command).filter((q) => q.group !== '').map((q) => q.group)
  }

  /**
   * Puts back a message kept from an earlier run, without events: at the tail of its group's
   * queue, or unrouted when `group` is ''. Its attempts count the deliveries already made.
   */
  restore (message: QueuedMessage, group: string): void {
    this.held++
    const queue = this.topology.restoredQueue(message.command, group)
    queue.published++
    this.enqueue(queue, message, false)
  }

  /** Puts back a delayed message kept from an earlier run (with its `dueOrder`), without events. */
  restoreDelayed (message: QueuedMessage, group: string): void {
    this.held++
    const queue = this.topology.restoredQueue(message.command, group)
    queue.published++
    this.delay(queue, message, false)
  }

  /** Counts `count` delayed messages of a queue that are only in the store, after those restored. */
  restoreDelayedOnDisk (command: string, group: string, count: number): void {
    const queue = this.topology.restoredQueue(command, group)
    queue.published += count
    queue.addDelayed(count)
    this.delayed.restoreOnDisk(count)
    this.held += count
  }

  /** The orders of messages kept from an earlier run go up to `highest`: new ones are given after it. */
  restoreOrder (highest: number): void {
    if (highest >= this.nextOrder) this.nextOrder = highest + 1
  }

  /**
   * Moves messages whose due time has come to the tail of their queues and delivers what it can.
   * Returns when the next one is due, if any.
   */
  promote (): number | undefined {
    const now = this.clock()
    const touched = new Set<Queue>()
    for (let next = this.delayed.takeDue(now); next != null; next = this.delayed.takeDue(now)) {
      this.cameDue(next.queue, next.message)
      touched.add(next.queue)
    }
    for (const queue of touched) this.dispatch(queue)
    this.delayed.askPage()
    return this.delayed.nextDue
  }

  /** When the next delayed message is due, if any. */
  get nextDue (): number | undefined {
    return this.delayed.nextDue
  }

  /**
   * Removes every message of `command` waiting in `group`'s queue (or in every group's, and the
   * unrouted ones, when no group is given), delayed ones included; in-flight ones stay. They leave
   * the engine: the caller forgets them.
   */
  purge (command: string, group?: string): {
    messages: QueuedMessage[]
    paged: Array<{ queue: Queue, after: number }>
    /** Queues with delayed messages only in the store, all after `after`: the caller deletes those stored before the purge. */
    delayed?: { queues: Queue[], after: DueOrder }
  } {
    const emptied = this.empty(this.topology.purgeable(command, group))
    this.delayed.askPage()
    const delayed = emptied.delayed.length > 0 ? { queues: emptied.delayed, after: this.delayed.after } : undefined
    return { messages: emptied.messages, paged: emptied.paged, delayed }
  }

  /**
   * Empties `queues` of what waits in them: ready, paged out, and delayed in memory or only on disk
   * (a page being read for them meanwhile is dropped). Returns the messages that were in memory,
   * what the store still holds (paged after `after`; queues with delayed messages on disk), and how
   * many messages went in all.
   */
  private empty (queues: Queue[]): { messages: QueuedMessage[], paged: Array<{ queue: Queue, after: number }>, delayed: Queue[], count: number } {
    const messages: QueuedMessage[] = []
    const paged: Array<{ queue: Queue, after: number }> = []
    let count = 0
    for (const queue of queues) {
      if (queue.onDisk > 0) paged.push({ queue, after: queue.tail })
      count += queue.onDisk
      messages.push(...queue.purge())
      if (queue.congested) this.relieve(queue)
    }
    const delayed = this.delayed.removeQueues(queues)
    messages.push(...delayed.messages)
    count += delayed.onDiskCount + messages.length
    this.held -= count
    return { messages, paged, delayed: delayed.onDisk, count }
  }

  /**
   * Takes out up to `limit` waiting messages of `command`, from every group's queue and from the
   * unrouted ones (for a replay of dead letters). They leave the engine: the caller settles them.
   */
  withdraw (command: string, limit: number): QueuedMessage[] {
    const out: QueuedMessage[] = []
    for (const queue of this.topology.queuesOf(command)) {
      while (out.length < limit && queue.ready.length > 0) {
        out.push(queue.shift() as QueuedMessage)
        this.held--
      }
      this.askPage(queue) // the rest of a paged queue, for the next call
    }
    return out
  }

  /** The queues that have messages paged out to the store. */
  * pagedQueues (): Iterable<Queue> {
    for (const queue of this.queues()) {
      if (queue.onDisk > 0) yield queue
    }
  }

  /** Every queue: the groups', then the unrouted ones. */
  queues (): Iterable<Queue> {
    return this.topology.queues()
  }

  /** Every message held now: waiting (with the queue, or unrouted) or in flight (with its delivery). */
  * live (): Iterable<{ message: QueuedMessage, queue?: Queue, delivery?: InFlight<Owner> }> {
    for (const queue of this.queues()) {
      for (const message of queue.ready) yield { message, queue }
    }
    for (const { message, queue } of this.delayed) yield { message, queue }
    for (const delivery of this.deliveries.values()) yield { message: delivery.message, queue: delivery.queue, delivery }
  }

  /** Takes back every delivery whose deadline has passed. Returns how many. */
  expire (): number {
    const now = this.clock()
    let count = 0
    for (let d = this.deliveries.nextExpired(now); d != null; d = this.deliveries.nextExpired(now)) {
      count++
      this.events.expired?.(d)
      d.sub.timedOut = true
      this.takeBack(d, 'visibility timeout')
      this.dispatch(d.queue)
    }
    return count
  }

  /**
   * Deletes `group`'s queue of `command`: its waiting, delayed, paged and in-flight messages go
   * (a settle of a dropped delivery then does nothing). Its subscriptions stay: a later message
   * their patterns match makes the queue again. Refused while it has consumers, unless `force`.
   */
  deleteQueue (command: string, group: string, force = false): Deleted<Owner> | undefined {
    const g = this.topology.findGroup(group)
    const queue = g?.queues.get(command)
    if (g == null || queue == null) return undefined
    if (!force && queue.consumers.length > 0) throw new TypeError(`Queue ${command} of group "${group}" has ${queue.consumers.length} consumer(s): unsubscribe them first, or force`)
    g.idleSince = this.clock()
    return { group, wholeGroup: false, queues: [queue], patterns: [], ...this.dropQueues(g, [queue]), ended: [] }
  }

  /**
   * Deletes a group: its bindings, its queues and all their messages. Refused while it has
   * subscriptions, unless `force`: then they are ended (the `ended` event tells their owners).
   */
  deleteGroup (group: string, force = false): Deleted<Owner> | undefined {
    const g = this.topology.findGroup(group)
    if (g == null) return undefined
    if (!force && g.subs.size > 0) throw new TypeError(`Group "${group}" has ${g.subs.size} subscription(s): unsubscribe them first, or force`)
    const ended = [...g.subs] as Array<Subscription<Owner>>
    for (const sub of ended) {
      g.subs.delete(sub)
      for (const queue of sub.queues) queue.removeConsumer(sub)
      sub.queues.length = 0
    }
    const queues = [...g.queues.values()]
    const { messages, dropped } = this.dropQueues(g, queues)
    this.topology.removeGroup(g)
    for (const sub of ended) this.events.ended?.(sub, `group "${group}" was deleted`)
    return { group, wholeGroup: true, queues, patterns: [...g.bindings.keys()], messages, dropped, ended }
  }

  /** A group's expiry kept from an earlier run (no event). */
  restoreGroupExpiry (group: string, expires: number): void {
    this.topology.group(group).expires = expires
  }

  /** Admin use of a group: its idle time starts again. */
  touchGroup (group: string): void {
    const g = this.topology.findGroup(group)
    if (g != null) g.idleSince = this.clock()
  }

  /** Deletes every group idle past its expiry; returns what went. */
  expireGroups (): Array<Deleted<Owner>> {
    const now = this.clock()
    const out: Array<Deleted<Owner>> = []
    for (const g of this.topology.allGroups()) {
      const expires = g.expires ?? g.policyExpires
      if (expires == null || g.subs.size > 0 || now - g.idleSince < expires) continue
      const deleted = this.deleteGroup(g.name)
      if (deleted != null) out.push(deleted)
    }
    return out
  }

  /**
   * Removes every queue that holds nothing (see `Queue.empty`) and did nothing since the previous
   * sweep, which found it empty too: an idle queue goes after one to two sweep intervals, so names
   * that embed an id (`user.<id>.created`) do not grow the broker without bound. Its counters go
   * with it. A later message of its command makes it again, attached to the matching
   * subscriptions. Call it often (the broker does, every housekeeping tick): it sweeps once per
   * `queueSweepInterval`. Returns the queues removed (the owner forgets their stored records).
   */
  sweepQueues (): Queue[] {
    const now = this.clock()
    if (now - this.lastQueueSweep < (this.options.queueSweepInterval ?? DEFAULT_QUEUE_SWEEP_INTERVAL)) return []
    this.lastQueueSweep = now
    const removed = this.topology.removeIdle((queue) => queue.idleSinceLastSweep())
    for (const queue of removed) {
      this.congestedQueues.delete(queue)
      queue.relieve()
    }
    return removed
  }

  /** Takes `queues` of `g` out with every message they hold; returns how many messages, and those that were in memory. */
  private dropQueues (g: Group, queues: Queue[]): { messages: number, dropped: QueuedMessage[] } {
    if (queues.length === 0) return { messages: 0, dropped: [] }
    const gone = new Set(queues)
    const inFlight = this.deliveries.where((d) => gone.has(d.queue))
    for (const d of inFlight) this.deliveries.release(d)
    this.held -= inFlight.length
    const { count, messages } = this.empty(queues)
    this.topology.removeQueues(g, queues)
    this.delayed.askPage()
    // Consumers whose deliveries were dropped have credit again.
    for (const sub of g.subs) this.fill(sub)
    for (const d of inFlight) messages.push(d.message)
    return { messages: inFlight.length + count, dropped: messages }
  }

  stats (): QueueStats[] {
    const out: QueueStats[] = []
    for (const q of this.queues()) {
      out.push({
        command: q.command,
        group: q.group,
        depth: q.ready.length + q.onDisk,
        inFlight: q.inFlight,
        delayed: q.delayed,
        consumers: q.consumers.length,
        published: q.published,
        delivered: q.delivered,
        acked: q.acked,
        nacked: q.nacked,
        failed: q.failed,
        expired: q.expired
      })
    }
    return out
  }

  /** Gives ready messages of `queue` to its subscriptions with credit, round robin. */
  private dispatch (queue: Queue): void {
    while (queue.ready.length > 0) {
      const sub = queue.pickConsumer()
      if (sub == null) return
      const message = this.take(queue)
      if (message != null) this.deliver(sub as Subscription<Owner>, queue, message)
    }
  }

  /** A new message of `queue`: stored (in the queue's order, or in due order when due later) and placed. */
  private admit (queue: Queue, message: QueuedMessage): void {
    const ttl = queue.policy?.ttl
    if (ttl != null && message.expiresAt == null) message.expiresAt = message.timestamp + ttl
    if (queue.policy?.transient === true) message.transient = true
    if (message.dueAt != null && message.dueAt > this.clock()) {
      this.delayInOrder(queue, message)
    } else {
      this.enqueueInOrder(queue, message)
    }
  }

  /**
   * Gives `message` the next place in `queue`'s order, has it stored there, and enqueues it.
   * Without persistence nothing pages, so no place is given (no field added to the hot path's
   * messages); nor to a transient message, which stays in memory (ahead of any paged-out part).
   */
  private enqueueInOrder (queue: Queue, message: QueuedMessage): void {
    if (this.persistence != null && message.transient !== true) {
      message.pageOrder = this.nextOrder++
      message.dueOrder = undefined
      this.persistence.enqueued(message, queue)
    }
    this.enqueue(queue, message)
  }

  /** Gives `message` (which has its `dueAt`) the next place among the delayed ones, has it stored there, and delays it (a transient one: in memory only). */
  private delayInOrder (queue: Queue, message: QueuedMessage): void {
    if (this.persistence != null && message.transient !== true) {
      message.dueOrder = this.nextOrder++
      message.pageOrder = undefined
      this.persistence.delayed(message, queue)
    }
    this.delay(queue, message)
  }

  /** Ready now (in memory, or on disk behind a full page), or delayed when due later. */
  private enqueue (queue: Queue, message: QueuedMessage, announce = true): void {
    const due = message.dueAt == null || message.dueAt <= this.clock()
    // A stored message beyond what is in memory stays on disk when messages before it are there
    // (or when a page is full): pages are read back in stored order, after `tail`.
    const beyond = message.pageOrder != null && message.pageOrder > queue.tail
    if (beyond && (queue.onDisk > 0 || (due && this.pageFull(queue)))) {
      queue.addOnDisk()
      this.events.pagedOut?.(message)
      return
    }
    if (beyond) queue.inMemoryUpTo(message.pageOrder as number)
    // Not due: a retry's backoff stored in the queue's order by an earlier version; it stays in memory.
    if (due) queue.push(message)
    else this.delay(queue, message, announce)
  }

  private pageFull (queue: Queue): boolean {
    return queue.ready.length >= this.pageSize || queue.readyBytes >= this.pageBytes
  }

  /** A message waits for its due time, among the delayed messages (see DelayedMessages.add). */
  private delay (queue: Queue, message: QueuedMessage, announce = true): void {
    queue.addDelayed()
    this.delayed.add(queue, message, announce)
  }

  /**
   * A delayed message came due: it joins the tail of its queue, stored anew in the queue's order
   * (so a restart keeps it there), in memory or behind a paged-out part.
   */
  private cameDue (queue: Queue, message: QueuedMessage): void {
    if (message.dueOrder != null) {
      this.enqueueInOrder(queue, message)
    } else {
      queue.push(message)
    }
  }

  /** The next page of delayed messages, read from the store after the `after` given with `delayedPageNeeded`, in due order. */
  loadDelayedPage (generation: number, page: Array<{ message: QueuedMessage, queue: Queue }>): void {
    const { due, lost } = this.delayed.load(generation, page, this.clock())
    this.held -= lost
    const touched = new Set<Queue>()
    for (const { message, queue } of due) {
      this.cameDue(queue, message)
      touched.add(queue)
    }
    for (const queue of touched) this.dispatch(queue)
    this.delayed.askPage()
  }

  /**
   * Counts `count` ready messages of a queue that are only in the store (after those restored),
   * for a start that reads the first page of each queue and counts the rest.
   */
  restoreOnDisk (command: string, group: string, count: number): void {
    const queue = this.topology.restoredQueue(command, group)
    queue.published += count
    queue.addOnDisk(count)
    this.held += count
  }

  /** The next page of a paged queue, read from the store after `queue.tail`, in order. */
  loadPage (queue: Queue, generation: number, messages: QueuedMessage[]): void {
    if (!queue.pageRead(generation)) return // purged meanwhile: the page is stale
    for (const m of messages) {
      queue.loaded(m.pageOrder)
      if (m.dueAt != null && m.dueAt > this.clock()) this.delay(queue, m)
      else queue.push(m)
    }
    // The store had fewer than counted (a read passes over what is not ours): trust the store.
    if (messages.length === 0 && queue.onDisk > 0) this.held -= queue.dropOnDisk()
    this.dispatch(queue)
    this.askPage(queue)
  }

  private askPage (queue: Queue): void {
    if (queue.onDisk > 0 && !queue.loading && queue.ready.length <= this.pageSize / 2 && queue.readyBytes <= this.pageBytes / 2 && queue.startLoading()) {
      this.events.pageNeeded?.(queue)
    }
  }

  private backoff (queue: Queue, attempts: number): number {
    const retry = queue.policy?.retry ?? this.options.retry
    if (retry == null || retry.delay <= 0) return 0
    return Math.min(retry.maxDelay, retry.delay * retry.factor ** Math.max(0, attempts - 1))
  }

  /** Uses `sub`'s credit on ready messages of its queues, round robin over the queues. */
  private fill (sub: Subscription<Owner>): void {
    const queues = sub.queues
    while (sub.unacked < sub.prefetch) {
      let queue: Queue | undefined
      for (let i = 0; i < queues.length; i++) {
        const idx = (sub.nextQueue + i) % queues.length
        if (queues[idx].ready.length > 0 && queues[idx].accepts(sub)) {
          queue = queues[idx]
          sub.nextQueue = (idx + 1) % queues.length
          break
        }
      }
      if (queue == null) return
      const message = this.take(queue)
      if (message != null) this.deliver(sub, queue, message)
    }
  }

  /** The next ready message of a queue that is not expired; expired ones on the way fail. */
  private take (queue: Queue): QueuedMessage | undefined {
    for (let message = queue.shift(); message != null; message = queue.shift()) {
      if (queue.onDisk > 0) this.askPage(queue)
      if (queue.congested && queue.ready.length + queue.onDisk <= this.options.highWater / 2) this.relieve(queue)
      if (message.expiresAt == null || message.expiresAt > this.clock()) return message
      message.lastError = 'expired'
      queue.expired++
      this.fail(queue, message, 'expired', undefined)
    }
    return undefined
  }

  private congest (queue: Queue): void {
    queue.congest(this.clock())
    this.congestedQueues.add(queue)
  }

  /**
   * Relieves every congested queue whose consumers completed nothing for `stallTimeout`: a stuck
   * consumer no longer holds producers' confirms. It counts again once a delivery of it completes.
   * Call it now and then (the broker does, every housekeeping tick).
   */
  relieveStalled (): void {
    const now = this.clock()
    const timeout = this.options.stallTimeout ?? DEFAULT_STALL_TIMEOUT
    for (const queue of this.congestedQueues) {
      if (queue.stallsAt(now, timeout)) this.relieve(queue)
    }
  }

  private relieve (queue: Queue): void {
    this.congestedQueues.delete(queue)
    if (queue.relieve()) this.events.relieved?.(queue)
  }

  private deliver (sub: Subscription<Owner>, queue: Queue, message: QueuedMessage): void {
    this.events.deliver(this.deliveries.start(sub, queue, message, this.clock() + this.options.visibilityTimeout))
  }

  /** A delivery that ended without being settled: back to the head of its queue, or failed. */
  private takeBack (d: InFlight<Owner>, reason: string): void {
    this.deliveries.release(d)
    d.message.lastError = reason
    if (d.message.attempts < this.options.maxAttempts) {
      d.queue.unshift(d.message)
      this.persistence?.requeued(d.message, d.queue)
    } else {
      this.fail(d.queue, d.message, reason, d.sub.owner)
    }
  }

  private fail (queue: Queue, message: QueuedMessage, error: string, by: Owner | undefined): void {
    queue.failed++
    this.held--
    this.events.failed(message, error, by)
  }
}
