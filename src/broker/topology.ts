/**
 * Where messages go, part of the engine: the groups with their bindings and queues, the unrouted
 * queue of each command no group wants yet, the queue policies, and routing a command to its
 * queues (cached). Pure state: no I/O, time from the engine's clock.
 */
import { Queue, attach, type Subscription } from './queue.js'
import { patternError } from '../names.js'
import { compilePattern, isWildcard } from './topic.js'
import type { QueuePolicy } from './engine-types.js'

export interface Group {
  readonly name: string
  /** Patterns any subscription of this group has used; they stay bound while the broker runs. */
  readonly bindings: Map<string, (command: string) => boolean>
  readonly subs: Set<Subscription<any>>
  readonly queues: Map<string, Queue>
  /** ms idle before it is deleted: set by a subscription, else by a policy; idle since when. */
  expires?: number
  policyExpires?: number
  idleSince: number
}

/** Commands whose routes are cached at most. */
const MAX_CACHED_ROUTES = 10_000

export class Topology {
  private readonly groups = new Map<string, Group>()
  /** Per command no group wants yet: its messages, in a queue of group ''. */
  private readonly unrouted = new Map<string, Queue>()
  private readonly routes = new Map<string, Queue[]>()
  /**
   * Every bound pattern with the groups that bound it, so routing a command tests each distinct
   * pattern once, not once per group (10,000 groups bound to `#` cost one test).
   */
  private readonly exactBindings = new Map<string, Set<Group>>()
  private readonly wildBindings = new Map<string, { matches: (command: string) => boolean, groups: Set<Group> }>()
  private readonly policies: Array<{ matches: (command: string) => boolean, policy: QueuePolicy }>

  /** Throws on a policy with an invalid pattern. */
  constructor (policies: QueuePolicy[], private readonly clock: () => number) {
    this.policies = policies.map((policy) => {
      const error = patternError(policy.pattern)
      if (error != null) throw new TypeError(`Queue policy: ${error}`)
      return { matches: compilePattern(policy.pattern), policy }
    })
  }

  get groupCount (): number {
    return this.groups.size
  }

  findGroup (name: string): Group | undefined {
    return this.groups.get(name)
  }

  /** The group named `name`, made when needed. */
  group (name: string): Group {
    let g = this.groups.get(name)
    if (g == null) {
      g = { name, bindings: new Map(), subs: new Set(), queues: new Map(), idleSince: this.clock() }
      this.policyExpiry(g, this.policies.find((p) => p.policy.pattern === '#' && p.policy.expires != null && (p.policy.group == null || p.policy.group === name))?.policy)
      this.groups.set(name, g)
    }
    return g
  }

  /** A copy of the groups, to delete some while going through them. */
  allGroups (): Group[] {
    return [...this.groups.values()]
  }

  /** Binds `pattern` to `g`; false when it was bound already. */
  bind (g: Group, pattern: string, matches: (command: string) => boolean): boolean {
    if (g.bindings.has(pattern)) return false
    g.bindings.set(pattern, matches)
    if (isWildcard(pattern)) {
      let b = this.wildBindings.get(pattern)
      if (b == null) this.wildBindings.set(pattern, b = { matches, groups: new Set() })
      b.groups.add(g)
    } else {
      let groups = this.exactBindings.get(pattern)
      if (groups == null) this.exactBindings.set(pattern, groups = new Set())
      groups.add(g)
    }
    this.routes.clear()
    return true
  }

  /** Takes a group out with its bindings (its queues are dropped first: `removeQueues`). */
  removeGroup (g: Group): void {
    for (const pattern of g.bindings.keys()) {
      const wild = this.wildBindings.get(pattern)
      if (wild != null) {
        wild.groups.delete(g)
        if (wild.groups.size === 0) this.wildBindings.delete(pattern)
      }
      const exact = this.exactBindings.get(pattern)
      if (exact != null) {
        exact.delete(g)
        if (exact.size === 0) this.exactBindings.delete(pattern)
      }
    }
    this.groups.delete(g.name)
    this.routes.clear()
  }

  /** The queue of `command` in `group` (or its unrouted queue when `group` is ''), if it exists. */
  queue (command: string, group: string): Queue | undefined {
    return group === '' ? this.unrouted.get(command) : this.groups.get(group)?.queues.get(command)
  }

  /** The queue of `command` in `group` (unrouted when `group` is ''), made when needed (at a start). */
  restoredQueue (command: string, group: string): Queue {
    return group === '' ? this.unroutedQueue(command) : this.queueOf(this.group(group), command)
  }

  /** The queues a message of `command` goes to: one per group that wants it, else its unrouted queue. */
  route (command: string): Queue[] {
    let queues = this.routes.get(command)
    if (queues == null) {
      const matched = new Set(this.exactBindings.get(command))
      for (const b of this.wildBindings.values()) {
        if (b.matches(command)) for (const g of b.groups) matched.add(g)
      }
      queues = []
      for (const g of matched) queues.push(this.queueOf(g, command))
      // A cache, not a record: a flood of distinct commands must not grow it without bound.
      if (this.routes.size >= MAX_CACHED_ROUTES) this.routes.clear()
      if (queues.length === 0) queues.push(this.unroutedQueue(command))
      this.routes.set(command, queues)
    }
    return queues
  }

  /**
   * Messages that were waiting for any group to want them now belong to `g`, which `sub` joined:
   * each unrouted queue whose command `sub` matches changes hands whole (paged part, delayed
   * messages and stored records included), nothing moves. Returns those queues.
   * (A group that has a queue for the command already would have had its messages routed.)
   */
  adoptUnrouted (g: Group, sub: Subscription<any>): Queue[] {
    const adopted: Queue[] = []
    for (const [command, queue] of this.unrouted) {
      if (!sub.matches(command) || g.queues.has(command)) continue
      this.unrouted.delete(command)
      this.routes.delete(command)
      queue.group = g.name
      this.applyPolicy(queue)
      this.policyExpiry(g, queue.policy)
      g.queues.set(command, queue)
      for (const s of g.subs) {
        if (s.matches(command)) attach(s, queue)
      }
      adopted.push(queue)
    }
    return adopted
  }

  /** The queues of `command` to purge: `group`'s, or every group's and the unrouted one (which goes). */
  purgeable (command: string, group?: string): Queue[] {
    const queues: Queue[] = []
    for (const g of this.groups.values()) {
      if (group != null && g.name !== group) continue
      const queue = g.queues.get(command)
      if (queue != null) queues.push(queue)
    }
    const waiting = group == null ? this.unrouted.get(command) : undefined
    if (waiting != null) {
      queues.push(waiting)
      this.unrouted.delete(command)
      this.routes.delete(command)
    }
    return queues
  }

  /** Every queue: the groups', then the unrouted ones. */
  * queues (): Iterable<Queue> {
    for (const g of this.groups.values()) yield * g.queues.values()
    yield * this.unrouted.values()
  }

  /** The queues of `command`: each group's, and the unrouted one. */
  * queuesOf (command: string): Iterable<Queue> {
    for (const g of this.groups.values()) {
      const queue = g.queues.get(command)
      if (queue != null) yield queue
    }
    const waiting = this.unrouted.get(command)
    if (waiting != null) yield waiting
  }

  /** Takes `queues` out of `g` and out of their consumers' round robins (their messages were dropped). */
  removeQueues (g: Group, queues: Queue[]): void {
    for (const queue of queues) {
      g.queues.delete(queue.command)
      for (const sub of [...queue.consumers]) {
        queue.removeConsumer(sub)
        const i = sub.queues.indexOf(queue)
        if (i >= 0) sub.queues.splice(i, 1)
        if (i >= 0 && i < sub.nextQueue) sub.nextQueue--
        if (sub.nextQueue >= sub.queues.length) sub.nextQueue = 0
      }
    }
    this.routes.clear()
  }

  /** Takes out every queue `idle` says may go (groups' and unrouted), detached from its consumers; returns them. */
  removeIdle (idle: (queue: Queue) => boolean): Queue[] {
    const removed: Queue[] = []
    for (const g of this.groups.values()) {
      for (const [command, queue] of g.queues) {
        if (idle(queue)) {
          g.queues.delete(command)
          removed.push(queue)
        }
      }
    }
    for (const [command, queue] of this.unrouted) {
      if (idle(queue)) {
        this.unrouted.delete(command)
        removed.push(queue)
      }
    }
    if (removed.length === 0) return removed
    const gone = new Set(removed)
    const subs = new Set<Subscription<any>>()
    for (const queue of removed) {
      this.routes.delete(queue.command)
      for (const sub of queue.consumers) subs.add(sub)
      queue.consumers.length = 0
    }
    // One pass per subscription (a `#` one may lose 100,000 queues at once); its round robin
    // keeps its place among the queues that stay.
    for (const sub of subs) {
      let before = 0
      let kept = 0
      for (let i = 0; i < sub.queues.length; i++) {
        const queue = sub.queues[i]
        if (gone.has(queue)) {
          if (i < sub.nextQueue) before++
          continue
        }
        sub.queues[kept++] = queue
      }
      sub.queues.length = kept
      sub.nextQueue -= before
      if (sub.nextQueue >= kept || sub.nextQueue < 0) sub.nextQueue = 0
    }
    return removed
  }

  /** `g`'s queue of `command`, made when needed (attached to the subscriptions that match it). */
  private queueOf (g: Group, command: string): Queue {
    let queue = g.queues.get(command)
    if (queue == null) {
      queue = this.newQueue(command, g.name)
      this.policyExpiry(g, queue.policy)
      g.queues.set(command, queue)
      for (const sub of g.subs) {
        if (sub.matches(command)) attach(sub, queue)
      }
    }
    return queue
  }

  /** The unrouted queue of `command`, made when needed. */
  private unroutedQueue (command: string): Queue {
    let queue = this.unrouted.get(command)
    if (queue == null) {
      queue = this.newQueue(command, '')
      this.unrouted.set(command, queue)
    }
    return queue
  }

  private newQueue (command: string, group: string): Queue {
    const queue = new Queue(command, group)
    this.applyPolicy(queue)
    return queue
  }

  /** The first queue policy that matches its command (and group) gives the queue its settings. */
  private applyPolicy (queue: Queue): void {
    queue.policy = this.policies.find((p) => p.matches(queue.command) && (p.policy.group == null || p.policy.group === queue.group))?.policy
    queue.singleActive = queue.policy?.singleActive === true
  }

  private policyExpiry (g: Group, policy: QueuePolicy | undefined): void {
    if (policy?.expires != null && (g.policyExpires == null || policy.expires < g.policyExpires)) g.policyExpires = policy.expires
  }
}
