/**
 * Periodic messages: a message to publish every `every` ms or on a cron expression (croner; five
 * fields, or six with seconds). `Schedules` is pure state (what is due when); the `Scheduler`
 * registers schedules, publishes those that are due and keeps them in the store.
 */
import { Cron } from 'croner'
import { Heap } from './heap.js'
import { commandError, lengthOrControl } from '../names.js'
import { InvalidArgumentError, MessageTooLargeError } from '../errors.js'
import { encodeSchedule } from './records.js'
import type { Logger } from '@libp2p/interface'
import type { ScheduleInfo, ScheduleSpec } from './api.js'
import type { QueueEngine } from './engine.js'
import type { Journal } from './journal.js'

export interface Schedule {
  id: string
  command: string
  headers?: Record<string, string>
  kind: number
  payload: Uint8Array
  /** The peer that registered it: the producer of its messages. */
  producer: string
  /** ms between runs, or */
  every?: number
  /** a cron expression. */
  cron?: string
  /** The next run (ms since the epoch). */
  nextAt: number
  createdAt: number
}

/** The shortest interval accepted. */
export const MIN_EVERY = 10

/** Why a schedule's timing is not valid, or undefined. */
export function timingError (t: { every?: number, cron?: string }): string | undefined {
  if ((t.every == null) === (t.cron == null)) return 'A schedule needs either every (ms) or cron'
  if (t.every != null && !(Number.isFinite(t.every) && t.every >= MIN_EVERY)) return `every must be at least ${MIN_EVERY} ms`
  if (t.cron != null) {
    try {
      new Cron(t.cron, { paused: true }).stop()
    } catch (err) {
      return `Not a cron expression: ${(err as Error).message}`
    }
  }
  return undefined
}

/** The first run after `after` (ms since the epoch), or undefined when a cron expression has none left. */
export function nextRun (t: { every?: number, cron?: string }, after: number): number | undefined {
  if (t.every != null) return after + t.every
  const cron = new Cron(t.cron as string, { paused: true })
  const next = cron.nextRun(new Date(after))
  cron.stop()
  return next?.getTime()
}

export class Schedules {
  private readonly byId = new Map<string, Schedule>()
  /** By next run; an entry whose schedule was removed or moved since is skipped. */
  private readonly queue = new Heap<{ at: number, schedule: Schedule }>((a, b) => a.at < b.at)

  /** Adds or replaces the schedule with this id. */
  add (s: Schedule): void {
    this.byId.set(s.id, s)
    this.queue.push({ at: s.nextAt, schedule: s })
  }

  /** Whether `s` is still registered (not removed, not replaced). */
  has (s: Schedule): boolean {
    return this.byId.get(s.id) === s
  }

  remove (id: string): boolean {
    return this.byId.delete(id)
  }

  list (): Schedule[] {
    return [...this.byId.values()].sort((a, b) => a.nextAt - b.nextAt)
  }

  /**
   * The schedules due at `now`, each moved to its next run after now (a run missed while the
   * broker was down is made once, not once per missed time). Those with no run left are removed.
   */
  due (now: number): Schedule[] {
    const out: Schedule[] = []
    for (let top = this.queue.peek(); top != null && top.at <= now; top = this.queue.peek()) {
      this.queue.pop()
      const s = top.schedule
      if (this.byId.get(s.id) !== s || s.nextAt !== top.at) continue
      out.push(s)
      const next = nextRun(s, now)
      if (next == null) {
        this.byId.delete(s.id)
        continue
      }
      s.nextAt = next
      this.queue.push({ at: next, schedule: s })
    }
    return out
  }

  /** When the next schedule is due, if any. */
  get nextDue (): number | undefined {
    for (let top = this.queue.peek(); top != null; top = this.queue.peek()) {
      if (this.byId.get(top.schedule.id) === top.schedule && top.schedule.nextAt === top.at) return top.at
      this.queue.pop()
    }
    return undefined
  }
}

/**
 * The broker's periodic schedules: registered by admins, published when due (from the broker's
 * wake timer, which asks `nextDue`), written to the store as they move on.
 */
export class Scheduler {
  private readonly schedules = new Schedules()
  private counter = 0

  constructor (
    private readonly engine: Pick<QueueEngine<unknown>, 'publish'>,
    private readonly journal: Journal | undefined,
    /** Asks the broker to wake at `at` (it calls `publishDue`). */
    private readonly wakeAt: (at: number) => void,
    private readonly log: Logger
  ) {}

  /** Takes back a schedule read from the store. */
  recovered (s: Schedule): void {
    this.schedules.add(s)
  }

  get nextDue (): number | undefined {
    return this.schedules.nextDue
  }

  /** Publishes a message for every schedule that is due, and stores their next runs. */
  publishDue (): void {
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
      if (taken === 0) this.log.error('scheduled message %s of %s dropped: the broker is full', s.id, s.command)
      if (this.schedules.has(s)) this.journal?.schedule(s)
      else this.journal?.unschedule(s.id)
    }
  }

  /**
   * Registers a message to publish every `every` ms or on a `cron` expression, from `producer`;
   * replaces the schedule with the same id. Throws InvalidArgumentError on an invalid command or timing.
   */
  add (producer: string, spec: ScheduleSpec): ScheduleInfo {
    const invalid = commandError(spec.command) ?? (spec.id != null ? lengthOrControl(spec.id, 'schedule id') : undefined) ?? timingError(spec)
    if (invalid != null) throw new InvalidArgumentError(invalid)
    // Its messages carry one header more (x-schedule), so one fewer than a frame can count.
    if (spec.headers != null && Object.keys(spec.headers).length >= 0xffff) throw new InvalidArgumentError('A schedule has at most 65,534 headers')
    const now = Date.now()
    const nextAt = nextRun(spec, now)
    if (nextAt == null) throw new InvalidArgumentError('The cron expression has no run left')
    const s: Schedule = { ...spec, id: spec.id ?? `schedule-${now.toString(36)}-${(++this.counter).toString(36)}`, producer, nextAt, createdAt: now }
    // What cannot be stored cannot be published either: refused before it is registered.
    try {
      encodeSchedule(s)
    } catch (err) {
      if (err instanceof MessageTooLargeError) throw new InvalidArgumentError(err.message, { cause: err })
      throw err
    }
    this.schedules.add(s)
    this.journal?.schedule(s)
    this.wakeAt(nextAt)
    return scheduleInfo(s)
  }

  remove (id: string): boolean {
    if (!this.schedules.remove(id)) return false
    this.journal?.unschedule(id)
    return true
  }

  list (): ScheduleInfo[] {
    return this.schedules.list().map(scheduleInfo)
  }
}

function scheduleInfo (s: Schedule): ScheduleInfo {
  return { id: s.id, command: s.command, producer: s.producer, every: s.every, cron: s.cron, nextAt: s.nextAt, createdAt: s.createdAt }
}
